"""The estimator of the PyTorch incremental training worker: the CNN of
examples/onnx (its class and preprocessing imported from train_cnn.py),
loaded from the serving ONNX model's weights (Debian's python3-onnx reads
them), fine-tuned with PyTorch and exported to ONNX again. Training stays
with the framework that owns the model; Sedna-Go serves the ONNX."""

import os
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "onnx"))
from train_cnn import CNN, MEAN, STD  # noqa: E402

from sedna.common.config import Context  # noqa: E402


class Estimator:
    def __init__(self, **kwargs):
        torch.manual_seed(int(Context.get_parameters("seed", 0)))
        torch.set_num_threads(1)
        self.model = CNN()
        base = Context.get_parameters("BASE_MODEL_URL")
        if base:
            self.load(base)

    def load(self, model_url=""):
        """The CNN's weights from an ONNX file of it (its initializers are
        named as the state dict's keys)."""
        graph = onnx.load(model_url).graph
        state = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
        missing = set(self.model.state_dict()) - set(state)
        if missing:
            raise ValueError(f"{model_url} is not this CNN: no {sorted(missing)}")
        self.model.load_state_dict({k: state[k] for k in self.model.state_dict()})

    @staticmethod
    def _tensor(xs):
        x = np.stack([np.asarray(v, np.float32).reshape(14, 14) for v in xs])
        return torch.from_numpy((x - MEAN) / STD).unsqueeze(1)

    def train(self, train_data, valid_data=None, epochs=5, batch_size=32, learning_rate=0.001, **kwargs):
        x, y = self._tensor(train_data.x), torch.from_numpy(np.asarray(train_data.y, np.int64))
        opt = torch.optim.Adam(self.model.parameters(), lr=float(learning_rate))
        loss_fn = torch.nn.CrossEntropyLoss()
        gen = torch.Generator().manual_seed(0)
        self.model.train()
        for _ in range(int(epochs)):
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(order), int(batch_size)):
                b = order[i:i + int(batch_size)]
                opt.zero_grad()
                loss_fn(self.model(x[b]), y[b]).backward()
                opt.step()
        self.model.eval()
        return {"samples": len(x)}

    def predict(self, data, **kwargs):
        with torch.no_grad():
            return torch.softmax(self.model(self._tensor([data])), 1)[0].numpy()

    def save(self, model_path=""):
        self.model.eval()
        torch.onnx.export(self.model, torch.zeros(1, 1, 14, 14), model_path, input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=13)
