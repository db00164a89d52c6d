"""Sedna's built-in hard-example miners, for Python workers that mine
themselves (the agent mines what the inference worker answers with the
job's own miner: docs/WORKERS.md): IBT, CrossEntropy, ThresholdFilter."""

import math


def _entropy_conf(probs):
    k = len(probs)
    if k < 2:
        return 1.0
    h = -sum(p * math.log(p) for p in probs if p > 0)
    return 1.0 - h / math.log(k)


class ThresholdFilter:
    def __init__(self, threshold=0.5, **kw):
        self.threshold = float(threshold)

    def __call__(self, probs):
        return max(probs) < self.threshold


class CrossEntropy:
    def __init__(self, threshold_cross_entropy=0.5, **kw):
        self.threshold = float(threshold_cross_entropy)

    def __call__(self, probs):
        return _entropy_conf(probs) < self.threshold


class IBT:
    def __init__(self, threshold_img=0.5, threshold_box=0.5, **kw):
        self.threshold_img = float(threshold_img)
        self.threshold_box = float(threshold_box)

    def __call__(self, probs):
        # A classifier's answer is one box: hard when it is not confident.
        return max(probs) < self.threshold_box


MINERS = {"IBT": IBT, "CrossEntropy": CrossEntropy, "ThresholdFilter": ThresholdFilter}


def miner(spec):
    """A miner from {"method": NAME, "param": {...}}; None for an empty
    spec; ValueError for an unknown method."""
    if not spec:
        return None
    cls = MINERS.get(spec.get("method"))
    if cls is None:
        raise ValueError(f"hard example miner {spec.get('method')!r}: this library has {sorted(MINERS)}")
    return cls(**spec.get("param", {}))
