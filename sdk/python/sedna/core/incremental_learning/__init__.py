"""IncrementalLearning, as Sedna's lib: the train, eval and deploy
workers of an IncrementalLearningJob (docs/WORKERS.md, "Incremental
learning's external workers")."""

import base64
import json

import numpy as np

from sedna.common.config import Context
from sedna.core.base import JobBase
from sedna import hem

__all__ = ("IncrementalLearning",)


class IncrementalLearning(JobBase):
    """Sedna's IncrementalLearning(estimator, hard_example_mining)."""

    def __init__(self, estimator, hard_example_mining=None):
        super().__init__(estimator=estimator)
        self.model_urls = Context.get_parameters("MODEL_URLS")
        self.hard_example_mining = hard_example_mining or self.get_hem_algorithm_from_config()
        self.hem = hem.miner(self.hard_example_mining) if self.hard_example_mining else None
        # The model answering: its Model's name and version (Sedna-Go).
        self.model_name, self.model_version = "", 0
        self._worker = None
        self._seq = 0

    @classmethod
    def get_hem_algorithm_from_config(cls, **param):
        return Context.get_algorithm_from_api("HEM", **param)

    def train(self, train_data, valid_data=None, post_process=None, **kwargs):
        """Trains the estimator on train_data and saves the model where
        the job wants it (MODEL_URL); the train stage succeeds when the
        program exits 0."""
        callback = post_process if callable(post_process) else None
        res = self.estimator.train(train_data=train_data, valid_data=valid_data, **kwargs)
        path = self.model_path
        if not path:
            raise RuntimeError("MODEL_URL is not set: this is not a train worker of a job")
        self.estimator.save(path)
        self.log.info("model saved to %s", path)
        if callback:
            res = callback(res)
        return self.estimator

    def evaluate(self, data, post_process=None, **kwargs):
        """Evaluates each model of MODEL_URLS (the candidate, then the
        serving one) with the estimator's evaluate(data=, model_path=) and
        writes what Sedna's eval workers report to RESULT_URL: a list of
        {"format", "url", "metrics"}. Returns that list."""
        urls = [u for u in (self.model_urls or "").split(";") if u] or [self.model_path]
        callback = post_process if callable(post_process) else None
        out = []
        for url in urls:
            metrics = self.estimator.evaluate(data=data, model_path=url, **kwargs)
            if callback:
                metrics = callback(metrics)
            out.append({"format": Context.get_parameters("MODEL_FORMAT", "sedna"), "url": url,
                        "metrics": metrics})
        for m in out:
            self.log.info("evaluated %s: %s", m["url"], m["metrics"])
        return self.report(out)

    def inference(self, data=None, post_process=None, **kwargs):
        """(result, post-processed result, is_hard_example) of data, the
        model of MODEL_URL loaded on first use. With Sedna's hot update
        (MODEL_HOT_UPDATE=true), a new model named in the hot update file
        (MODEL_HOT_UPDATE_CONFIG, read at most every
        MODEL_POLL_PERIOD_SECONDS) is loaded before answering. As Sedna-Go's
        inference worker of a job (SEDNA_INFERRED_TOPIC set), each sample
        and its answer are published there for the node to mine and keep
        the hard ones (docs/WORKERS.md)."""
        if not self.estimator.has_load:
            self.estimator.load(self.model_path)
            self.model_name = Context.get_parameters("SEDNA_MODEL_NAME", "")
            self.model_version = int(Context.get_parameters("SEDNA_MODEL_VERSION", "0"))
        self._hot_update()
        infer_res = self.estimator.predict(data, **kwargs)
        res = post_process(infer_res) if callable(post_process) else infer_res
        probs = [float(v) for v in np.asarray(infer_res, np.float64).ravel()]
        is_hard = bool(self.hem(probs)) if self.hem is not None else False
        self._publish_inferred(data, probs)
        return infer_res, res, is_hard

    def _hot_update(self):
        self.hot_update(self.estimator.load)

    def _publish_inferred(self, data, probs):
        topic = Context.get_parameters("SEDNA_INFERRED_TOPIC")
        if not topic:
            return
        if self._worker is None:
            from sedna.worker import Worker
            self._worker = Worker()
        x = np.asarray(data)
        dtype, raw = ("u8", x.astype(np.uint8).tobytes()) if x.dtype == np.uint8 else ("f32", x.astype("<f4").tobytes())
        self._seq += 1
        msg = {"id": f"{self.worker_name}-{self._seq}", "shape": list(x.shape), "dtype": dtype,
               "data": base64.b64encode(raw).decode(), "probs": probs, "model": self.model_version}
        self._worker.publish(topic, json.dumps(msg).encode())
