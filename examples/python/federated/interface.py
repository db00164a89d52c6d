"""The estimator of the Sedna-style federated training worker: the
network the job's global model describes (sedna.model.Network: dense
layers, ReLU between them, softmax), trained with NumPy by SGD with
momentum, as the built-in Go training worker does (or Adam), so that its
updates and the Go workers' average well. A Sedna worker's interface.py
has the same methods (train, get_weights, set_weights, predict, evaluate,
save, load)."""

import numpy as np

from sedna import model
from sedna.common.config import Context


class Estimator:
    def __init__(self, **kwargs):
        self.net = None
        # Sedna-Go's names for the built-in worker's optimiser, in the
        # template's env: the same names mean the same here.
        self.optimizer = str(Context.get_parameters("SEDNA_FL_OPTIMIZER", "sgd")).lower()
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"SEDNA_FL_OPTIMIZER {self.optimizer!r}: want sgd or adam")
        self.momentum = float(Context.get_parameters("SEDNA_FL_MOMENTUM", 0))
        if not 0 <= self.momentum < 1:
            raise ValueError(f"SEDNA_FL_MOMENTUM {self.momentum}: want [0, 1)")
        self.rng = np.random.default_rng(int(Context.get_parameters("seed", 1)))

    def set_weights(self, weights):
        """Takes the global model as FederatedLearning gives it: [W0, b0,
        W1, b1, ...], W (out, in); the shapes are the architecture."""
        arrays = [np.asarray(w, np.float32) for w in weights]
        if len(arrays) < 2 or len(arrays) % 2:
            raise ValueError(f"{len(arrays)} arrays: want a weight matrix and a bias vector per layer")
        Ws, bs = arrays[0::2], arrays[1::2]
        if any(w.ndim != 2 for w in Ws):
            raise ValueError(f"weight matrices of shapes {[w.shape for w in Ws]}")
        widths = [Ws[0].shape[1]] + [w.shape[0] for w in Ws]
        for l, (w, b) in enumerate(zip(Ws, bs)):
            if w.shape != (widths[l + 1], widths[l]) or b.shape != (widths[l + 1],):
                raise ValueError(f"layer {l}: weights {w.shape} and biases {b.shape} do not chain from widths {widths}")
        self.net = model.Network(widths, weights=[w.copy() for w in Ws], biases=[b.copy() for b in bs])

    def get_weights(self):
        out = []
        for w, b in zip(self.net.W, self.net.b):
            out += [w, b]
        return out

    def train(self, train_data, valid_data=None, epochs=1, batch_size=32, learning_rate=None, **kwargs):
        """epochs passes over train_data in shuffled batches; returns the
        last pass's mean loss and the samples trained on."""
        n = self.net
        x = np.asarray(train_data.x, np.float32)
        y = np.asarray(train_data.y, np.int64)
        if x.ndim != 2 or x.shape[1] != n.inputs:
            raise ValueError(f"the data has {x.shape[-1] if x.ndim == 2 else x.shape} features per sample, the model takes {n.inputs}")
        keep = (y >= 0) & (y < n.classes)  # a label the model does not have is skipped, as the built-in does
        x, y = x[keep], y[keep]
        if not len(x):
            raise ValueError(f"no sample has a label below the model's {n.classes} classes")
        lr = float(learning_rate if learning_rate is not None else (0.001 if self.optimizer == "adam" else 0.05))
        params = [p for pair in zip(n.W, n.b) for p in pair]
        vel = [np.zeros_like(p) for p in params]
        sq = [np.zeros_like(p) for p in params] if self.optimizer == "adam" else None
        steps, loss = 0, 0.0
        for _ in range(int(epochs)):
            order = self.rng.permutation(len(x))
            total, batches = 0.0, 0
            for i in range(0, len(order), int(batch_size)):
                b = order[i:i + int(batch_size)]
                grads, l = self._gradients(x[b], y[b])
                steps += 1
                self._step(params, grads, vel, sq, lr, steps)
                total, batches = total + l, batches + 1
            loss = total / max(batches, 1)
        n.samples = len(x)
        return {"loss": loss, "samples": len(x)}

    def _gradients(self, x, y):
        """The gradients of the batch's mean cross-entropy, [gW0, gb0, ...],
        by backpropagation through the ReLUs, and the mean loss."""
        n = self.net
        acts = [x]
        for l, (w, b) in enumerate(zip(n.W, n.b)):
            z = acts[-1] @ w.T + b
            acts.append(np.maximum(z, 0) if l < len(n.W) - 1 else z)
        z = acts[-1] - acts[-1].max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        rows = np.arange(len(y))
        loss = float(-np.log(np.maximum(p[rows, y], 1e-12)).mean())
        d = p
        d[rows, y] -= 1
        d /= len(y)
        grads = [None] * (2 * len(n.W))
        for l in range(len(n.W) - 1, -1, -1):
            grads[2 * l], grads[2 * l + 1] = d.T @ acts[l], d.sum(axis=0)
            if l > 0:
                d = (d @ n.W[l]) * (acts[l] > 0)
        return grads, loss

    def _step(self, params, grads, vel, sq, lr, t):
        for p, g, v, i in zip(params, grads, vel, range(len(params))):
            g = g.astype(np.float32)
            if sq is None:  # SGD: v = momentum v + g; p -= lr v
                v *= self.momentum
                v += g
                p -= lr * v
            else:  # Adam
                v *= 0.9
                v += 0.1 * g
                sq[i] *= 0.999
                sq[i] += 0.001 * g * g
                p -= (lr / (1 - 0.9 ** t)) * v / (np.sqrt(sq[i] / (1 - 0.999 ** t)) + 1e-8)

    def predict(self, data, **kwargs):
        return self.net.predict_proba(np.asarray(data, np.float32).reshape(-1, self.net.inputs))

    def evaluate(self, data, **kwargs):
        pred = self.predict(data.x).argmax(axis=1)
        return {"accuracy": float((pred == np.asarray(data.y, np.int64)).mean())}

    def save(self, model_path=""):
        self.net.save(model_path)

    def load(self, model_url=""):
        self.net = model.load(model_url)
