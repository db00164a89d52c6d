"""An incremental learning train worker for an ONNX model, written against
Sedna's lib: it fine-tunes the serving model (BASE_MODEL_URL, ONNX) with
PyTorch on the examples labelled since the last training and the earlier
ones, and writes the new model as ONNX (MODEL_URL). Sedna-Go evaluates and
serves it through ONNX Runtime."""

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
    return x.astype(np.float32), int(label)


def main():
    urls = [u for u in (BaseConfig.train_dataset_url, BaseConfig.original_dataset_url) if u]
    train_data = TxtDataParse(data_type="train", func=_load_sample).parse(*urls)
    IncrementalLearning(estimator=Estimator).train(
        train_data=train_data, epochs=int(Context.get_parameters("epochs", 5)),
        batch_size=int(Context.get_parameters("batch_size", 32)),
        learning_rate=float(Context.get_parameters("learning_rate", 0.001)))


if __name__ == "__main__":
    main()
