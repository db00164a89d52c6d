"""set_backend, as Sedna's lib: the estimator wrapped so that train calls
its fit or train, with only the keyword arguments it takes."""

import inspect


class BackendBase:
    """Forwards to the estimator (a class is instantiated first)."""

    def __init__(self, estimator, **kwargs):
        self.framework = ""
        self.estimator = estimator() if inspect.isclass(estimator) else estimator
        self.has_load = False

    @staticmethod
    def _call(fn, *args, **kwargs):
        sig = inspect.signature(fn)
        if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
            kwargs = {k: v for k, v in kwargs.items() if k in sig.parameters}
        return fn(*args, **kwargs)

    def train(self, *args, **kwargs):
        fn = getattr(self.estimator, "fit", None) or getattr(self.estimator, "train")
        return self._call(fn, *args, **kwargs)

    def predict(self, data, **kwargs):
        return self._call(self.estimator.predict, data, **kwargs)

    def predict_proba(self, data, **kwargs):
        return self._call(self.estimator.predict_proba, data, **kwargs)

    def evaluate(self, data, **kwargs):
        return self._call(self.estimator.evaluate, data, **kwargs)

    def load(self, model_url="", **kwargs):
        self._call(self.estimator.load, model_url, **kwargs)
        self.has_load = True

    def save(self, model_path="", **kwargs):
        self._call(self.estimator.save, model_path, **kwargs)
        return model_path

    def get_weights(self):
        return self.estimator.get_weights()

    def set_weights(self, weights):
        return self.estimator.set_weights(weights)


def set_backend(estimator=None, config=None):
    return BackendBase(estimator)
