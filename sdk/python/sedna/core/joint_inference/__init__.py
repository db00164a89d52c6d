"""JointInference and BigModelService, as Sedna's lib: the edge and the
cloud model of a JointInferenceService as programs of the user's.

Sedna-Go's cloud runs the cloud template's command with Sedna's
environment of a big model server (BIG_MODEL_BIND_IP, BIG_MODEL_BIND_PORT,
MODEL_URL) and posts it the service's offloaded samples in batches; the
node runs the edge template's command with MODEL_URL, HEM_NAME and
HEM_PARAMETERS, and JointInference offloads hard samples through the
node's broker to the service's cloud worker (docs/WORKERS.md, "Joint
inference's external workers")."""

import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import msgpack
import numpy as np

from sedna import hem, wire
from sedna.common.config import Context
from sedna.core.base import JobBase

__all__ = ("JointInference", "BigModelService")

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
        self.log.info("big model service %s serving %s on %s:%d", self.job_name, self.model_path, self.local_ip, self.port)
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


def _duration(text, default):
    """Seconds of a Go duration such as "2s", "500ms", "1m"."""
    if not text:
        return default
    for unit, scale in (("ms", 1e-3), ("us", 1e-6), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * scale
            except ValueError:
                return default
    return default


class _Cloud:
    """Offloads one sample at a time to the service's cloud worker through
    the node's broker and waits for its answer (SEDNA_JI_TIMEOUT)."""

    def __init__(self, worker=None):
        from sedna.worker import Worker

        self.worker = worker or Worker()
        self.topic = os.environ["SEDNA_JI_OFFLOAD_TOPIC"]
        self.reply_to = os.environ["SEDNA_JI_REPLY_TO"]
        self.timeout = _duration(os.environ.get("SEDNA_JI_TIMEOUT"), 2.0)
        self.waiting = {}
        self.lock = threading.Lock()
        self.worker.subscribe(os.environ["SEDNA_JI_REPLY_TOPIC"], self._on_reply)

    def _on_reply(self, _topic, payload):
        try:
            e = wire.unpack(payload)
        except wire.WireError:
            return
        with self.lock:
            slot = self.waiting.get(e.correlation)
        if slot is not None:
            slot["reply"] = e.body_value()
            slot["event"].set()

    def inference(self, data):
        """The cloud model's probabilities for data, or None when it does
        not answer in time or answers an error (the edge's answer
        stands)."""
        x = np.asarray(data, np.float32)
        cid = uuid.uuid4().hex
        slot = {"event": threading.Event(), "reply": None}
        with self.lock:
            self.waiting[cid] = slot
        try:
            body = {"s": [{"i": cid, "h": list(x.shape), "t": "f32", "d": x.astype("<f4").tobytes()}]}
            self.worker.publish(self.topic, wire.envelope("ji.offload", body, source="python/edge",
                                                          reply_to=self.reply_to, correlation=cid,
                                                          expires=time.time_ns() + int(self.timeout * 1e9)))
            if not slot["event"].wait(self.timeout):
                return None
            reply = slot["reply"] or {}
            if reply.get("e") or not reply.get("r"):
                return None
            r = reply["r"][0]
            if r.get("e") or not r.get("p"):
                return None
            return np.asarray(r["p"], np.float32)
        finally:
            with self.lock:
                self.waiting.pop(cid, None)


class JointInference(JobBase):
    """Sedna's JointInference(estimator, hard_example_mining): the little
    model at the edge. inference(data) answers with the estimator, judges
    the answer with the miner and, for a hard sample, asks the cloud
    model: [is_hard_example, final_result, edge_result, cloud_result]
    (cloud_result None when the sample is easy or the cloud did not
    answer in time)."""

    def __init__(self, estimator=None, hard_example_mining=None):
        super().__init__(estimator=estimator)
        self.hard_example_mining = hard_example_mining or self.get_hem_algorithm_from_config()
        self.hem = hem.miner(self.hard_example_mining)
        self.estimator.load(self.model_path)
        self.cloud = _Cloud()

    @classmethod
    def get_hem_algorithm_from_config(cls, **param):
        return Context.get_algorithm_from_api("HEM", **param)

    def inference(self, data=None, post_process=None, **kwargs):
        edge_result = self.estimator.predict(data, **kwargs)
        probs = [float(v) for v in np.asarray(edge_result, np.float64).ravel()]
        is_hard = bool(self.hem(probs)) if self.hem is not None else False
        cloud_result = self.cloud.inference(data) if is_hard else None
        final = cloud_result if cloud_result is not None else edge_result
        if callable(post_process):
            final = post_process(final)
        return [is_hard, final, edge_result, cloud_result]
