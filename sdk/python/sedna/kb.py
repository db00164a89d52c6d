"""A lifelong learning job's knowledge base in Sedna-Go's encoding
(lifelong/codec.go), written and read with NumPy: its configuration, its
tasks (a task attribute and a model of the learning substrate each) and
the recognition mixture that allocates a sample to a task or calls it
unseen (one Gaussian per task here). Sedna-Go's lifelong workers serve a
knowledge base written here as one of their own."""

import math

import msgpack
import numpy as np

from sedna import model

VERSION = 1
# FORMAT is a knowledge base's model format, as MODEL_FORMAT names it.
FORMAT = "sedna-kb"
ATTRIBUTE, CLUSTER = "attribute", "cluster"


class KBError(ValueError):
    """A knowledge base that does not decode or does not hold together."""


class Task:
    def __init__(self, id, attr, network, samples=0, total=0, accuracy=float("nan"), precision=float("nan"), components=()):
        self.id, self.attr, self.network = id, attr, network
        self.samples, self.total = int(samples), int(total)
        self.accuracy, self.precision = float(accuracy), float(precision)
        self.components = list(components)


class KnowledgeBase:
    """Tasks and their models over samples of dim features and classes
    classes; method ATTRIBUTE (a sample's task is its attribute's) or
    CLUSTER; window and unseen_quantile set the unseen-task test as
    Sedna-Go's knowledge base does."""

    def __init__(self, dim, classes, method=ATTRIBUTE, window=10, unseen_quantile=0.01, hidden=(32,), **config):
        if method not in (ATTRIBUTE, CLUSTER):
            raise KBError(f"method {method!r}: want {ATTRIBUTE} or {CLUSTER}")
        self.config = {"method": method, "dim": int(dim), "classes": int(classes), "hidden": list(hidden),
                       "epochs": int(config.get("epochs", 30)), "batchSize": int(config.get("batch_size", 32)),
                       "learningRate": float(config.get("learning_rate", 0.001)), "holdOut": float(config.get("hold_out", 0.2)),
                       "minTaskSamples": int(config.get("min_task_samples", 50)), "maxTasks": int(config.get("max_tasks", 8)),
                       "unseenQuantile": float(unseen_quantile), "window": int(window), "seed": int(config.get("seed", 0))}
        self.tasks = []
        self.means, self.covs, self.weights, self.owner = [], [], [], []
        self.threshold = -math.inf
        self.mixed = 0

    @property
    def dim(self):
        return self.config["dim"]

    def task(self, attr):
        for i, t in enumerate(self.tasks):
            if t.attr == attr:
                return i
        return -1

    def fit(self, tasks):
        """Sets the tasks from [(attr, network, x, accuracy, precision)],
        x the task's training features (n x dim), and fits the recognition
        mixture (a Gaussian per task, its covariance ridged by 1e-3) and
        the unseen threshold over windows of each task's features."""
        self.tasks, self.means, self.covs, self.weights, self.owner = [], [], [], [], []
        total = sum(len(t[2]) for t in tasks)
        for i, (attr, net, x, acc, prec) in enumerate(tasks):
            x = np.asarray(x, np.float64).reshape(-1, self.dim)
            if net.inputs != self.dim or net.classes != self.config["classes"]:
                raise KBError(f"task {attr}: a model of {net.inputs} features to {net.classes} classes, the knowledge base "
                              f"{self.dim} to {self.config['classes']}")
            if len(x) < 2:
                raise KBError(f"task {attr}: {len(x)} samples: a task needs two at least")
            self.tasks.append(Task(f"attr:{attr}", attr, net, samples=len(x), total=len(x), accuracy=acc, precision=prec,
                                   components=[i]))
            self.means.append(x.mean(axis=0))
            self.covs.append(np.cov(x, rowvar=False).reshape(self.dim, self.dim) + 1e-3 * np.eye(self.dim))
            self.weights.append(len(x) / total)
            self.owner.append(i)
        self.mixed = total
        window, means = self.config["window"], []
        for (_, _, x, _, _) in tasks:
            x = np.asarray(x, np.float64).reshape(-1, self.dim)
            for lo in range(0, len(x) - window + 1, window):
                means.append(float(np.mean([self.log_density(r)[1] for r in x[lo:lo + window]])))
        means.sort()
        self.threshold = means[int(self.config["unseenQuantile"] * len(means))] if means else -math.inf
        return self

    def log_density(self, x):
        """(most likely component, the mixture's log density) at x."""
        x = np.asarray(x, np.float64)
        lp = []
        for w, m, c in zip(self.weights, self.means, self.covs):
            d = x - m
            sign, logdet = np.linalg.slogdet(c)
            lp.append(math.log(w) - 0.5 * (self.dim * math.log(2 * math.pi) + logdet + d @ np.linalg.solve(c, d)))
        lp = np.array(lp)
        top = lp.max()
        return int(lp.argmax()), float(top + math.log(np.exp(lp - top).sum()))

    def allocate(self, window):
        """The task (its index) and unseen flag of each of a window of (x,
        attr) samples from one source, as Sedna-Go's knowledge base
        allocates them: the task most of the window's samples are likely
        under, unseen when the window's mean log density is under the
        threshold; with the attribute method, a sample's own task when its
        attribute has one, else unseen."""
        if not self.tasks:
            return [(-1, True)] * len(window)
        votes, lps = [0] * len(self.tasks), []
        for x, _ in window:
            c, lp = self.log_density(x)
            votes[self.owner[c]] += 1
            lps.append(lp)
        near, unseen = int(np.argmax(votes)), float(np.mean(lps)) < self.threshold
        out = []
        for _, attr in window:
            t, u = near, unseen
            if self.config["method"] == ATTRIBUTE:
                i = self.task(attr)
                t, u = (i, False) if i >= 0 else (near, True)
            out.append((t, u))
        return out

    def predict(self, window):
        """Classes and unseen flags of a window of (x, attr) samples from
        one source, as Sedna-Go's knowledge base answers them."""
        if not self.tasks:
            return [-1] * len(window), [True] * len(window)
        classes, flags = [], []
        for (x, _), (t, u) in zip(window, self.allocate(window)):
            p = self.tasks[t].network.predict_proba(np.asarray(x, np.float32).reshape(1, -1))[0]
            classes.append(int(p.argmax()))
            flags.append(u)
        return classes, flags

    def to_bytes(self):
        mixture = None
        if self.tasks:
            mixture = {"dim": self.dim, "weights": [float(w) for w in self.weights],
                       "means": [[float(v) for v in m] for m in self.means],
                       "covs": [[float(v) for v in c.ravel()] for c in self.covs], "logLik": 0.0, "bic": 0.0, "icl": 0.0}
        tasks = [{"id": t.id, "attr": t.attr, "model": t.network.to_bytes(), "samples": t.samples, "total": t.total,
                  "accuracy": t.accuracy, "precision": t.precision, "components": t.components} for t in self.tasks]
        # The configuration's learning rate is a float32 in Go, which takes
        # no float64: the configuration is packed with single floats.
        p = msgpack.Packer(use_bin_type=True)
        out = p.pack_map_header(7) + p.pack("v") + p.pack(VERSION)
        out += p.pack("config") + msgpack.packb(self.config, use_bin_type=True, use_single_float=True)
        for k, v in (("tasks", tasks), ("mixture", mixture), ("owner", self.owner), ("threshold", self.threshold),
                     ("mixed", self.mixed)):
            out += p.pack(k) + p.pack(v)
        return out


def from_bytes(b):
    """Reads a knowledge base; KBError says what is wrong."""
    try:
        w = msgpack.unpackb(b, raw=False, strict_map_key=False)
    except Exception as e:
        raise KBError(f"not a knowledge base: {e}") from None
    if not isinstance(w, dict) or w.get("v") != VERSION:
        raise KBError(f"a knowledge base of encoding version {w.get('v') if isinstance(w, dict) else '?'}, want {VERSION}")
    cfg = w["config"]
    kb = KnowledgeBase(cfg["dim"], cfg["classes"], method=cfg.get("method") or ATTRIBUTE, window=cfg.get("window") or 10,
                       unseen_quantile=cfg.get("unseenQuantile") or 0.01, hidden=cfg.get("hidden") or (32,))
    kb.config.update({k: v for k, v in cfg.items() if v is not None})
    for t in w.get("tasks") or []:
        kb.tasks.append(Task(t["id"], t.get("attr", ""), model.from_bytes(t["model"]), t.get("samples", 0), t.get("total", 0),
                             t.get("accuracy", float("nan")), t.get("precision", float("nan")), t.get("components") or []))
    m = w.get("mixture")
    if m:
        d = m["dim"]
        kb.weights, kb.means = list(m["weights"]), [np.array(v) for v in m["means"]]
        kb.covs = [np.array(c).reshape(d, d) for c in m["covs"]]
    kb.owner, kb.threshold, kb.mixed = list(w.get("owner") or []), float(w.get("threshold", -math.inf)), int(w.get("mixed", 0))
    return kb
