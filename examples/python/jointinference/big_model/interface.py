"""The big model's estimator: the joint inference example's cloud MLP
(the learning substrate's format, read by sedna.model), answering with
NumPy. A Sedna big model's interface.py has the same methods."""

import numpy as np

from sedna import model


class Estimator:
    def __init__(self, **kwargs):
        self.net = None

    def load(self, model_url=""):
        self.net = model.load(model_url)

    def predict(self, data, **kwargs):
        x = np.asarray(data, np.float32).reshape(1, -1)
        return self.net.predict_proba(x)[0]
