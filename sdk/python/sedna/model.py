"""The learning substrate's model format (SDML, ml/codec.go), read and
written with NumPy: dense layers with ReLU between them and a softmax,
what the built-in workers serve and federated learning averages."""

import struct
import zlib

import numpy as np

MAGIC = b"SDML"
VERSION = 1
SOFTMAX, MLP = 1, 2


class ModelError(ValueError):
    """Bytes that are not a model of this format."""


class Network:
    """A network: widths (inputs ... classes), per layer a weight matrix
    W[l] (out x in) and biases b[l] (out), and the samples it was last
    fitted on."""

    def __init__(self, widths, weights=None, biases=None, samples=0):
        self.widths = [int(w) for w in widths]
        if len(self.widths) < 2:
            raise ModelError("a network has at least an input and an output width")
        pairs = list(zip(self.widths[:-1], self.widths[1:]))
        self.W = weights if weights is not None else [np.zeros((o, i), np.float32) for i, o in pairs]
        self.b = biases if biases is not None else [np.zeros(o, np.float32) for _, o in pairs]
        self.samples = int(samples)

    @property
    def inputs(self):
        return self.widths[0]

    @property
    def classes(self):
        return self.widths[-1]

    def flat(self):
        """All weights as one float32 vector, the order federated averaging
        and the format use: per layer W row-major, then b."""
        return np.concatenate([np.concatenate([w.ravel(), b]) for w, b in zip(self.W, self.b)]).astype(np.float32)

    def set_flat(self, v):
        v = np.asarray(v, np.float32)
        if v.size != sum((i + 1) * o for i, o in zip(self.widths[:-1], self.widths[1:])):
            raise ModelError(f"{v.size} weights for widths {self.widths}")
        off = 0
        for l, (i, o) in enumerate(zip(self.widths[:-1], self.widths[1:])):
            self.W[l] = v[off:off + i * o].reshape(o, i).copy()
            off += i * o
            self.b[l] = v[off:off + o].copy()
            off += o

    def predict_proba(self, x):
        """Class probabilities of the rows of x (n x inputs)."""
        a = np.asarray(x, np.float32).reshape(-1, self.inputs)
        for l, (w, b) in enumerate(zip(self.W, self.b)):
            a = a @ w.T + b
            if l < len(self.W) - 1:
                a = np.maximum(a, 0)
        a = a - a.max(axis=1, keepdims=True)
        e = np.exp(a)
        return e / e.sum(axis=1, keepdims=True)

    def to_bytes(self):
        kind = SOFTMAX if len(self.widths) == 2 else MLP
        flat = self.flat()
        head = MAGIC + struct.pack("<HBB", VERSION, kind, len(self.widths))
        head += struct.pack("<" + "I" * len(self.widths), *self.widths)
        head += struct.pack("<QI", self.samples, flat.size)
        body = head + flat.astype("<f4").tobytes()
        return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)

    def save(self, path):
        with open(path, "wb") as f:
            f.write(self.to_bytes())


def random(widths, seed=1):
    """A new network of widths, its weights drawn as He's initialisation
    draws them (normal, variance 2/inputs), its biases zero."""
    rng = np.random.default_rng(seed)
    net = Network(widths)
    for l, (i, o) in enumerate(zip(net.widths[:-1], net.widths[1:])):
        net.W[l] = (rng.standard_normal((o, i)) * np.sqrt(2.0 / i)).astype(np.float32)
    return net


def fit(net, x, y, epochs=5, batch_size=32, learning_rate=0.001, seed=1):
    """Trains net in place on the rows of x (n x inputs) and their classes
    y: epochs of Adam steps on the cross-entropy of shuffled batches, by
    backpropagation through the dense layers and their ReLUs. Returns
    net, its samples set to n."""
    x = np.asarray(x, np.float32).reshape(-1, net.inputs)
    y = np.asarray(y, np.int64)
    rng = np.random.default_rng(seed)
    params = net.W + net.b
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    t = 0
    for _ in range(int(epochs)):
        order = rng.permutation(len(x))
        for lo in range(0, len(order), int(batch_size)):
            b = order[lo:lo + int(batch_size)]
            t += 1
            grads = _gradients(net, x[b], y[b])
            for k, (p, g) in enumerate(zip(params, grads)):
                m, v = moments[k]
                m *= 0.9
                m += (1 - 0.9) * g
                v *= 0.999
                v += (1 - 0.999) * g * g
                mh, vh = m / (1 - 0.9 ** t), v / (1 - 0.999 ** t)
                p -= (learning_rate * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32)
    net.samples = len(x)
    return net


def _gradients(net, x, y):
    """The cross-entropy's gradients of a batch, in the order W + b."""
    acts = [x]
    for l, (w, b) in enumerate(zip(net.W, net.b)):
        z = acts[-1] @ w.T + b
        acts.append(np.maximum(z, 0) if l < len(net.W) - 1 else z)
    logits = acts[-1] - acts[-1].max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    grad = p
    grad[np.arange(len(y)), y] -= 1
    grad /= len(y)
    gw, gb = [None] * len(net.W), [None] * len(net.W)
    for l in range(len(net.W) - 1, -1, -1):
        gw[l], gb[l] = grad.T @ acts[l], grad.sum(axis=0)
        if l > 0:
            grad = (grad @ net.W[l]) * (acts[l] > 0)
    return gw + gb


def from_bytes(b):
    """Decodes a model; ModelError says what is wrong."""
    b = bytes(b)
    if len(b) < 8 or b[:4] != MAGIC:
        raise ModelError("not a sedna model (bad magic)")
    version, kind, layers = struct.unpack("<HBB", b[4:8])
    if version != VERSION:
        raise ModelError(f"format version {version}, this library reads {VERSION}")
    if not ((kind == SOFTMAX and layers == 2) or (kind == MLP and layers in (3, 4))):
        raise ModelError(f"kind {kind} with {layers} layer widths")
    head = 8 + 4 * layers + 12
    if len(b) < head + 4:
        raise ModelError("truncated model")
    widths = struct.unpack("<" + "I" * layers, b[8:8 + 4 * layers])
    samples, count = struct.unpack("<QI", b[8 + 4 * layers:head])
    if len(b) != head + 4 * count + 4:
        raise ModelError(f"{len(b)} bytes for {count} weights")
    if struct.unpack("<I", b[-4:])[0] != zlib.crc32(b[:-4]) & 0xFFFFFFFF:
        raise ModelError("model checksum mismatch")
    n = Network(widths, samples=samples)
    n.set_flat(np.frombuffer(b, "<f4", count, head))
    return n


def load(path):
    with open(path, "rb") as f:
        return from_bytes(f.read())
