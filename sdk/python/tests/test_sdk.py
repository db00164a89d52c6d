"""Unit tests of the Python worker library, without a broker. Run by the
Go test TestPythonSDK (sdk/python) with Debian's /usr/bin/python3."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

from sedna import wire, model, hem
from sedna.common.config import Context
from sedna.datasources import TxtDataParse


class Wire(unittest.TestCase):
    def test_round_trip(self):
        raw = wire.envelope("worker.metrics", {"role": "train-0", "metrics": {"a": 1.5}, "t": 7},
                            reply_to="r/t", correlation="c1", expires=99)
        e = wire.unpack(raw)
        self.assertEqual((e.kind, e.reply_to, e.correlation, e.expires, e.version), ("worker.metrics", "r/t", "c1", 99, (1, 0)))
        self.assertEqual(e.body_value()["metrics"], {"a": 1.5})

    def test_refusals(self):
        for raw, says in [(b"\xc1", "not msgpack"), (wire.pack({"k": "x"}), "no v"),
                          (wire.pack({"v": [2, 0], "k": "x"}), "unknown-version"),
                          (b"\x00" * (wire.MAX_PAYLOAD + 1), "limit")]:
            with self.assertRaises(wire.WireError) as cm:
                wire.unpack(raw)
            self.assertIn(says, str(cm.exception))

    def test_too_large(self):
        with self.assertRaises(wire.WireError):
            wire.envelope("x", b"\x00" * wire.MAX_PAYLOAD)


class Model(unittest.TestCase):
    def test_round_trip_and_predict(self):
        rng = np.random.default_rng(1)
        n = model.Network([4, 5, 3], samples=12)
        n.set_flat(rng.standard_normal(n.flat().size).astype(np.float32))
        m = model.from_bytes(n.to_bytes())
        self.assertEqual(m.widths, [4, 5, 3])
        self.assertEqual(m.samples, 12)
        np.testing.assert_array_equal(m.flat(), n.flat())
        p = m.predict_proba(rng.standard_normal((6, 4)))
        np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)

    def test_refusals(self):
        good = model.Network([2, 2]).to_bytes()
        bad_crc = good[:-1] + bytes([good[-1] ^ 1])
        for raw, says in [(b"XXXX" + good[4:], "bad magic"), (good[:10], "truncated"), (bad_crc, "checksum")]:
            with self.assertRaises(model.ModelError) as cm:
                model.from_bytes(raw)
            self.assertIn(says, str(cm.exception))


class Config(unittest.TestCase):
    def test_parameters_and_hem(self):
        os.environ["EPOCHS"] = "3"
        os.environ["HEM_NAME"] = "CrossEntropy"
        os.environ["HEM_PARAMETERS"] = json.dumps([{"key": "threshold_cross_entropy", "value": "0.7"}])
        self.assertEqual(Context.get_parameters("epochs"), "3")
        self.assertEqual(Context.get_parameters("missing", "d"), "d")
        spec = Context.get_algorithm_from_api("HEM", extra=1)
        self.assertEqual(spec, {"method": "CrossEntropy", "param": {"threshold_cross_entropy": "0.7", "extra": 1}})
        m = hem.miner(spec)
        self.assertTrue(m([0.5, 0.5]))
        self.assertFalse(m([0.999, 0.001]))
        with self.assertRaises(ValueError):
            hem.miner({"method": "NoSuch"})


class Data(unittest.TestCase):
    def test_txt_data_parse(self):
        with tempfile.TemporaryDirectory() as d:
            os.mkdir(os.path.join(d, "samples"))
            np.save(os.path.join(d, "samples", "a.npy"), np.zeros((2, 2), np.uint8))
            with open(os.path.join(d, "index.txt"), "w") as f:
                f.write("samples/a.npy 3\n\n/abs/b.npy 1\n")
            data = TxtDataParse(data_type="train").parse(os.path.join(d, "index.txt"))
            self.assertEqual(data.num_examples(), 2)
            self.assertEqual(list(data.y), ["3", "1"])
            self.assertEqual(np.load(data.x[0]).shape, (2, 2))
            self.assertEqual(data.x[1], "/abs/b.npy")
            loaded = TxtDataParse(data_type="train", func=lambda line: (np.load(line.split()[0]), int(line.split()[1])) if "abs" not in line else None)
            loaded.parse(os.path.join(d, "index.txt"))
            self.assertEqual(len(loaded), 1)
            self.assertEqual(list(loaded.y), [3])


class CrossLanguage(unittest.TestCase):
    """Go's bytes read here and ours in Go: SEDNA_GO_WIRE names a file of
    Go-made examples (hex lines "kind hex"), and the test writes its own
    into SEDNA_PY_WIRE for the Go side to check."""

    def test_go_made(self):
        path = os.environ.get("SEDNA_GO_WIRE")
        if not path:
            self.fail("SEDNA_GO_WIRE unset: run through the Go test TestPythonSDK")
        out = []
        with open(path) as f:
            for line in f:
                what, hx = line.split()
                raw = bytes.fromhex(hx)
                if what == "model":
                    m = model.from_bytes(raw)
                    out.append(("model", m.to_bytes().hex()))
                else:
                    e = wire.unpack(raw)
                    self.assertEqual(e.kind, what)
                    out.append((what, wire.envelope(e.kind, e.body, source=e.source).hex()))
        with open(os.environ["SEDNA_PY_WIRE"], "w") as f:
            for what, hx in out:
                f.write(f"{what} {hx}\n")


if __name__ == "__main__":
    unittest.main()
