"""LifelongLearning, as Sedna's lib: the train, eval and inference workers
of a LifelongLearningJob (docs/WORKERS.md, "Lifelong learning's external
workers"). Its model is a knowledge base in Sedna-Go's encoding
(sedna.kb, MODEL_FORMAT sedna-kb): a model per task, each trained by the
worker's estimator, which saves models of the learning substrate's format
(sedna.model), and the mixture that tells seen tasks from unseen ones.
Tasks are defined by the data's attributes (Sedna's
TaskDefinitionByDataAttr)."""

import base64
import collections
import json
import os
import tempfile

import numpy as np

from sedna import kb, model
from sedna.backend import set_backend
from sedna.common.config import Context
from sedna.core.base import JobBase
from sedna.datasources import Frame

__all__ = ("LifelongLearning",)

_BY_ATTRIBUTE = ("TaskDefinitionByDataAttr", "TaskMiningByDataAttr", "attribute")


def _method(spec, param=None):
    """(method, param dict) of one of Sedna's algorithm settings: a dict
    {"method", "param"} (param a dict or its JSON) or a method's name with
    param beside it."""
    if not spec:
        return None, {}
    if isinstance(spec, dict):
        spec, param = spec.get("method"), spec.get("param", param)
    if isinstance(param, str):
        param = json.loads(param) if param.strip() else {}
    return spec, dict(param or {})


class LifelongLearning(JobBase):
    """Sedna's LifelongLearning(estimator, task_definition, ...): the
    estimator (a class, instantiated once per task, or an object, copied)
    trains each task's model; task_definition (or task_mining, as Sedna's
    inference workers name it) {"method": "TaskDefinitionByDataAttr",
    "param": {"attribute": [COLUMNS]}}, or its name with
    task_definition_param, names the data's attribute columns: a task is
    the rows of one value of them (joined by "|" when there are several,
    as the job's Dataset reads them). The other settings of Sedna's class
    are taken and unused: the knowledge base's mixture allocates samples
    and detects unseen tasks."""

    def __init__(self, estimator=None, task_definition=None, task_relationship_discovery=None, task_mining=None,
                 task_allocation=None, task_remodeling=None, inference_integrate=None, unseen_task_detect=None,
                 task_definition_param=None, seen_estimator=None, unseen_estimator=None, **kwargs):
        estimator = estimator if estimator is not None else seen_estimator
        if estimator is None:
            raise ValueError("LifelongLearning needs an estimator")
        super().__init__(estimator=estimator)
        self._estimator_spec = estimator
        method, param = _method(task_definition or task_mining or task_allocation, task_definition_param)
        if method is None:
            method, param = "TaskDefinitionByDataAttr", {}
        if method not in _BY_ATTRIBUTE:
            raise NotImplementedError(f"task definition {method!r}: this library defines tasks by the data's attributes "
                                      f"(TaskDefinitionByDataAttr); a job that clusters has the built-in train worker")
        attrs = param.get("attribute", param.get("attributes", []))
        self.attributes = [attrs] if isinstance(attrs, str) else list(attrs)
        self.model_urls = Context.get_parameters("MODEL_URLS")
        self.model_name, self.model_version = "", 0
        self.kb = None
        self._windows = collections.defaultdict(lambda: collections.deque(maxlen=self.kb.config["window"]))
        self._worker = None
        self._seq = 0

    def _split(self, data, with_label=True):
        """(features n x d float32, attributes [str], labels) of a data
        source whose x holds the attribute columns."""
        x = data.x
        columns = x.columns if isinstance(x, Frame) else getattr(data, "columns", None)
        missing = [a for a in self.attributes if not columns or a not in columns]
        if missing:
            raise ValueError(f"the data has no attribute column {missing} (its columns: {columns})")
        if isinstance(x, Frame):
            feats = x.drop(self.attributes, axis=1).to_numpy()
            raw = [[str(v) for v in x[a]] for a in self.attributes]
        else:
            a = np.asarray(x, np.float32).reshape(len(x), -1)
            idx = [columns.index(n) for n in self.attributes]
            feats = np.delete(a, idx, axis=1)
            raw = [[np.format_float_positional(np.float32(v), trim="-") for v in a[:, i]] for i in idx]
        attrs = ["|".join(vals) for vals in zip(*raw)] if raw else [""] * len(feats)
        y = np.asarray(data.y, np.int64) if with_label and data.y is not None and len(data.y) else None
        return feats, attrs, y

    def _new_estimator(self):
        spec = self._estimator_spec
        if isinstance(spec, type):
            return set_backend(estimator=spec)
        import copy
        return set_backend(estimator=copy.deepcopy(spec))

    def train(self, train_data, valid_data=None, post_process=None, **kwargs):
        """Trains a model per task of train_data with a new estimator each
        (kwargs go to its train, with num_classes, the knowledge base's), measures it on the task's held-out share
        (hold_out, default 0.2), and saves the knowledge base of them where
        the job wants it (MODEL_URL); the train stage succeeds when the
        program exits 0. Returns the knowledge base."""
        x, attrs, y = self._split(train_data)
        if y is None or len(y) != len(x):
            raise ValueError("the train data has no labels")
        base_url = Context.get_parameters("BASE_MODEL_URL")
        base = kb.from_bytes(open(base_url, "rb").read()) if base_url and os.path.getsize(base_url) else None
        classes = max(int(y.max()) + 1 if len(y) else 2, 2, base.config["classes"] if base else 2)
        hold = float(Context.get_parameters("hold_out", kwargs.pop("hold_out", 0.2)))
        seed = int(Context.get_parameters("seed", 1))
        cfg = {}
        for key in ("window", "unseen_quantile"):
            v = Context.get_parameters("unseen_" + key if key == "window" else key)
            if v:
                cfg[key] = float(v) if key == "unseen_quantile" else int(v)
        knowledge = kb.KnowledgeBase(x.shape[1], classes, method=kb.ATTRIBUTE, seed=seed, **cfg)
        tasks = []
        for attr in sorted(set(attrs)):
            rows = np.array([i for i, a in enumerate(attrs) if a == attr])
            if len(rows) < 2:
                self.log.warning("task %s: %d sample, left out: a task needs two at least", attr, len(rows))
                continue
            rng = np.random.default_rng(seed)
            order = rng.permutation(rows)
            n_test = int(round(hold * len(order))) if len(order) >= 10 else 0
            test, fit = order[:n_test], order[n_test:]
            est = self._new_estimator()
            sub = _Data(x[fit], y[fit])
            est.train(train_data=sub, valid_data=None, num_classes=classes, **kwargs)
            net = self._network(est)
            if net.inputs != x.shape[1] or net.classes != classes:
                raise ValueError(f"task {attr}: the estimator's model maps {net.inputs} features to {net.classes} classes; "
                                 f"the data {x.shape[1]} to {classes}")
            acc = prec = float("nan")
            if len(test):
                pred = net.predict_proba(x[test]).argmax(axis=1)
                acc = prec = float((pred == y[test]).mean())  # micro-averaged precision is accuracy
            self.log.info("task %s: %d samples, held-out accuracy %.3f", attr, len(fit), acc)
            tasks.append((attr, net, x[rows], acc, prec))
        if not tasks:
            raise ValueError("no task of two samples or more in the train data")
        knowledge.fit(tasks)
        path = self.model_path
        if not path:
            raise RuntimeError("MODEL_URL is not set: this is not a train worker of a job")
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(knowledge.to_bytes())
        os.replace(tmp, path)
        self.log.info("knowledge base of %d tasks saved to %s", len(tasks), path)
        self.kb = knowledge
        return post_process(knowledge) if callable(post_process) else knowledge

    @staticmethod
    def _network(est):
        """The model est trained, saved and read back as the learning
        substrate's format."""
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "task.model")
            est.save(path)
            try:
                return model.load(path)
            except model.ModelError as e:
                raise ValueError(f"the estimator saved a model that is not of the learning substrate's format (sedna.model), "
                                 f"which a knowledge base holds: {e}") from None

    def _predict(self, knowledge, x, attrs, streams=None):
        """Classes, probabilities, unseen flags and task ids of rows, judged
        in windows of their stream's recent rows as the node's worker
        judges them."""
        classes, probs, flags, tasks = [], [], [], []
        for i in range(len(x)):
            win = self._windows[streams[i] if streams else ""]
            win.append((x[i], attrs[i]))
            t, u = knowledge.allocate(list(win))[-1]
            p = knowledge.tasks[t].network.predict_proba(np.asarray(x[i], np.float32).reshape(1, -1))[0]
            classes.append(int(p.argmax()))
            probs.append(p)
            flags.append(bool(u))
            tasks.append(knowledge.tasks[t].id)
        return classes, probs, flags, tasks

    def evaluate(self, data, post_process=None, metrics=None, metrics_param=None, model_threshold=None, **kwargs):
        """Evaluates each knowledge base of MODEL_URLS (the candidate, then
        the serving one, when there is one) on data and writes what Sedna's
        eval workers report to RESULT_URL: a list of {"format", "url",
        "metrics"}, the metrics accuracy, precision and recall per class,
        and unseen (the share called unseen), as the built-in eval worker
        measures them. Returns that list."""
        urls = [u for u in (self.model_urls or "").split(";") if u] or [self.model_path]
        x, attrs, y = self._split(data)
        out = []
        for url in urls:
            with open(url, "rb") as f:
                knowledge = kb.from_bytes(f.read())
            self.kb = knowledge
            self._windows.clear()
            pred, _, flags, _ = self._predict(knowledge, x, attrs)
            pred = np.asarray(pred)
            m = {"accuracy": float((pred == y).mean()) if len(y) else 0.0,
                 "unseen": float(np.mean(flags)) if flags else 0.0, "precision": [], "recall": []}
            for c in range(knowledge.config["classes"]):
                tp = float(np.sum((pred == c) & (y == c)))
                m["precision"].append(tp / max(float(np.sum(pred == c)), 1.0) if np.any(pred == c) else 0.0)
                m["recall"].append(tp / float(np.sum(y == c)) if np.any(y == c) else 0.0)
            if metrics:
                m[str(metrics)] = m["accuracy"]  # Sedna's precision_score, micro-averaged: accuracy
            if callable(post_process):
                m = post_process(m)
            out.append({"format": kb.FORMAT, "url": url, "metrics": m})
            self.log.info("evaluated %s: accuracy %.3f, unseen %.3f", url, m["accuracy"], m["unseen"])
        return self.report(out)

    def _load(self, path):
        with open(path, "rb") as f:
            self.kb = kb.from_bytes(f.read())
        self._windows.clear()

    def inference(self, data=None, post_process=None, stream=None, **kwargs):
        """(res, is_unseen_task, tasks) of data, as Sedna's: res the class of
        each row (post_process applied), is_unseen_task whether a row is of
        a task the knowledge base has not seen, tasks the id of the task
        whose model answered each. The knowledge base of MODEL_URL is
        loaded on first use, a new one taken by Sedna's hot update. As
        Sedna-Go's inference worker of a job (SEDNA_INFERRED_TOPIC set),
        each row and its answer are published for the node, which keeps
        the rows of unseen tasks for labelling; stream names the rows'
        source (their window)."""
        if self.kb is None:
            self._load(self.model_path)
            self.model_name = Context.get_parameters("SEDNA_MODEL_NAME", "")
            self.model_version = int(Context.get_parameters("SEDNA_MODEL_VERSION", "0"))
        self.hot_update(self._load)
        x, attrs, _ = self._split(data, with_label=False)
        streams = [stream or ""] * len(x)
        classes, probs, flags, tasks = self._predict(self.kb, x, attrs, streams)
        for i in range(len(x)):
            self._publish_inferred(x[i], attrs[i], streams[i], probs[i])
        res = post_process(classes) if callable(post_process) else classes
        return res, any(flags), tasks

    def _publish_inferred(self, x, attr, stream, probs):
        topic = Context.get_parameters("SEDNA_INFERRED_TOPIC")
        if not topic:
            return
        if self._worker is None:
            from sedna.worker import Worker
            self._worker = Worker()
        self._seq += 1
        v = np.asarray(x, "<f4")
        msg = {"id": f"{self.worker_name}-{self._seq}", "shape": [int(v.size)], "dtype": "f32",
               "data": base64.b64encode(v.tobytes()).decode(), "probs": [float(p) for p in probs],
               "model": self.model_version, "attr": attr, "stream": stream}
        self._worker.publish(topic, json.dumps(msg).encode())


class _Data:
    """A task's share of the train data, as an estimator reads it."""

    def __init__(self, x, y):
        self.x, self.y = x, y
        self.data_type = "train"

    def num_examples(self):
        return len(self.x)

    def __len__(self):
        return len(self.x)
