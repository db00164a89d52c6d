"""Unit tests of LifelongLearning without a broker, and of what it stands
on: CSVDataParse's columns of text (Frame) and sedna.model's training.
The train, eval and inference roles run here on files as the node gives
them (MODEL_URL, MODEL_URLS, RESULT_URL, BASE_MODEL_URL), with a fake
connection recording what inference publishes."""

import base64
import json
import os
import tempfile
import unittest
from unittest import mock

import numpy as np

from sedna import kb, model
from sedna.core.lifelong_learning import LifelongLearning
from sedna.datasources import CSVDataParse, Frame


class Estimator:
    """A fresh MLP per task, trained by sedna.model.fit."""

    def __init__(self, **kwargs):
        self.net = None

    def train(self, train_data, valid_data=None, num_classes=2, epochs=40, **kwargs):
        x = np.asarray(train_data.x, np.float32)
        self.net = model.fit(model.random([x.shape[1], 16, num_classes], seed=2), x, train_data.y, epochs=epochs,
                             learning_rate=0.01)

    def save(self, model_path=""):
        self.net.save(model_path)


class NotSedna(Estimator):
    def save(self, model_path=""):
        with open(model_path, "wb") as f:
            f.write(b"\x08\x01onnx bytes")


def surveys(rng, task, n, shift):
    """n rows of a task: three features, the last two around shift, the
    class by the first feature's sign (task "b" flips it)."""
    x = rng.standard_normal((n, 3))
    x[:, 1:] += shift
    y = (x[:, 0] > 0).astype(int)
    if task == "b":
        y = 1 - y
    return [(int(c), task, *v) for c, v in zip(y, x)]


def write_csv(path, rows):
    with open(path, "w") as f:
        f.write("preference,task,f1,f2,f3\n")
        for r in rows:
            f.write(",".join(str(v) for v in r) + "\n")


class Data(unittest.TestCase):
    def test_text_columns_make_a_frame(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s.csv")
            with open(path, "w") as f:
                f.write("preference,task,f1\n1,a,0.5\n0,b,x\n2,c,1.5\n1,d\n")
            data = CSVDataParse(data_type="train").parse(path, label="preference")
        self.assertIsInstance(data.x, Frame)
        self.assertEqual(data.x.columns, ["task", "f1"])
        self.assertEqual(list(data.x["task"]), ["a", "c"])
        self.assertEqual(data.x.drop("task", axis=1).to_numpy().tolist(), [[0.5], [1.5]])
        self.assertEqual(data.y.tolist(), [1, 2])
        self.assertEqual(data.skipped, 2)  # text among the numbers; a short row
        with self.assertRaises(ValueError):
            data.x.to_numpy()

    def test_a_dict_is_a_row(self):
        data = CSVDataParse(data_type="test").parse({"preference": "1", "task": "a", "f1": "0.25"}, label="preference")
        self.assertEqual(data.x.columns, ["task", "f1"])
        self.assertEqual(data.x["f1"].tolist(), [0.25])

    def test_numbers_only_stay_an_array(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s.csv")
            with open(path, "w") as f:
                f.write("label,f1,f2\n1,0.5,2\n0,1,3\n")
            data = CSVDataParse(data_type="train").parse(path, label="label")
        self.assertIsInstance(data.x, np.ndarray)
        self.assertEqual(data.columns, ["f1", "f2"])

    def test_fit_learns_a_separable_problem(self):
        rng = np.random.default_rng(5)
        x = np.concatenate([rng.standard_normal((100, 2)) - 2, rng.standard_normal((100, 2)) + 2])
        y = np.array([0] * 100 + [1] * 100)
        net = model.fit(model.random([2, 8, 2], seed=1), x, y, epochs=20, learning_rate=0.01)
        self.assertGreater((net.predict_proba(x).argmax(axis=1) == y).mean(), 0.95)
        self.assertEqual(net.samples, 200)


class Lifelong(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        rng = np.random.default_rng(7)
        self.train_csv = os.path.join(self.dir.name, "train.csv")
        self.test_csv = os.path.join(self.dir.name, "test.csv")
        write_csv(self.train_csv, surveys(rng, "a", 200, 0) + surveys(rng, "b", 200, 6))
        write_csv(self.test_csv, surveys(rng, "a", 50, 0) + surveys(rng, "b", 50, 6))
        self.kb_path = os.path.join(self.dir.name, "kb")

    def env(self, **kv):
        p = mock.patch.dict(os.environ, {k: str(v) for k, v in kv.items()})
        p.start()
        self.addCleanup(p.stop)

    def data(self, path, data_type="train"):
        return CSVDataParse(data_type=data_type).parse(path, label="preference")

    def job(self, estimator=Estimator):
        return LifelongLearning(estimator=estimator, task_definition="TaskDefinitionByDataAttr",
                                task_definition_param='{"attribute": ["task"]}')

    def test_train_writes_a_knowledge_base_of_a_task_per_attribute(self):
        self.env(MODEL_URL=self.kb_path)
        self.job().train(train_data=self.data(self.train_csv))
        with open(self.kb_path, "rb") as f:
            got = kb.from_bytes(f.read())
        self.assertEqual([t.id for t in got.tasks], ["attr:a", "attr:b"])
        self.assertEqual((got.dim, got.config["classes"]), (3, 2))
        for t in got.tasks:
            self.assertEqual(t.total, 200)
            self.assertGreater(t.accuracy, 0.85, t.id)  # held out

    def test_evaluate_reports_each_model_and_the_candidate_alone_before_the_first(self):
        self.env(MODEL_URL=self.kb_path)
        self.job().train(train_data=self.data(self.train_csv))
        result = os.path.join(self.dir.name, "result.json")
        self.env(MODEL_URLS=self.kb_path, RESULT_URL=result)
        self.job().evaluate(data=self.data(self.test_csv, "test"), metrics="precision_score")
        with open(result) as f:
            out = json.load(f)
        self.assertEqual([m["url"] for m in out], [self.kb_path])
        m = out[0]["metrics"]
        self.assertEqual(out[0]["format"], "sedna-kb")
        self.assertGreater(m["accuracy"], 0.85)
        self.assertEqual(m["unseen"], 0.0)
        self.assertEqual(len(m["precision"]), 2)
        self.assertEqual(m["precision_score"], m["accuracy"])

    def test_inference_answers_with_the_task_and_flags_an_unseen_one(self):
        self.env(MODEL_URL=self.kb_path)
        self.job().train(train_data=self.data(self.train_csv))
        job = self.job()
        published = []

        class Fake:
            def publish(self, topic, payload, timeout=30.0):
                published.append((topic, json.loads(payload)))

        job._worker = Fake()
        self.env(SEDNA_INFERRED_TOPIC="ll/default/j/inferred")
        row = CSVDataParse(data_type="test").parse({"preference": "1", "task": "b", "f1": "1", "f2": "6", "f3": "6"},
                                                   label="preference")
        res, unseen, tasks = job.inference(row)
        self.assertEqual((res, unseen, tasks), ([0], False, ["attr:b"]))  # b flips the side
        row = CSVDataParse(data_type="test").parse({"preference": "1", "task": "c", "f1": "0", "f2": "0", "f3": "0"},
                                                   label="preference")
        _, unseen, tasks = job.inference(row)
        self.assertTrue(unseen)
        self.assertEqual(len(published), 2)
        topic, msg = published[1]
        self.assertEqual(topic, "ll/default/j/inferred")
        self.assertEqual((msg["attr"], msg["dtype"], msg["shape"]), ("c", "f32", [3]))
        self.assertEqual(np.frombuffer(base64.b64decode(msg["data"]), "<f4").tolist(), [0, 0, 0])

    def test_a_model_not_of_the_substrate_is_refused(self):
        self.env(MODEL_URL=self.kb_path)
        with self.assertRaisesRegex(ValueError, "not of the learning substrate's format"):
            self.job(NotSedna).train(train_data=self.data(self.train_csv))
        self.assertFalse(os.path.exists(self.kb_path))

    def test_clustering_and_a_missing_attribute_are_refused(self):
        with self.assertRaisesRegex(NotImplementedError, "TaskDefinitionByDataAttr"):
            LifelongLearning(estimator=Estimator, task_definition={"method": "TaskDefinitionByCluster", "param": {}})
        job = LifelongLearning(estimator=Estimator, task_definition="TaskDefinitionByDataAttr",
                               task_definition_param={"attribute": ["season"]})
        with self.assertRaisesRegex(ValueError, "no attribute column"):
            job.train(train_data=self.data(self.train_csv))


if __name__ == "__main__":
    unittest.main()
