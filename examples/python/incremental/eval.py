"""An incremental learning eval worker written against Sedna's lib, as
Sedna's examples are (examples/incremental_learning/helmet_detection/
training/eval.py): the candidate and the serving model (MODEL_URLS)
scored on the evaluation set (TEST_DATASET_URL); what it writes to
RESULT_URL decides the deploy."""

import numpy as np

from sedna.common.config import BaseConfig
from sedna.datasources import TxtDataParse
from sedna.core.incremental_learning import IncrementalLearning

from interface import Estimator


def _load_sample(line):
    path, label = line.split()[:2]
    x = np.load(path)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    return x.astype(np.float32).ravel(), int(label)


def main():
    test_data = TxtDataParse(data_type="eval", func=_load_sample).parse(BaseConfig.test_dataset_url)
    return IncrementalLearning(estimator=Estimator).evaluate(test_data)


if __name__ == "__main__":
    main()
