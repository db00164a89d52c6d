"""FederatedLearning, as Sedna's lib: a training worker of a
FederatedLearningJob whose updates the cloud's aggregation worker combines
with those of the built-in Go workers in the same rounds (docs/FEDERATED.md,
"A Python training worker"; the wire: docs/WORKERS.md, "Federated
learning: a training worker").

    fl = FederatedLearning(estimator=Estimator, aggregation="FedAvg")
    fl.train(train_data=train_data, epochs=2, batch_size=16, learning_rate=0.1)

train() joins the job (fl.join), and for each round's global model
(fl.global, in pieces) sets the estimator's weights to it, trains it on
train_data, and sends its weights back (fl.update, in pieces), until the
job is over; then it returns the estimator.

The estimator's weights. estimator.set_weights gets the round's global
model as a list of NumPy float32 arrays, a weight matrix and a bias vector
per layer from the input, [W0, b0, W1, b1, ...], W of shape (out, in) and b
of shape (out,): the layout of sedna.model.Network (W[l], b[l]). It gets
it before every round's training, the first included: the global model of
round 1 is the job's starting point and its shapes are the architecture
(widths = [W0.shape[1]] + [W.shape[0] for each W]), so an estimator builds
its model from it and needs no size of its own. The current global is also
self.network (a sedna.model.Network). estimator.get_weights returns, after
training, either such a list (W of shape (out, in); a list whose matrices
are (in, out), as Keras keeps them, is taken too and transposed; when
in == out the (out, in) reading wins), or one vector of all the weights
in the model's flat order (Network.flat(): per layer W row-major, then b).
Weights the model cannot take (another count or other shapes), like a
global model that estimator.set_weights refuses (it raises) or that
estimator.train raises ValueError for (data of another width, say), end
the worker with one line on stderr and exit status 2: the job's status
shows it (sedna describe), and the agent restarts the worker with backoff.

What the update says beside the weights: its sample count is
len(train_data) (or the "samples" or "num_samples" of what
estimator.train returns, when more than 0), its loss the "loss" that
estimator.train returns (a number, a dict's "loss", or a Keras History's
last; 0 when it gives none), its time the seconds estimator.train took. A
loss or weights that are not finite numbers are not sent (the training
diverged: lower the learning rate); the round goes on without them.

Beside Sedna's API: Sedna's worker talks to the aggregation worker at
AGG_IP:AGG_PORT; this one talks to its node's broker (SEDNA_BROKER_URL),
and AGG_IP and AGG_PORT are ignored. The aggregator is the cloud's
(SEDNA_FL_AGGREGATOR of the aggregation worker): `aggregation` is kept as
self.aggregation only. TRAIN_DATASET_URL is the worker's Dataset file, as
Sedna's controller sets it (Sedna-Go's agent sets it for a training worker
on the node of its Dataset); when it is unset (an older agent),
FederatedLearning(...) takes the file from the job's spec and sets
BaseConfig.train_dataset_url and TRAIN_DATASET_URL to it: construct it
before reading BaseConfig.train_dataset_url.
"""

import json
import math
import os
import queue
import sys
import threading
import time

import numpy as np

from sedna import model, wire
from sedna.common.config import BaseConfig
from sedna.core.base import JobBase

__all__ = ("FederatedLearning", "Globals", "Action", "ModelMismatch", "weights_of", "flat_of",
           "update_messages", "join_body", "dataset_of", "dataset_file", "train_dataset_url")

KIND = "FederatedLearningJob"
KIND_JOIN, KIND_GLOBAL, KIND_UPDATE = "fl.join", "fl.global", "fl.update"
# PIECE_BYTES is the largest piece of an update, as the built-in cuts
# them; MIN_PIECE the least piece but the last the cloud takes (so at most
# size / MIN_PIECE + 1 pieces).
PIECE_BYTES = 256 << 10
MIN_PIECE = 4 << 10
MAX_MODEL = 1 << 30
# REJOIN_SECONDS: a worker that has heard nothing from the cloud joins
# again this often, as the built-in does.
REJOIN_SECONDS = 10.0
# METRICS_SECONDS: the least time between two reports of the numbers.
METRICS_SECONDS = 1.0
EXIT_MISMATCH = 2


class ModelMismatch(ValueError):
    """Weights the model cannot take, or a model the estimator cannot."""


class Action:
    """What Globals.take asks of the worker: "train" (a whole global model:
    run, round, rounds, model), "resend" (its last update), "join" (ask
    again) or "over" (the job is over: return)."""

    def __init__(self, what, run=0, round=0, rounds=0, model=b""):
        self.what, self.run, self.round, self.rounds, self.model = what, run, round, rounds, model

    def __repr__(self):
        return f"Action({self.what!r}, run={self.run}, round={self.round}, {len(self.model)} model bytes)"


class _Assembly:
    def __init__(self, run, round, n, size):
        self.run, self.round, self.n, self.size = run, round, n, size
        self.parts = {}
        self.have = 0


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


class Globals:
    """The training worker's side of the rounds, without I/O: take() reads
    one message of the global topic and says what to do (an Action, or
    None, with the reason in self.why); trained() records the update sent
    for a round, sent again when the cloud asks for it (a piece 0 of that
    round again)."""

    def __init__(self, generation, role):
        self.generation = int(generation or 0)
        self.role = role
        self.run = 0  # the run of the last round trained (0: none)
        self.round = 0  # the last round trained
        self.last = []  # that round's update, its envelopes
        self.heard = False  # a round of this job came: stop joining every 10 s
        self.done_run = 0  # a "done" before any round, being checked
        self.why = ""
        self._asm = None

    def join_body(self):
        """The body of this worker's fl.join."""
        return join_body(self.generation, self.role, self.run, self.round)

    def trained(self, run, round, envelopes):
        """Records the update sent for a round (its envelopes)."""
        self.run, self.round, self.last = int(run), int(round), list(envelopes)

    def _ignore(self, why):
        self.why = why
        return None

    def take(self, payload):
        """The Action a message of the global topic asks for, or None."""
        if not payload:
            return self._ignore("an empty message")
        try:
            env = wire.unpack(payload)
            body = env.body_value()
        except (wire.WireError, ValueError, TypeError) as e:
            return self._ignore(f"not an envelope: {e}")
        if env.kind != KIND_GLOBAL:
            return self._ignore(f"an envelope of kind {env.kind!r}, not {KIND_GLOBAL}")
        if not isinstance(body, dict):
            return self._ignore("a body that is not a map")
        g, u, r, rs = body.get("g", 0), body.get("u", 0), body.get("r", 0), body.get("rs", 0)
        c, n, s, d = body.get("c", 0), body.get("n", 0), body.get("s", 0), body.get("d")
        if not all(_int(v) for v in (g, u, r, rs, c, n, s)) or not (d is None or isinstance(d, bytes)):
            return self._ignore("a piece with fields of the wrong types")
        if g < self.generation:
            return self._ignore(f"generation {g}, older than the worker's {self.generation}")
        if body.get("x"):
            if self.run and u != self.run:
                return self._ignore(f"the end of run {u}, not of run {self.run} it trained in")
            if not self.run and self.done_run != u:
                # Before any round, a "done" may be an old one still on its
                # way (a job deleted and applied again): ask, and end when
                # the answer says the same.
                self.done_run = u
                return Action("join", run=u, round=r)
            return Action("over", run=u, round=r)
        self.heard = True
        if u == self.run and r <= self.round:
            if r == self.round and c == 0:
                return Action("resend", run=u, round=r)
            return self._ignore(f"a piece of round {r}, trained already")
        a = self._asm
        if a is None or u != a.run or r > a.round:
            a = self._asm = _Assembly(u, r, n, s)
        elif r < a.round:
            return self._ignore(f"a piece of round {r} while round {a.round} comes")
        if n < 1 or n > 1 << 16 or not 0 <= c < n or s < 1 or s > MAX_MODEL or n > s // MIN_PIECE + 1:
            self._asm = None
            return self._ignore(f"piece {c} of {n} of a model of {s} bytes")
        if n != a.n or s != a.size:
            self._asm = None
            return self._ignore(f"piece {c} of {n} ({s} bytes), earlier pieces said {a.n} ({a.size} bytes)")
        if c not in a.parts:
            data = d or b""
            if a.have + len(data) > s:
                self._asm = None
                return self._ignore(f"pieces of more than the model's {s} bytes")
            a.parts[c] = data
            a.have += len(data)
        if len(a.parts) < n:
            return self._ignore("")
        self._asm = None
        blob = b"".join(a.parts[i] for i in range(n))
        if len(blob) != s:
            return self._ignore(f"a global model of {len(blob)} bytes, said {s}")
        return Action("train", run=u, round=r, rounds=rs, model=blob)

    def newer_than(self, action):
        """Whether a later round of action's run is being assembled (the
        worker was busy, and rounds came in a burst): train on that one."""
        a = self._asm
        return a is not None and a.run == action.run and a.round > action.round


def join_body(generation, role, run=0, round=0):
    """An fl.join's body (no Dataset shape: a worker with a command gives
    none)."""
    return {"g": int(generation), "w": role, "u": int(run), "r": int(round)}


def update_messages(run, round, role, flat, samples, loss, seconds, source="python/worker", piece_bytes=PIECE_BYTES):
    """The envelopes of an fl.update: flat (the model's W weights) as
    little-endian float32 in pieces of piece_bytes, each with the update's
    numbers."""
    flat = np.asarray(flat, dtype="<f4").ravel()
    raw = flat.tobytes()
    piece_bytes = max(MIN_PIECE, int(piece_bytes))
    pieces = [raw[i:i + piece_bytes] for i in range(0, len(raw), piece_bytes)] or [b""]
    out = []
    for i, p in enumerate(pieces):
        body = {"u": int(run), "r": int(round), "w": role, "c": i, "n": len(pieces), "p": int(flat.size),
                "k": int(samples), "l": float(loss), "t": float(seconds), "d": p}
        out.append(wire.envelope(KIND_UPDATE, body, source=source))
    return out


def weights_of(net):
    """The list set_weights gets: [W0, b0, W1, b1, ...], float32 copies,
    W of shape (out, in)."""
    out = []
    for w, b in zip(net.W, net.b):
        out += [np.array(w, np.float32), np.array(b, np.float32)]
    return out


def _shapes(net, keras=False):
    out = []
    for i, o in zip(net.widths[:-1], net.widths[1:]):
        out += [(i, o) if keras else (o, i), (o,)]
    return out


def flat_of(weights, net):
    """The model's flat float32 vector (Network.flat's order) of what an
    estimator's get_weights gave: a list [W0, b0, ...] with W (out, in) or
    (in, out), or one vector of all the weights. ModelMismatch otherwise."""
    count = net.flat().size
    if isinstance(weights, model.Network):
        weights = weights.flat()
    if isinstance(weights, np.ndarray) and weights.dtype != object:
        v = weights.ravel()
        if v.size != count:
            raise ModelMismatch(f"estimator.get_weights() gave {v.size} weights; the model (widths {net.widths}) has {count}")
        return v.astype(np.float32)
    if not isinstance(weights, (list, tuple)) or not weights:
        raise ModelMismatch(f"estimator.get_weights() gave {type(weights).__name__}: want a list of arrays or one vector of {count} float32")
    if all(np.isscalar(w) for w in weights):
        return flat_of(np.asarray(weights, np.float32), net)
    try:
        arrays = [np.asarray(w, np.float32) for w in weights]
    except (TypeError, ValueError) as e:
        raise ModelMismatch(f"estimator.get_weights(): {e}") from None
    shapes = [a.shape for a in arrays]
    if shapes == _shapes(net):
        return np.concatenate([a.ravel() for a in arrays]).astype(np.float32)
    if shapes == _shapes(net, keras=True):
        return np.concatenate([(a.T if a.ndim == 2 else a).ravel() for a in arrays]).astype(np.float32)
    raise ModelMismatch(f"estimator.get_weights() gave arrays of shapes {shapes}; the model (widths {net.widths}, "
                        f"{count} weights) has {_shapes(net)}")


def _loss_of(res):
    """The training loss in what estimator.train returned, or None."""
    v = res
    if isinstance(res, dict):
        v = res.get("loss")
    elif hasattr(res, "history") and isinstance(getattr(res, "history"), dict):
        v = res.history.get("loss")
    if isinstance(v, (list, tuple, np.ndarray)):
        v = v[-1] if len(v) else None
    if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool):
        return float(v)
    return None


def _samples_of(res, default):
    if isinstance(res, dict):
        for k in ("samples", "num_samples"):
            v = res.get(k)
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0:
                return int(v)
    return int(default)


def _count(data):
    if data is None:
        return 0
    if hasattr(data, "num_examples"):
        return int(data.num_examples())
    try:
        return len(data)
    except TypeError:
        return 0


def dataset_of(job, role):
    """The name of the Dataset of training worker role (train-N) in the
    job's document, or ""."""
    try:
        n = int(str(role).rsplit("-", 1)[1])
        return job["spec"]["trainingWorkers"][n]["dataset"]["name"] or ""
    except (IndexError, KeyError, TypeError, ValueError):
        return ""


def dataset_file(dataset):
    """The file of a Dataset's document on its node (spec.url, a file://
    prefix dropped), or ""."""
    try:
        url = dataset["spec"]["url"] or ""
    except (KeyError, TypeError):
        return ""
    return url[len("file://"):] if url.startswith("file://") else url


def _retained_doc(worker, topic, timeout):
    q = queue.Queue(1)

    def got(_topic, payload):
        try:
            q.put_nowait(json.loads(wire.unpack(payload).body_value()["data"]))
        except (wire.WireError, KeyError, TypeError, ValueError, queue.Full):
            pass

    worker.subscribe(topic, got)
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        return None


def train_dataset_url(worker, timeout=30.0):
    """The file of the worker's Dataset: TRAIN_DATASET_URL, else the
    Dataset the job's spec gives its role (trainingWorkers[N].dataset),
    whose spec the node's broker keeps; "" when neither tells."""
    url = os.environ.get("TRAIN_DATASET_URL", "")
    if url:
        return url
    name = dataset_of(worker.spec(timeout=timeout), worker.role)
    if not name:
        return ""
    doc = _retained_doc(worker, f"sedna/v1/job/Dataset/{wire.level(worker.namespace)}/{wire.level(name)}/spec", timeout)
    return dataset_file(doc) if doc else ""


class FederatedLearning(JobBase):
    """Sedna's FederatedLearning(estimator, aggregation="FedAvg"): train()
    takes part in the job's rounds until it is over (module doc)."""

    def __init__(self, estimator, aggregation="FedAvg", transmitter=None, worker=None):
        """worker (a sedna.worker.Worker, made by register() when None)
        and transmitter (Sedna's; ignored) are keyword arguments beyond
        Sedna's two."""
        super().__init__(estimator=estimator)
        self.aggregation = aggregation
        self.worker = worker
        self.network = None  # the last round's global model
        self.rounds = 0  # the job's rounds at most, as the last global said
        self._metrics, self._metrics_at, self._metrics_due = None, 0.0, False
        self._reconnected = threading.Event()
        if not BaseConfig.train_dataset_url and os.environ.get("SEDNA_JOB_KIND") == KIND:
            self.register()
            try:
                url = train_dataset_url(self.worker)
            except Exception as e:  # the worker's spec did not come
                self.log.warning("federated learning: the Dataset's file not found from the job's spec: %s", e)
                url = ""
            if url:
                BaseConfig.train_dataset_url = url
                os.environ["TRAIN_DATASET_URL"] = url
                self.log.info("federated learning: TRAIN_DATASET_URL %s (the Dataset's file, from the job's spec)", url)
        elif BaseConfig.train_dataset_url:
            self.log.info("federated learning: TRAIN_DATASET_URL %s", BaseConfig.train_dataset_url)

    def register(self, timeout=300):
        """Connects to the node's broker (SEDNA_BROKER_URL), if not yet."""
        if self.worker is None:
            from sedna.worker import Worker
            self.worker = Worker(connect_timeout=timeout)
            client = getattr(self.worker, "client", None)
            if client is not None:
                first = client.on_connect

                def on_connect(*args):
                    first(*args)
                    self._reconnected.set()  # the broker restarted: ask again

                client.on_connect = on_connect
        return self.worker

    def _fail(self, msg):
        sys.stderr.write("sedna: federated learning: " + " ".join(str(msg).split()) + "\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_MISMATCH)

    def train(self, train_data, valid_data=None, post_process=None, **kwargs):
        """Takes part in every round until the job is over, then returns
        the estimator (post_process(estimator) when it is a callable).
        kwargs go to estimator.train (epochs, batch_size, ...)."""
        role = self.worker.role if self.worker is not None else os.environ.get("SEDNA_WORKER_ROLE")
        w = self.register() if role else None
        if w is None or not w.role or not w.report_prefix or not w.job:
            self._fail("not a training worker of a FederatedLearningJob: SEDNA_WORKER_ROLE, SEDNA_REPORT_PREFIX "
                       "and SEDNA_JOB_NAME are what the agent sets")
        samples = _count(train_data)
        if samples <= 0:
            self._fail(f"no training samples in the data given (TRAIN_DATASET_URL={BaseConfig.train_dataset_url!r}): "
                       "an update needs at least one")
        g = Globals(w.generation, w.role)
        q = queue.Queue()
        topic = f"sedna/v1/job/{wire.level(w.kind or KIND)}/{wire.level(w.namespace)}/{wire.level(w.job)}/global"
        w.subscribe(topic, lambda _t, payload: q.put(payload))
        self.log.info("federated learning: %s of %s/%s joins (generation %d, %d samples, aggregation %s in the cloud)",
                      w.role, w.namespace, w.job, g.generation, samples, self.aggregation)
        self._join(g)
        joined = time.monotonic()
        while True:
            batch = []
            try:
                batch.append(q.get(timeout=0.5))
                while True:
                    batch.append(q.get_nowait())
            except queue.Empty:
                pass
            todo = None
            for payload in batch:
                a = g.take(payload)
                if a is None:
                    if g.why:
                        self.log.debug("federated learning: ignored: %s", g.why)
                    continue
                if a.what == "over":
                    self._flush_metrics(force=True)
                    self.log.info("federated learning: the job is over (round %d): %d rounds trained", a.round,
                                  int(self._metrics["clientRoundsTrained"]) if self._metrics else 0)
                    return post_process(self.estimator) if callable(post_process) else self.estimator
                if a.what == "resend":
                    self.log.info("federated learning: round %d: the cloud asks again: the update is sent again", a.round)
                    self._send(g.last)
                elif a.what == "join":
                    self._join(g)
                    joined = time.monotonic()
                elif a.what == "train":
                    todo = a
            if todo is not None and not g.newer_than(todo):
                self._round(g, todo, train_data, valid_data, samples, kwargs)
            if self._reconnected.is_set() or (not g.heard and time.monotonic() - joined >= REJOIN_SECONDS):
                self._reconnected.clear()
                self._join(g)
                joined = time.monotonic()
            self._flush_metrics()

    def _join(self, g):
        try:
            self.worker.send("join", KIND_JOIN, g.join_body())
        except Exception as e:  # noqa: BLE001 - the broker's refusal; joined again later
            self.log.warning("federated learning: join not sent: %s", e)

    def _send(self, envelopes):
        for raw in envelopes:
            try:
                self.worker.publish(self.worker.report_prefix + "update", raw)
            except Exception as e:  # noqa: BLE001 - sent again when the cloud asks
                self.log.warning("federated learning: update not sent; it is sent again when the cloud asks: %s", e)
                return

    def _round(self, g, a, train_data, valid_data, samples, kwargs):
        try:
            net = model.from_bytes(a.model)
        except model.ModelError as e:
            self.log.warning("federated learning: round %d: the global model is unusable: %s", a.round, e)
            return
        self.network, self.rounds = net, a.rounds
        count = net.flat().size
        try:
            self.estimator.set_weights(weights_of(net))
        except Exception as e:  # noqa: BLE001 - the estimator's refusal, whatever its type
            self._fail(f"round {a.round}: the global model (widths {net.widths}, {count} weights) does not fit the "
                       f"estimator: estimator.set_weights: {type(e).__name__}: {e}")
        start = time.monotonic()
        try:
            res = self.estimator.train(train_data=train_data, valid_data=valid_data, **kwargs)
        except ValueError as e:
            self._fail(f"round {a.round}: estimator.train with the global model (widths {net.widths}): {e}")
        took = time.monotonic() - start
        try:
            flat = flat_of(self.estimator.get_weights(), net)
        except ModelMismatch as e:
            self._fail(f"round {a.round}: {e}")
        k = _samples_of(res, samples)
        loss = _loss_of(res)
        loss = 0.0 if loss is None else loss
        if not math.isfinite(loss) or not np.isfinite(flat).all():
            self.log.warning("federated learning: round %d: the training diverged (loss %s): no update; lower learning_rate",
                             a.round, loss)
            self._report(a.round, k, 0.0, took)
            return
        loss = max(loss, 0.0)
        msgs = update_messages(a.run, a.round, g.role, flat, k, loss, took, source=f"python/{g.role}")
        g.trained(a.run, a.round, msgs)
        self._send(msgs)
        self._report(a.round, k, loss, took, trained=True)
        self.log.info("federated learning: round %d/%d: trained on %d samples in %.3f s, loss %.4f; update of %d weights sent",
                      a.round, a.rounds, k, took, loss, count)

    def _report(self, round, samples, loss, took, trained=False):
        m = self._metrics or {"clientRoundsTrained": 0.0}
        self._metrics = {"clientRound": float(round), "clientSamples": float(samples), "clientLoss": float(loss),
                         "clientTrainSeconds": float(took),
                         "clientRoundsTrained": m["clientRoundsTrained"] + (1.0 if trained else 0.0)}
        self._metrics_due = True
        self._flush_metrics()

    def _flush_metrics(self, force=False):
        """Reports the numbers when they changed, at most once a second."""
        if not self._metrics_due:
            return
        now = time.monotonic()
        if not force and now - self._metrics_at < METRICS_SECONDS:
            return
        self._metrics_due, self._metrics_at = False, now
        try:
            self.worker.report_metrics(self._metrics)
        except Exception as e:  # noqa: BLE001 - numbers are best effort
            self.log.warning("federated learning: metrics not reported: %s", e)
