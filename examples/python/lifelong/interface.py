"""The estimator and data settings of the Sedna-style lifelong learning
workers, the thermal-comfort example's (examples/lifelong): a task's model
is an MLP of the learning substrate's format (sedna.model) trained from
scratch with NumPy by Adam. A Sedna worker's interface.py has the same
names (DATACONF, Estimator, feature_process)."""

import numpy as np

from sedna import model
from sedna.common.config import Context

DATACONF = {
    "ATTRIBUTES": ["task"],
    "LABEL": "preference",
}


def feature_process(df):
    """The comfort surveys need no processing: their features are scaled
    where they are drawn."""
    return df


class Estimator:
    def __init__(self, **kwargs):
        self.net = None

    def train(self, train_data, valid_data=None, epochs=30, batch_size=32, learning_rate=0.001, num_classes=3, **kwargs):
        x = np.asarray(train_data.x, np.float32)
        hidden = [int(h) for h in str(Context.get_parameters("hidden", "32")).split(",") if h.strip()]
        seed = int(Context.get_parameters("seed", 1))
        self.net = model.random([x.shape[1], *hidden, int(num_classes)], seed=seed)
        model.fit(self.net, x, train_data.y, epochs=int(Context.get_parameters("epochs", epochs)), batch_size=int(batch_size),
                  learning_rate=float(learning_rate), seed=seed)
        return {"samples": len(x)}

    def predict(self, data, **kwargs):
        return self.net.predict_proba(np.asarray(data, np.float32).reshape(-1, self.net.inputs))

    def load(self, model_url=""):
        self.net = model.load(model_url)

    def save(self, model_path=""):
        self.net.save(model_path)
