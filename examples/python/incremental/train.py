"""An incremental learning train worker written against Sedna's lib, as
Sedna's examples are (examples/incremental_learning/helmet_detection/
training/train.py): the same imports, classes, methods and environment
variables. Run on Sedna-Go with sdk/python on PYTHONPATH; nothing here
knows it is not Sedna."""

import numpy as np

from sedna.common.config import Context, BaseConfig
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
    # The examples labelled since the last training, and the earlier ones
    # replayed against forgetting.
    urls = [u for u in (BaseConfig.train_dataset_url, BaseConfig.original_dataset_url) if u]
    train_data = TxtDataParse(data_type="train", func=_load_sample).parse(*urls)
    epochs = int(Context.get_parameters("epochs", 5))
    batch_size = int(Context.get_parameters("batch_size", 32))
    learning_rate = float(Context.get_parameters("learning_rate", 0.001))
    incremental_instance = IncrementalLearning(estimator=Estimator)
    return incremental_instance.train(train_data=train_data, epochs=epochs, batch_size=batch_size,
                                      learning_rate=learning_rate)


if __name__ == "__main__":
    main()
