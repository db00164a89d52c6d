"""The knowledge base encoding (sedna.kb): a round trip here, and a
knowledge base written for the Go side to read (SEDNA_PY_KB, with the
windows and the answers expected of them in SEDNA_PY_KB.json), which
TestPythonSDK checks with lifelong.Unmarshal and Predict."""

import json
import os
import unittest

import numpy as np

from sedna import kb, model


def network(rng, widths):
    n = model.Network(widths)
    n.set_flat(rng.standard_normal(n.flat().size).astype(np.float32))
    return n


class KnowledgeBase(unittest.TestCase):
    def build(self):
        rng = np.random.default_rng(3)
        a = rng.standard_normal((60, 4))
        b = rng.standard_normal((60, 4)) + 5
        base = kb.KnowledgeBase(4, 3, window=10)
        base.fit([("a", network(rng, [4, 8, 3]), a, 0.9, 0.8), ("b", network(rng, [4, 8, 3]), b, 0.7, 0.6)])
        windows = {
            "a": [(x, "a") for x in a[:10]],
            "b": [(x, "b") for x in b[:10]],
            "unknown attribute": [(x, "c") for x in b[10:20]],
        }
        return base, windows

    def test_round_trip_and_unseen(self):
        base, windows = self.build()
        again = kb.from_bytes(base.to_bytes())
        self.assertEqual([t.id for t in again.tasks], ["attr:a", "attr:b"])
        self.assertAlmostEqual(again.threshold, base.threshold)
        for name, w in windows.items():
            self.assertEqual(again.predict(w), base.predict(w), name)
        _, unseen = base.predict(windows["unknown attribute"])
        self.assertTrue(all(unseen))
        _, unseen = base.predict(windows["a"])
        self.assertFalse(any(unseen))
        with self.assertRaises(kb.KBError):
            kb.from_bytes(b"\xc1")

    def test_for_go(self):
        path = os.environ.get("SEDNA_PY_KB")
        if not path:
            self.fail("SEDNA_PY_KB unset: run through the Go test TestPythonSDK")
        base, windows = self.build()
        with open(path, "wb") as f:
            f.write(base.to_bytes())
        want = {}
        for name, w in windows.items():
            classes, unseen = base.predict(w)
            want[name] = {"x": [[float(v) for v in x] for x, _ in w], "attr": [a for _, a in w], "classes": classes, "unseen": unseen}
        with open(path + ".json", "w") as f:
            json.dump(want, f)


if __name__ == "__main__":
    unittest.main()
