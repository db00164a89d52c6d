"""Data sets as Sedna's lib reads them: TxtDataParse reads index files, a
line per example, "path label", the path relative to the index file
(Sedna-Go's data sets; an absolute path stays as it is); CSVDataParse
reads CSV files (a federated job's Datasets, "label,f1,f2,...", and
the data sets of a lifelong job's workers, whose attributes are text)."""

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


class Frame:
    """Named columns of equal length, the part of pandas' DataFrame that
    Sedna's lifelong workers use: columns, frame[name] (a column),
    frame[[names]] and frame[rows] (a Frame), drop(columns, axis=1),
    len, shape, to_numpy() (the columns as float32). A column of numbers
    is float32, one of text an array of str."""

    def __init__(self, columns, data):
        self.columns = list(columns)
        self._data = {c: np.asarray(data[c]) for c in self.columns}

    def __len__(self):
        return len(self._data[self.columns[0]]) if self.columns else 0

    @property
    def shape(self):
        return (len(self), len(self.columns))

    def __getitem__(self, key):
        if isinstance(key, str):
            return self._data[key]
        if isinstance(key, (list, tuple)) and all(isinstance(k, str) for k in key):
            return Frame(key, {k: self._data[k] for k in key})
        return Frame(self.columns, {c: v[key] for c, v in self._data.items()})

    def __setitem__(self, key, value):
        value = np.asarray(value)
        if self.columns and len(value) != len(self):
            raise ValueError(f"column {key!r} of {len(value)} values in a frame of {len(self)} rows")
        if key not in self._data:
            self.columns.append(key)
        self._data[key] = value

    def drop(self, labels=None, axis=1, columns=None, inplace=False):
        names = columns if columns is not None else labels
        names = [names] if isinstance(names, str) else list(names or [])
        if axis not in (1, "columns") and columns is None:
            raise ValueError("Frame.drop drops columns only (axis=1)")
        for n in names:
            if n not in self._data:
                raise KeyError(n)
        keep = [c for c in self.columns if c not in names]
        if inplace:
            self.columns, self._data = keep, {c: self._data[c] for c in keep}
            return None
        return Frame(keep, self._data)

    def to_numpy(self, dtype=np.float32):
        text = [c for c in self.columns if self._data[c].dtype.kind in "OUS"]
        if text:
            raise ValueError(f"columns of text cannot be numbers: {text}")
        if not self.columns:
            return np.zeros((0, 0), dtype)
        return np.stack([self._data[c].astype(dtype) for c in self.columns], axis=1)

    @property
    def values(self):
        return self.to_numpy()

    @staticmethod
    def concat(frames):
        frames = list(frames)
        cols = frames[0].columns
        for f in frames[1:]:
            if f.columns != cols:
                raise ValueError(f"frames of columns {f.columns} and {cols}")
        return Frame(cols, {c: np.concatenate([f._data[c] for f in frames]) for c in cols})


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
    whole.

    A file with a header may hold columns of text (a lifelong job's
    attributes, say): a column whose first value is not a number. x is
    then a Frame of the columns but the label (text kept as str, numbers
    as float32), func is called with the file's Frame, label column
    included, as Sedna calls it with a DataFrame, and returns the Frame to
    keep; a row with text in a column of numbers is skipped. A dict, in
    place of a file, is one row, its keys the header (Sedna's inference
    workers parse a row so). self.columns names x's columns (None
    without a header)."""

    def parse(self, *args, **kwargs):
        import csv

        label = kwargs.get("label")
        xs, ys = [], []
        self.skipped = 0
        self.columns = None
        for arg in args:
            if isinstance(arg, dict):
                rows = [[str(k) for k in arg.keys()], [str(v) for v in arg.values()]]
            else:
                if not arg or not os.path.exists(arg):
                    continue
                with open(arg, newline="") as f:
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
            if header and rows and not all(_number(c) for c in rows[0]):
                if xs and not isinstance(xs[0], Frame):
                    self.skipped += len(rows)  # text where the first file had numbers
                    continue
                x, y = self._frame(header, rows, col)
                if xs and x.columns != xs[0].columns:
                    self.skipped += len(x)  # other columns than the first file's
                    continue
            else:
                width = len(header) if header else (len(rows[0]) if rows else 0)
                if xs and (isinstance(xs[0], Frame) or width - (col is not None) != xs[0].shape[1]):
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
            if header and self.columns is None:
                self.columns = x.columns if isinstance(x, Frame) else [h for i, h in enumerate(header) if i != col]
            xs.append(x)
            ys.append(y)
        if xs and isinstance(xs[0], Frame):
            self.x = Frame.concat(xs)
        else:
            self.x = np.concatenate(xs) if xs else np.zeros((0, 0), np.float32)
        y = np.concatenate(ys) if ys else np.zeros(0)
        if y.size and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        self.y = y
        return self

    def _frame(self, header, rows, col):
        """(x, y) of a file with columns of text."""
        text = [not _number(c) for c in rows[0]]
        good = []
        for r in rows:
            r = [c.strip() for c in r]
            if len(r) != len(header) or any(not t and not _number(c) for c, t in zip(r, text)):
                self.skipped += 1
                continue
            good.append(r)
        data = {}
        for i, name in enumerate(header):
            vals = [r[i] for r in good]
            data[name] = np.array(vals, dtype=str) if text[i] else np.array([float(v) for v in vals], np.float32)
        frame = Frame(header, data)
        if self.process_func:
            frame = self.process_func(frame)
        y = np.zeros(0)
        if col is not None:
            name = header[col]
            y = frame[name].astype(np.float64)
            frame = frame.drop(name, axis=1)
        return frame, y


def _number(s):
    try:
        float(s)
        return True
    except ValueError:
        return False
