"""BigModelService, as Sedna's lib: the cloud model of a
JointInferenceService as a program of the user's. Sedna-Go's cloud runs
the cloud template's command with Sedna's environment of a big model
server (BIG_MODEL_BIND_IP, BIG_MODEL_BIND_PORT, MODEL_URL) and posts it the
service's offloaded samples in batches (docs/WORKERS.md, "Joint
inference's external cloud worker")."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import msgpack
import numpy as np

from sedna.common.config import Context
from sedna.core.base import JobBase

__all__ = ("BigModelService",)

PREDICT_BATCH = "/sedna/predict_batch"
HEALTH = "/sedna/health"


class BigModelService(JobBase):
    """Sedna's BigModelService(estimator): start() loads the model of
    MODEL_URL and serves inference until the process is stopped."""

    def __init__(self, estimator=None):
        super().__init__(estimator=estimator)
        self.local_ip = Context.get_parameters("BIG_MODEL_BIND_IP", "0.0.0.0")
        self.port = int(Context.get_parameters("BIG_MODEL_BIND_PORT", "5000"))
        self.server = None

    def start(self, block=True):
        """Loads the model and serves: POST /sedna/predict_batch (a msgpack
        batch of float32 samples, what Sedna-Go's cloud sends), POST
        /{service}/predict (Sedna's JSON {"data": ...} -> {"result": ...}),
        GET /sedna/health. block=False returns once it listens."""
        self.estimator.load(self.model_path)
        service = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def _send(self, code, body, ctype):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == HEALTH:
                    self._send(200, b"ok", "text/plain")
                else:
                    self._send(404, b"not found", "text/plain")

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == PREDICT_BATCH:
                    try:
                        batch = msgpack.unpackb(raw, raw=False)
                        results = []
                        for s in batch["samples"]:
                            try:
                                x = np.frombuffer(s["data"], "<f4").reshape(s["shape"])
                                with lock:
                                    res = service.inference(x)
                                results.append({"probs": [float(v) for v in np.asarray(res, np.float64).ravel()]})
                            except Exception as e:  # one sample's failure is its answer
                                results.append({"error": f"{type(e).__name__}: {e}"})
                        body = msgpack.packb({"results": results}, use_bin_type=True)
                    except Exception as e:
                        body = msgpack.packb({"error": f"{type(e).__name__}: {e}"}, use_bin_type=True)
                    self._send(200, body, "application/msgpack")
                elif self.path.endswith("/predict"):
                    try:
                        data = json.loads(raw)["data"]
                        with lock:
                            res = service.inference(np.asarray(data, np.float32))
                        body = json.dumps({"result": np.asarray(res).tolist()}).encode()
                        self._send(200, body, "application/json")
                    except Exception as e:
                        self._send(400, json.dumps({"error": str(e)}).encode(), "application/json")
                else:
                    self._send(404, b"not found", "text/plain")

        self.server = ThreadingHTTPServer((self.local_ip, self.port), Handler)
        self.log.info("big model service %s serving on %s:%d", self.job_name, self.local_ip, self.port)
        if not block:
            threading.Thread(target=self.server.serve_forever, daemon=True).start()
            return self
        try:
            self.server.serve_forever()
        finally:
            self.server.server_close()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def inference(self, data=None, post_process=None, **kwargs):
        res = self.estimator.predict(data, **kwargs)
        return post_process(res) if callable(post_process) else res
