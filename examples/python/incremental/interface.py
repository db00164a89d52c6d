"""The estimator of the Sedna-style incremental training worker: an MLP
(the learning substrate's format, read and written by sedna.model)
fine-tuned with NumPy by Adam (sedna.model.fit). A Sedna worker's interface.py
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
        model.fit(self.net, x, train_data.y, epochs=epochs, batch_size=batch_size, learning_rate=float(learning_rate),
                  seed=int(Context.get_parameters("seed", 1)))
        return {"samples": len(x)}

    def predict(self, data, **kwargs):
        return self.net.predict_proba(np.asarray(data, np.float32).reshape(-1, self.net.inputs))

    def evaluate(self, data, model_path=None, **kwargs):
        net = model.load(model_path) if model_path else self.net
        x = np.stack([np.asarray(v, np.float32).ravel() for v in data.x])
        pred = net.predict_proba(x).argmax(axis=1)
        return {"accuracy": float((pred == np.asarray(data.y, np.int64)).mean())}

    def save(self, model_path=""):
        self.net.save(model_path)
