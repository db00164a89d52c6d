"""JobBase, as Sedna's lib: the estimator behind a backend, the worker's
parameters, the model's path."""

import os

from sedna.backend import set_backend
from sedna.common.config import BaseConfig, Context
from sedna.common.log import LOGGER


class JobBase:
    """What every paradigm's class has: estimator, config, job_name,
    worker_name, model_path, get_parameters."""

    parameters = Context

    def __init__(self, estimator, config=None):
        self.config = BaseConfig()
        if config:
            self.config.from_json(config)
        self.estimator = set_backend(estimator=estimator, config=self.config)
        self.job_name = self.config.job_name or self.config.service_name
        self.worker_name = self.config.worker_name or f"{self.job_name}-worker"
        self.log = LOGGER

    @property
    def model_path(self):
        """MODEL_URL: the model's file (Sedna-Go gives a file, not a
        directory; a directory gets MODEL_NAME or "model" joined)."""
        url = Context.get_parameters("MODEL_URL", self.config.model_url)
        if url and os.path.isdir(url):
            return os.path.join(url, self.config.model_name or "model")
        return url or self.get_parameters("model_path")

    def get_parameters(self, param, default=None):
        return self.parameters.get_parameters(param=param, default=default)

    def train(self, **kwargs):
        raise NotImplementedError

    def inference(self, x=None, post_process=None, **kwargs):
        res = self.estimator.predict(x, **kwargs)
        return post_process(res) if callable(post_process) else res

    def evaluate(self, data, post_process=None, **kwargs):
        res = self.estimator.evaluate(data=data, **kwargs)
        return post_process(res) if callable(post_process) else res
