"""JobBase, as Sedna's lib: the estimator behind a backend, the worker's
parameters, the model's path."""

import json
import os
import time

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

    def report(self, out):
        """Writes an eval worker's result, a list of {"format", "url",
        "metrics"}, to RESULT_URL (when set) whole: a reader never sees
        half of it."""
        result = Context.get_parameters("RESULT_URL")
        if result:
            tmp = result + ".tmp"
            with open(tmp, "w") as f:
                json.dump(out, f)
            os.replace(tmp, result)
        return out

    def hot_update(self, load):
        """Sedna's hot update: with MODEL_HOT_UPDATE=true, a new model named
        in the hot update file (MODEL_HOT_UPDATE_CONFIG, read at most every
        MODEL_POLL_PERIOD_SECONDS) is given to load(path), and its name and
        version kept in model_name and model_version."""
        if Context.get_parameters("MODEL_HOT_UPDATE", "false").lower() != "true":
            return
        now = time.monotonic()
        period = float(Context.get_parameters("MODEL_POLL_PERIOD_SECONDS", "60"))
        if now - getattr(self, "_polled", -1e9) < period:
            return
        self._polled = now
        path = Context.get_parameters("MODEL_HOT_UPDATE_CONFIG")
        try:
            with open(path) as f:
                conf = json.load(f)["model_config"]
        except (OSError, ValueError, KeyError, TypeError):
            return
        if conf.get("model_update_time") and conf["model_update_time"] != getattr(self, "_updated", None):
            load(conf["model_path"])
            self._updated = conf["model_update_time"]
            self.model_name = conf.get("model_name", "")
            self.model_version = int(conf.get("model_version", 0))
            self.log.info("hot update: serving model %s", conf["model_update_time"])
