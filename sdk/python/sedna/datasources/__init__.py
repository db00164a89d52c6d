"""Data sets as Sedna's lib reads them: TxtDataParse reads index files, a
line per example, "path label", the path relative to the index file
(Sedna-Go's data sets; an absolute path stays as it is); CSVDataParse
reads CSV files (a federated job's Datasets, "label,f1,f2,...")."""

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


class CSVDataParse(BaseDataSource):
    """Reads CSV files as Sedna's CSVDataParse does, with NumPy instead of
    pandas: parse(*files, label=NAME) takes the column NAME as y and the
    other columns as x (float32, a row per example). The first line is a
    header when one of its fields is not a number; label may also be a
    column's index (files without a header: the built-in federated
    training worker's "label,f1,f2,..." is label=0). Without label, y is
    empty. Lines that do not parse as numbers, or have another number of
    columns than the first row, are skipped and counted in self.skipped,
    as are the rows of a file of another width than the first file's.
    func, when given, is called with the pair (x, y) of each file and
    returns the pair to keep. y holds integers when every label is
    whole."""

    def parse(self, *args, **kwargs):
        import csv

        label = kwargs.get("label")
        xs, ys = [], []
        self.skipped = 0
        for path in args:
            if not path or not os.path.exists(path):
                continue
            with open(path, newline="") as f:
                rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
            if not rows:
                continue
            header = None
            if not all(_number(c) for c in rows[0]):
                header, rows = [c.strip() for c in rows[0]], rows[1:]
            col = None
            if label is not None and label != "":
                if isinstance(label, int):
                    col = label
                elif header and label in header:
                    col = header.index(label)
                else:
                    continue  # Sedna skips a file without the label column
            width = len(header) if header else (len(rows[0]) if rows else 0)
            if xs and width - (col is not None) != xs[0].shape[1]:
                self.skipped += len(rows)  # another width than the first file's
                continue
            good = []
            for r in rows:
                try:
                    v = [float(c) for c in r]
                except ValueError:
                    v = None
                if v is None or len(v) != width:
                    self.skipped += 1
                    continue
                good.append(v)
            a = np.asarray(good, np.float64).reshape(-1, width)
            if col is not None:
                x, y = np.delete(a, col, axis=1).astype(np.float32), a[:, col]
            else:
                x, y = a.astype(np.float32), np.zeros(0)
            if self.process_func:
                x, y = self.process_func((x, y))
            xs.append(x)
            ys.append(y)
        self.x = np.concatenate(xs) if xs else np.zeros((0, 0), np.float32)
        y = np.concatenate(ys) if ys else np.zeros(0)
        if y.size and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        self.y = y
        return self


def _number(s):
    try:
        float(s)
        return True
    except ValueError:
        return False
