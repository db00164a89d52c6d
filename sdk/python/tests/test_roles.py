"""Unit tests of the role classes' logic without a broker: BigModelService's
batch protocol (a real HTTP server on loopback), JointInference's offload
(a fake worker connection answering as the cloud would), and
IncrementalLearning's hot update and inferred samples."""

import base64
import json
import os
import tempfile
import threading
import unittest
import urllib.request

import msgpack
import numpy as np

from sedna import model, wire


class Estimator:
    """Answers with the network of MODEL_URL (sedna.model)."""

    def __init__(self, **kwargs):
        self.net = None

    def load(self, model_url=""):
        self.net = model.load(model_url)

    def predict(self, data, **kwargs):
        return self.net.predict_proba(np.asarray(data, np.float32).reshape(1, -1))[0]


def network(path, seed):
    rng = np.random.default_rng(seed)
    n = model.Network([4, 3])
    n.set_flat(rng.standard_normal(n.flat().size).astype(np.float32))
    n.save(path)
    return n


class FakeWorker:
    """A worker connection that records publishes and, for offloads,
    answers on the reply topic as the cloud would (probs from answer)."""

    def __init__(self, answer=None):
        self.published, self.handlers, self.answer = [], {}, answer

    def subscribe(self, topic, handler):
        self.handlers[topic] = handler

    def publish(self, topic, payload, timeout=30.0):
        self.published.append((topic, payload))
        if self.answer is not None and topic == os.environ.get("SEDNA_JI_OFFLOAD_TOPIC"):
            e = wire.unpack(payload)
            reply = wire.envelope("ji.reply", {"r": [{"i": "x", "p": self.answer}]}, correlation=e.correlation)
            for t, h in self.handlers.items():
                threading.Thread(target=h, args=(t, reply)).start()


class Roles(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "m.model")
        self.net = network(self.path, 1)
        self.saved = dict(os.environ)
        os.environ.update({"MODEL_URL": self.path, "HEM_NAME": "ThresholdFilter",
                           "HEM_PARAMETERS": json.dumps([{"key": "threshold", "value": "0.99"}])})

    def tearDown(self):
        os.environ.clear()
        os.environ.update(self.saved)
        self.dir.cleanup()

    def test_big_model_service_batches(self):
        from sedna.core.joint_inference import BigModelService, PREDICT_BATCH, HEALTH
        os.environ.update({"BIG_MODEL_BIND_IP": "127.0.0.1", "BIG_MODEL_BIND_PORT": "0"})
        svc = BigModelService(estimator=Estimator).start(block=False)
        try:
            url = f"http://127.0.0.1:{svc.server.server_address[1]}"
            self.assertEqual(urllib.request.urlopen(url + HEALTH).status, 200)
            x = np.arange(4, dtype="<f4") / 4
            body = msgpack.packb({"samples": [{"id": "a", "shape": [4], "data": x.tobytes()},
                                              {"id": "b", "shape": [3], "data": x.tobytes()}]}, use_bin_type=True)
            req = urllib.request.Request(url + PREDICT_BATCH, data=body, headers={"Content-Type": "application/msgpack"})
            out = msgpack.unpackb(urllib.request.urlopen(req).read(), raw=False)
            np.testing.assert_allclose(out["results"][0]["probs"], self.net.predict_proba(x.reshape(1, -1))[0], rtol=1e-6)
            self.assertIn("error", out["results"][1])  # 4 values in a shape of 3
        finally:
            svc.stop()

    def test_joint_inference_offloads_hard_samples(self):
        from sedna.core import joint_inference as ji
        os.environ.update({"SEDNA_JI_OFFLOAD_TOPIC": "sedna/v1/node/e/job/JointInferenceService/default/s/offload",
                           "SEDNA_JI_REPLY_TOPIC": "sedna/v1/job/JointInferenceService/default/s/reply",
                           "SEDNA_JI_REPLY_TO": "sedna/v1/to/e/job/JointInferenceService/default/s/reply",
                           "SEDNA_JI_TIMEOUT": "5s"})
        fake = FakeWorker(answer=[0.0, 1.0, 0.0])
        orig = ji._Cloud.__init__

        def init(self, worker=None):
            orig(self, worker=fake)
        ji._Cloud.__init__ = init
        try:
            j = ji.JointInference(estimator=Estimator)
            hard, final, edge, cloud = j.inference(np.ones(4, np.float32))
        finally:
            ji._Cloud.__init__ = orig
        self.assertTrue(hard)  # ThresholdFilter 0.99: a random softmax is never that sure
        np.testing.assert_array_equal(final, [0.0, 1.0, 0.0])
        self.assertIsNotNone(edge)
        e = wire.unpack(fake.published[0][1])
        self.assertEqual((e.kind, e.reply_to), ("ji.offload", os.environ["SEDNA_JI_REPLY_TO"]))
        s = e.body_value()["s"][0]
        self.assertEqual((s["h"], s["t"], len(s["d"])), ([4], "f32", 16))

    def test_incremental_inference_hot_update_and_inferred(self):
        from sedna.core.incremental_learning import IncrementalLearning
        nxt = os.path.join(self.dir.name, "v2.model")
        network(nxt, 2)
        conf = os.path.join(self.dir.name, "hot.json")
        os.environ.update({"SEDNA_INFERRED_TOPIC": "il/default/j/inferred", "SEDNA_MODEL_NAME": "m",
                           "SEDNA_MODEL_VERSION": "1", "MODEL_HOT_UPDATE": "true", "MODEL_POLL_PERIOD_SECONDS": "0",
                           "MODEL_HOT_UPDATE_CONFIG": conf})
        il = IncrementalLearning(estimator=Estimator)
        il._worker = FakeWorker()
        x = np.arange(4, dtype=np.float32)
        il.inference(x)
        self.assertEqual((il.model_name, il.model_version), ("m", 1))
        with open(conf, "w") as f:
            json.dump({"model_config": {"model_path": nxt, "model_update_time": "d/2", "model_name": "d", "model_version": 2}}, f)
        res, _, hard = il.inference(x)
        self.assertEqual((il.model_name, il.model_version), ("d", 2))
        np.testing.assert_allclose(res, model.load(nxt).predict_proba(x.reshape(1, -1))[0], rtol=1e-6)
        topic, raw = il._worker.published[-1]
        msg = json.loads(raw)
        self.assertEqual((topic, msg["shape"], msg["dtype"], msg["model"]), ("il/default/j/inferred", [4], "f32", 2))
        self.assertEqual(np.frombuffer(base64.b64decode(msg["data"]), "<f4").tolist(), x.tolist())


if __name__ == "__main__":
    unittest.main()
