"""The envelope every message under sedna/v1/ travels in (docs/WORKERS.md,
"The envelope"): a msgpack map with short keys, its body the msgpack of
the message of its kind."""

import time

import msgpack

MAJOR, MINOR = 1, 0
MAX_PAYLOAD = 1 << 20


def level(name):
    """name as one topic level, as Sedna-Go's topics.Level writes it: a '.'
    becomes '~' (RabbitMQ's MQTT plugin would read a '.' as a level
    separator; docs/TOPICS.md, "Names with dots")."""
    return name.replace(".", "~")


class WireError(ValueError):
    """Bytes that are not an envelope this version reads."""


def pack(value):
    """msgpack of value as Sedna-Go's decoders take it: str as str, bytes
    as bin, floats as float64 (wrap float32 fields with numpy.float32 or
    use pack_f32)."""
    return msgpack.packb(value, use_bin_type=True)


def pack_f32(value):
    """msgpack of value with every float as float32 (joint inference's
    probabilities, say)."""
    return msgpack.packb(value, use_bin_type=True, use_single_float=True)


def envelope(kind, body, source="python-worker", reply_to="", correlation="", expires=0):
    """The bytes of an envelope of kind carrying body (a value, packed
    here, or bytes already packed)."""
    if not isinstance(body, (bytes, bytearray)):
        body = pack(body)
    env = {"v": [MAJOR, MINOR], "id": ["", "", 0, 0], "t": time.time_ns(), "k": kind}
    if source:
        env["src"] = source
    if reply_to:
        env["rt"] = reply_to
    if correlation:
        env["cid"] = correlation
    if expires:
        env["x"] = int(expires)
    env["b"] = bytes(body)
    raw = pack(env)
    if len(raw) > MAX_PAYLOAD:
        raise WireError(f"an envelope of {len(raw)} bytes: the limit is {MAX_PAYLOAD}")
    return raw


class Envelope:
    """A decoded envelope: kind, body (bytes), body_value() and the rest."""

    def __init__(self, m):
        self.version = tuple(m["v"][:2])
        self.id = m.get("id")
        self.time = m.get("t", 0)
        self.kind = m["k"]
        self.source = m.get("src", "")
        self.reply_to = m.get("rt", "")
        self.correlation = m.get("cid", "")
        self.expires = m.get("x", 0)
        self.body = m.get("b", b"")

    def body_value(self):
        """The body decoded from msgpack."""
        return msgpack.unpackb(self.body, raw=False, strict_map_key=True)

    def __repr__(self):
        return f"Envelope(kind={self.kind!r}, source={self.source!r}, {len(self.body)} body bytes)"


def unpack(raw):
    """Decodes an envelope; WireError for bytes that are not one, or of
    another major version."""
    if len(raw) > MAX_PAYLOAD:
        raise WireError(f"{len(raw)} bytes: the limit is {MAX_PAYLOAD}")
    try:
        m = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except Exception as e:  # msgpack raises several types
        raise WireError(f"not msgpack: {e}") from None
    if not isinstance(m, dict) or "v" not in m or "k" not in m:
        raise WireError("not an envelope: no v or k")
    v = m["v"]
    if not isinstance(v, list) or len(v) < 2 or not all(isinstance(x, int) for x in v[:2]):
        raise WireError(f"not an envelope: v is {v!r}")
    if v[0] != MAJOR:
        raise WireError(f"unknown-version: {v[0]}.{v[1]}, this library reads {MAJOR}.x")
    if not isinstance(m["k"], str) or not m["k"]:
        raise WireError("not an envelope: no kind")
    if isinstance(m.get("b", b""), str):
        m["b"] = m["b"].encode()
    return Envelope(m)
