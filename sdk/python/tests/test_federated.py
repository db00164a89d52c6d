"""Unit tests of sedna.core.federated_learning without a broker: the
pieces of a global model, the generation, the resend of an update, the
mapping of an estimator's weights, and whole jobs against a fake cloud
that speaks the wire (docs/WORKERS.md, "Federated learning: a training
worker"). Run by the Go test TestPythonSDK (sdk/python)."""

import contextlib
import io
import json
import os
import tempfile
import unittest

import numpy as np

from sedna import model, wire
from sedna.common.config import BaseConfig
from sedna.core.federated_learning import (Action, FederatedLearning, Globals, ModelMismatch, dataset_file,
                                           dataset_of, flat_of, join_body, train_dataset_url, update_messages,
                                           weights_of)
from sedna.datasources import CSVDataParse


def global_pieces(blob, gen=2, run=77, rnd=1, rounds=3, piece=4096):
    """The envelopes of a round's global model, as the cloud cuts it."""
    parts = [blob[i:i + piece] for i in range(0, len(blob), piece)]
    return [wire.envelope("fl.global", {"g": gen, "u": run, "r": rnd, "rs": rounds, "c": i, "n": len(parts),
                                        "s": len(blob), "d": p}, source="federated/cloud")
            for i, p in enumerate(parts)]


def done(gen=2, run=77, rnd=3):
    return wire.envelope("fl.global", {"g": gen, "u": run, "r": rnd, "rs": 0, "c": 0, "n": 0, "s": 0, "d": None,
                                       "x": True})


def net(widths=(64, 32, 10), seed=1):
    n = model.Network(list(widths))
    n.set_flat(np.random.default_rng(seed).standard_normal(n.flat().size).astype(np.float32))
    return n


class Pieces(unittest.TestCase):
    def test_assembly_out_of_order_and_repeated(self):
        blob = net((64, 200, 10)).to_bytes()  # 15,210 weights: 15 pieces of 4 KiB
        pieces = global_pieces(blob)
        self.assertGreater(len(pieces), 3)
        g = Globals(2, "train-0")
        order = list(reversed(pieces[1:])) + [pieces[3]] + [pieces[0]]
        for p in order[:-1]:
            self.assertIsNone(g.take(p))
        a = g.take(order[-1])
        self.assertEqual((a.what, a.run, a.round, a.rounds), ("train", 77, 1, 3))
        self.assertEqual(a.model, blob)
        self.assertTrue(g.heard)

    def test_refused_pieces(self):
        g = Globals(2, "train-0")
        for body, why in [({"g": 2, "u": 1, "r": 1, "c": 2, "n": 2, "s": 8000, "d": b"x"}, "piece 2 of 2"),
                          ({"g": 2, "u": 1, "r": 1, "c": 0, "n": 9, "s": 8000, "d": b"x"}, "piece 0 of 9"),
                          ({"g": 2, "u": 1, "r": 1, "c": 0, "n": 1, "s": 4, "d": b"xxxxx"}, "more than"),
                          ({"g": "2", "u": 1, "r": 1, "c": 0, "n": 1, "s": 4, "d": b"x"}, "types")]:
            self.assertIsNone(g.take(wire.envelope("fl.global", body)))
            self.assertIn(why, g.why)
        self.assertIsNone(g.take(wire.envelope("fl.update", {})))
        self.assertIn("kind", g.why)
        self.assertIsNone(g.take(b"\xc1"))
        self.assertIn("not an envelope", g.why)
        # Pieces that disagree on their count start nothing.
        g.take(wire.envelope("fl.global", {"g": 2, "u": 1, "r": 1, "c": 0, "n": 2, "s": 9000, "d": b"a" * 4096}))
        self.assertIsNone(g.take(wire.envelope("fl.global", {"g": 2, "u": 1, "r": 1, "c": 1, "n": 3, "s": 9000, "d": b"b"})))
        self.assertIn("earlier pieces said 2", g.why)

    def test_wrong_generation(self):
        blob = net((4, 3)).to_bytes()
        g = Globals(3, "train-0")
        self.assertIsNone(g.take(global_pieces(blob, gen=2)[0]))
        self.assertIn("generation 2, older than the worker's 3", g.why)
        self.assertFalse(g.heard)
        self.assertIsNone(g.take(done(gen=2)))
        self.assertEqual(g.take(global_pieces(blob, gen=3)[0]).what, "train")
        self.assertEqual(g.take(global_pieces(blob, gen=4, rnd=2)[0]).what, "train")  # a newer one is taken

    def test_resend_and_rounds_trained(self):
        blob = net((4, 3)).to_bytes()
        g = Globals(2, "train-0")
        a = g.take(global_pieces(blob, rnd=2)[0])
        g.trained(a.run, a.round, [b"update"])
        self.assertEqual(g.join_body(), {"g": 2, "w": "train-0", "u": 77, "r": 2})
        self.assertEqual(g.take(global_pieces(blob, rnd=2)[0]).what, "resend")
        self.assertEqual(g.last, [b"update"])
        self.assertIsNone(g.take(global_pieces(blob, rnd=1)[0]))  # trained already
        self.assertEqual(g.take(global_pieces(blob, run=78, rnd=1)[0]).what, "train")  # a new run
        big = net((64, 200, 10)).to_bytes()
        self.assertIsNone(g.take(global_pieces(big, rnd=2)[1]))  # piece 1 of the round trained: nothing
        self.assertIn("trained already", g.why)

    def test_newer_round_waiting(self):
        big = net((64, 200, 10)).to_bytes()
        g = Globals(2, "train-0")
        a = g.take(global_pieces(net((4, 3)).to_bytes(), rnd=3)[0])
        self.assertFalse(g.newer_than(a))
        g.take(global_pieces(big, rnd=4)[0])
        self.assertTrue(g.newer_than(a))
        self.assertIsNone(g.take(global_pieces(big, rnd=3)[1]))  # older than the one assembling
        self.assertIn("while round 4 comes", g.why)

    def test_over(self):
        blob = net((4, 3)).to_bytes()
        g = Globals(2, "train-0")
        # Before any round a "done" may be an old run's: ask, end when
        # the answer says it again.
        self.assertEqual(g.take(done(run=5)).what, "join")
        self.assertEqual(g.take(done(run=5)).what, "over")
        g = Globals(2, "train-0")
        a = g.take(global_pieces(blob, run=9)[0])
        g.trained(a.run, a.round, [])
        self.assertIsNone(g.take(done(run=8)))
        self.assertIn("not of run 9", g.why)
        self.assertEqual(g.take(done(run=9)).what, "over")


class Weights(unittest.TestCase):
    def test_mapping(self):
        n = net((5, 4, 3))
        ws = weights_of(n)
        self.assertEqual([w.shape for w in ws], [(4, 5), (4,), (3, 4), (3,)])
        self.assertTrue(all(w.dtype == np.float32 for w in ws))
        np.testing.assert_array_equal(flat_of(ws, n), n.flat())
        np.testing.assert_array_equal(flat_of(n.flat(), n), n.flat())
        np.testing.assert_array_equal(flat_of(list(map(float, n.flat())), n), n.flat())
        keras = [w.T if w.ndim == 2 else w for w in ws]  # kernels (in, out)
        np.testing.assert_array_equal(flat_of(keras, n), n.flat())
        ws[0][0, 0] = 42  # a copy: the network is not changed through it
        self.assertNotEqual(n.W[0][0, 0], 42)
        m = model.Network([5, 4, 3])
        m.set_flat(flat_of(ws, n))
        self.assertEqual(m.W[0][0, 0], 42)

    def test_mismatch(self):
        n = net((5, 4, 3))
        for bad, says in [(np.zeros(10), "gave 10 weights; the model (widths [5, 4, 3]) has 39"),
                          ([np.zeros((4, 5)), np.zeros(4)], "shapes [(4, 5), (4,)]"),
                          (None, "NoneType"), ([], "list")]:
            with self.assertRaises(ModelMismatch) as cm:
                flat_of(bad, n)
            self.assertIn(says, str(cm.exception))

    def test_update_pieces(self):
        flat = np.arange(300_000, dtype=np.float32)  # 1.2 MB: 5 pieces of 256 KiB
        msgs = update_messages(77, 3, "train-1", flat, 120, 0.25, 1.5, source="python/train-1")
        self.assertEqual(len(msgs), 5)
        self.assertLessEqual(len(msgs), flat.size // 1024 + 1)
        data = b""
        for i, raw in enumerate(msgs):
            self.assertLess(len(raw), 1 << 20)
            e = wire.unpack(raw)
            b = e.body_value()
            self.assertEqual((e.kind, e.source), ("fl.update", "python/train-1"))
            self.assertEqual({k: b[k] for k in "urwcnpklt"},
                             {"u": 77, "r": 3, "w": "train-1", "c": i, "n": 5, "p": 300_000, "k": 120, "l": 0.25, "t": 1.5})
            data += b["d"]
        np.testing.assert_array_equal(np.frombuffer(data, "<f4"), flat)
        self.assertEqual(join_body(2, "train-1"), {"g": 2, "w": "train-1", "u": 0, "r": 0})


class PlusOne:
    """An estimator whose training adds 1 to every weight, so the test can
    tell exactly what went up; it takes only networks of 4 inputs."""

    inputs = 4

    def __init__(self):
        self.ws = None
        self.calls = []

    def set_weights(self, weights):
        if weights[0].shape[1] != self.inputs:
            raise ValueError(f"this estimator takes {self.inputs} inputs, not {weights[0].shape[1]}")
        self.ws = [w.copy() for w in weights]

    def train(self, train_data, valid_data=None, epochs=1, **kwargs):
        self.calls.append(epochs)
        self.ws = [w + 1 for w in self.ws]
        return {"loss": [0.9, 0.5]}

    def get_weights(self):
        return self.ws


class FakeCloud:
    """A worker connection whose broker is a fake aggregation worker: it
    answers a join with the current round's global, takes updates, closes
    a round on each whole update (the global's weights become the
    update's), and sends the end after `rounds`. With ask_again, it sends
    piece 0 of round 2 again once the update of round 2 came (as a cloud
    that lost it): the worker must send the same update again."""

    def __init__(self, widths=(4, 3), rounds=3, ask_again=True, gen=2):
        self.role, self.generation, self.kind, self.namespace, self.job = "train-1", gen, "FederatedLearningJob", "default", "fl1"
        self.report_prefix = "sedna/v1/node/edge-1/job/FederatedLearningJob/default/fl1/"
        self.net, self.rounds, self.ask_again = net(widths), rounds, ask_again
        self.round, self.run, self.gen = 1, 4242, gen
        self.handlers, self.joins, self.updates, self.metrics = {}, [], {}, []
        self.pieces = {}
        self.sent_again = False

    def subscribe(self, topic, handler):
        self.handlers[topic] = handler

    def deliver(self, raw):
        self.handlers["sedna/v1/job/FederatedLearningJob/default/fl1/global"]("t", raw)

    def broadcast(self):
        if self.round > self.rounds:
            self.deliver(done(gen=self.gen, run=self.run, rnd=self.rounds))
            return
        for p in global_pieces(self.net.to_bytes(), gen=self.gen, run=self.run, rnd=self.round, rounds=self.rounds):
            self.deliver(p)

    def send(self, what, kind, body, **kw):
        assert (what, kind) == ("join", "fl.join"), (what, kind)
        self.joins.append(body)
        self.broadcast()

    def publish(self, topic, payload):
        assert topic == self.report_prefix + "update", topic
        b = wire.unpack(payload).body_value()
        self.pieces.setdefault((b["r"], b["c"]), []).append(b)
        if b["c"] != b["n"] - 1:
            return
        whole = np.frombuffer(b"".join(self.pieces[(b["r"], c)][-1]["d"] for c in range(b["n"])), "<f4")
        self.updates.setdefault(b["r"], []).append((b, whole))
        if b["r"] != self.round:
            return
        if self.round == 2 and self.ask_again and not self.sent_again:
            self.sent_again = True
            self.deliver(global_pieces(self.net.to_bytes(), gen=self.gen, run=self.run, rnd=2)[0])
            return
        self.net.set_flat(whole)
        self.round += 1
        self.broadcast()

    def report_metrics(self, m):
        self.metrics.append(dict(m))


class Loop(unittest.TestCase):
    def test_rounds_against_a_fake_cloud(self):
        cloud = FakeCloud(rounds=3)
        start = cloud.net.flat().copy()
        est = PlusOne()
        fl = FederatedLearning(estimator=est, aggregation="FedAvg", worker=cloud)
        data = CSVDataParse(data_type="train")
        data.x, data.y = np.zeros((7, 4), np.float32), np.zeros(7, np.int64)
        res = fl.train(train_data=data, epochs=2, post_process=lambda e: ("done", e))
        self.assertEqual(res[0], "done")
        self.assertIs(res[1].estimator, est)
        self.assertEqual(cloud.joins, [{"g": 2, "w": "train-1", "u": 0, "r": 0}])
        self.assertEqual(sorted(cloud.updates), [1, 2, 3])
        self.assertEqual(est.calls, [2, 2, 2])  # kwargs reach estimator.train
        for r, ups in cloud.updates.items():
            self.assertEqual(len(ups), 2 if r == 2 else 1, f"round {r}")
            b, w = ups[0]
            self.assertEqual((b["u"], b["w"], b["p"], b["k"], b["l"], b["n"]), (4242, "train-1", 15, 7, 0.5, 1))
            self.assertGreaterEqual(b["t"], 0)
            np.testing.assert_allclose(w, start + r)  # the global of round r is start + r - 1
        np.testing.assert_array_equal(cloud.updates[2][0][1], cloud.updates[2][1][1])  # the same update again
        self.assertEqual(fl.network.widths, [4, 3])
        last = cloud.metrics[-1]
        self.assertEqual({k: last[k] for k in ("clientRound", "clientSamples", "clientLoss")},
                         {"clientRound": 3.0, "clientSamples": 7.0, "clientLoss": 0.5})

    def assertExits(self, fn, says):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), self.assertRaises(SystemExit) as cm:
            fn()
        self.assertEqual(cm.exception.code, 2)
        line = err.getvalue()
        self.assertEqual(line.count("\n"), 1, line)
        self.assertIn(says, line)

    def test_a_model_the_estimator_cannot_take(self):
        data = CSVDataParse(data_type="train")
        data.x, data.y = np.zeros((7, 5), np.float32), np.zeros(7, np.int64)
        fl = FederatedLearning(estimator=PlusOne(), worker=FakeCloud(widths=(5, 3)))
        self.assertExits(lambda: fl.train(train_data=data),
                         "round 1: the global model (widths [5, 3], 18 weights) does not fit the estimator: "
                         "estimator.set_weights: ValueError: this estimator takes 4 inputs, not 5")

        class Short(PlusOne):
            def get_weights(self):
                return np.zeros(3)

        fl = FederatedLearning(estimator=Short(), worker=FakeCloud())
        self.assertExits(lambda: fl.train(train_data=data), "round 1: estimator.get_weights() gave 3 weights; the model (widths [4, 3]) has 15")
        self.assertExits(lambda: FederatedLearning(estimator=PlusOne(), worker=FakeCloud()).train(train_data=[]),
                         "no training samples")


class Data(unittest.TestCase):
    def test_csv_data_parse(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "a.csv")
            with open(p, "w") as f:
                f.write("label,f0,f1\n3,0.5,1\n\n1,0.25,x\n2,1,0\n4,1\n")
            data = CSVDataParse(data_type="train").parse(p, label="label")
            self.assertEqual(data.num_examples(), 2)
            self.assertEqual(data.skipped, 2)
            np.testing.assert_array_equal(data.x, np.array([[0.5, 1], [1, 0]], np.float32))
            self.assertEqual(data.y.dtype, np.int64)
            self.assertEqual(list(data.y), [3, 2])
            q = os.path.join(d, "b.csv")
            with open(q, "w") as f:
                f.write("7,0.5,1\n")
            w = os.path.join(d, "c.csv")
            with open(w, "w") as f:
                f.write("1,2,3,4\n5,6,7,8\n")
            data = CSVDataParse(data_type="train").parse(q, w, p, label=0)
            self.assertEqual(list(data.y), [7, 3, 2])
            self.assertEqual(data.skipped, 4)  # c.csv's two rows, and two of a.csv's
            self.assertEqual(CSVDataParse(data_type="train").parse(p, label="nope").num_examples(), 0)

    def test_dataset_from_the_job(self):
        job = {"spec": {"trainingWorkers": [{"dataset": {"name": "d0"}}, {"dataset": {"name": "d1"}}]}}
        self.assertEqual(dataset_of(job, "train-1"), "d1")
        self.assertEqual(dataset_of(job, "train-2"), "")
        self.assertEqual(dataset_of(job, "aggregation"), "")
        self.assertEqual(dataset_file({"spec": {"url": "file:///data/a.csv"}}), "/data/a.csv")
        self.assertEqual(dataset_file({"spec": {}}), "")

        class Spec(FakeCloud):
            def spec(self, timeout=30.0):
                return job

            def subscribe(self, topic, handler):
                self.topic = topic
                doc = {"spec": {"url": "file:///data/d1.csv", "format": "csv"}}
                handler(topic, wire.envelope("spec", {"key": "Dataset/default/d1", "gen": 1, "data": json.dumps(doc).encode()}))

        w = Spec()
        saved = os.environ.pop("TRAIN_DATASET_URL", None)
        try:
            self.assertEqual(train_dataset_url(w, timeout=1), "/data/d1.csv")
            self.assertEqual(w.topic, "sedna/v1/job/Dataset/default/d1/spec")
            os.environ["TRAIN_DATASET_URL"] = "/given.csv"
            self.assertEqual(train_dataset_url(w, timeout=1), "/given.csv")
            # FederatedLearning fills Sedna's BaseConfig.train_dataset_url
            # when the agent did not.
            os.environ.pop("TRAIN_DATASET_URL")
            os.environ["SEDNA_JOB_KIND"] = "FederatedLearningJob"
            BaseConfig.train_dataset_url = ""
            FederatedLearning(estimator=PlusOne(), worker=Spec())
            self.assertEqual(BaseConfig.train_dataset_url, "/data/d1.csv")
            self.assertEqual(os.environ["TRAIN_DATASET_URL"], "/data/d1.csv")
        finally:
            os.environ.pop("SEDNA_JOB_KIND", None)
            os.environ.pop("TRAIN_DATASET_URL", None)
            BaseConfig.train_dataset_url = ""
            if saved is not None:
                os.environ["TRAIN_DATASET_URL"] = saved


if __name__ == "__main__":
    unittest.main()
