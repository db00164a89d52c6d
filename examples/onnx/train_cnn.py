#!/usr/bin/python3
"""Train the small CNN of the ONNX example with PyTorch and export it.

The model is a classifier of the Fashion-MNIST subset shipped in
ml/datasets/data (14x14 images, 10 classes): two 3x3 convolutions with max
pooling, then two dense layers; about 25,000 weights. It takes a float32
tensor "image" of shape [N, 1, 14, 14], pixels scaled to [0, 1] and then
normalised with MEAN and STD (the Model resource declares that
preprocessing), and gives the logits "logits" of shape [N, 10].

Runs on Debian's python3-torch (1.13) alone, on the CPU, deterministically:
    /usr/bin/python3 examples/onnx/train_cnn.py --out examples/onnx/fashion-cnn.onnx

It prints one JSON line: the test accuracy PyTorch measured, the epochs and
the output file. The Go test TestCNNScriptReproduces (ml/onnx, build tag
onnx) runs it again and checks that ONNX Runtime scores the new model as it
scores the committed one.
"""

import argparse
import gzip
import json
import os
import struct

import numpy as np
import torch
from torch import nn

MEAN, STD = 0.2860, 0.3530  # of the subset's training pixels, in [0, 1]
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "ml", "datasets", "data")


def idx(name):
    """Reads a gzipped IDX file of unsigned bytes into an array."""
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        raw = f.read()
    _, _, typ, ndim = struct.unpack(">BBBB", raw[:4])
    if typ != 0x08:
        raise SystemExit(f"{name}: IDX type {typ:#x}, want unsigned bytes")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(part):
    x = idx(f"fashion14-{part}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = idx(f"fashion14-{part}-labels-idx1-ubyte.gz").astype(np.int64)
    x = (x - MEAN) / STD
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 16x7x7
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 32x3x3
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 3 * 3, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.head(self.features(x))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="the ONNX file to write")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    xtr, ytr = load("train")
    xte, yte = load("test")
    model = CNN()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    for _ in range(args.epochs):
        model.train()
        order = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(order), 64):
            b = order[i:i + 64]
            opt.zero_grad()
            loss_fn(model(xtr[b]), ytr[b]).backward()
            opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    torch.onnx.export(model, torch.zeros(1, 1, 14, 14), args.out, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=13)
    print(json.dumps({"accuracy": round(acc, 4), "epochs": args.epochs, "out": args.out}))


if __name__ == "__main__":
    main()
