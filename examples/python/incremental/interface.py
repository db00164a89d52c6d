"""The estimator of the Sedna-style incremental training worker: an MLP
(the learning substrate's format, read and written by sedna.model)
fine-tuned with NumPy by Adam. A Sedna worker's interface.py
has the same methods (load, train, save, predict, evaluate)."""

import numpy as np

from sedna import model
from sedna.common.config import Context


class Estimator:
    def __init__(self, **kwargs):
        self.net = None
        base = Context.get_parameters("BASE_MODEL_URL")
        if base:
            self.load(base)

    def load(self, model_url=""):
        self.net = model.load(model_url)

    def train(self, train_data, valid_data=None, epochs=5, batch_size=32, learning_rate=0.001, **kwargs):
        x = np.stack([np.asarray(v, np.float32).ravel() for v in train_data.x])
        y = np.asarray(train_data.y, np.int64)
        rng = np.random.default_rng(int(Context.get_parameters("seed", 1)))
        n = self.net
        self._adam = [(np.zeros_like(p), np.zeros_like(p)) for p in n.W + n.b]
        self._t = 0
        for _ in range(int(epochs)):
            order = rng.permutation(len(x))
            for i in range(0, len(order), int(batch_size)):
                b = order[i:i + int(batch_size)]
                self._step(x[b], y[b], float(learning_rate))
        n.samples = len(x)
        return {"samples": len(x)}

    def _update(self, k, param, grad, lr, b1=0.9, b2=0.999, eps=1e-8):
        m, v = self._adam[k]
        m *= b1
        m += (1 - b1) * grad
        v *= b2
        v += (1 - b2) * grad * grad
        mh, vh = m / (1 - b1 ** self._t), v / (1 - b2 ** self._t)
        param -= (lr * mh / (np.sqrt(vh) + eps)).astype(np.float32)

    def _step(self, x, y, lr):
        """One Adam step on the cross-entropy of a batch, by
        backpropagation through the dense layers and their ReLUs."""
        n = self.net
        acts = [x]
        for l, (w, b) in enumerate(zip(n.W, n.b)):
            z = acts[-1] @ w.T + b
            acts.append(np.maximum(z, 0) if l < len(n.W) - 1 else z)
        logits = acts[-1] - acts[-1].max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        self._t += 1
        grad = p
        grad[np.arange(len(y)), y] -= 1
        grad /= len(y)
        for l in range(len(n.W) - 1, -1, -1):
            gw, gb = grad.T @ acts[l], grad.sum(axis=0)
            if l > 0:
                grad = (grad @ n.W[l]) * (acts[l] > 0)
            self._update(l, n.W[l], gw, lr)
            self._update(len(n.W) + l, n.b[l], gb, lr)

    def predict(self, data, **kwargs):
        return self.net.predict_proba(np.asarray(data, np.float32).reshape(-1, self.net.inputs))

    def evaluate(self, data, model_path=None, **kwargs):
        net = model.load(model_path) if model_path else self.net
        x = np.stack([np.asarray(v, np.float32).ravel() for v in data.x])
        pred = net.predict_proba(x).argmax(axis=1)
        return {"accuracy": float((pred == np.asarray(data.y, np.int64)).mean())}

    def save(self, model_path=""):
        self.net.save(model_path)
