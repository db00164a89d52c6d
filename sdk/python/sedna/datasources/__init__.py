"""Data sets as Sedna's lib reads them: TxtDataParse reads index files, a
line per example, "path label", the path relative to the index file
(Sedna-Go's data sets; an absolute path stays as it is)."""

import os

import numpy as np


class BaseDataSource:
    """x and y of a data set; num_examples() its length."""

    def __init__(self, data_type="train", func=None):
        self.data_type = data_type
        self.process_func = func if callable(func) else None
        self.is_test_data = data_type == "test"
        self.x = None
        self.y = None

    def num_examples(self):
        return len(self.x) if self.x is not None else 0

    def __len__(self):
        return self.num_examples()

    def parse(self, *args, **kwargs):
        raise NotImplementedError


class TxtDataParse(BaseDataSource):
    """Reads index files as Sedna's lib does: each line split in fields,
    or given to func, which returns the fields; the first field is the
    example (all of them with use_raw), the second its label (0 when
    absent, none for test data). The first field of a line, a path, is
    made absolute against the index file's directory first; blank lines
    are skipped, and lines func returns None for."""

    def parse(self, *args, **kwargs):
        use_raw = kwargs.get("use_raw", False)
        xs, ys = [], []
        for path in args:
            if not path or not os.path.exists(path):
                continue
            base = os.path.dirname(os.path.abspath(path))
            with open(path) as f:
                lines = []
                for line in f:
                    fields = line.split()
                    if not fields:
                        continue
                    if not os.path.isabs(fields[0]):
                        fields[0] = os.path.join(base, fields[0])
                    lines.append(" ".join(fields))
            res = list(map(self.process_func, lines)) if self.process_func else [l.split() for l in lines]
            for tup in res:
                if tup is None or not len(tup):
                    continue
                if use_raw:
                    xs.append(tup)
                    continue
                xs.append(tup[0])
                if not self.is_test_data:
                    ys.append(tup[1] if len(tup) > 1 else 0)
        self.x = np.array(xs, dtype=object) if use_raw else np.array(xs)
        self.y = np.array(ys)
        return self
