"""A worker's connection to its node's broker (SEDNA_BROKER_URL): the
job's spec, its numbers into the job's status, publishing and receiving
envelopes (docs/WORKERS.md)."""

import json
import os
import queue
import threading
import time
import uuid
from urllib.parse import urlparse

import paho.mqtt.client as mqtt

from sedna import wire


class WorkerError(RuntimeError):
    """The broker could not be reached, or refused a message."""


def env(name, default=""):
    return os.environ.get(name) or default


class Worker:
    """A worker as the agent started it: its node, job, role and topics
    from the environment, one MQTT connection (QoS 1)."""

    def __init__(self, broker_url=None, client_id=None, connect_timeout=30.0):
        self.broker_url = broker_url or env("SEDNA_BROKER_URL", "tcp://127.0.0.1:1883")
        self.node = env("SEDNA_NODE")
        self.kind = env("SEDNA_JOB_KIND")
        self.namespace = env("SEDNA_JOB_NAMESPACE", "default")
        self.job = env("SEDNA_JOB_NAME")
        self.role = env("SEDNA_WORKER_ROLE")
        self.generation = int(env("SEDNA_GENERATION", "0"))
        self.spec_topic = env("SEDNA_SPEC_TOPIC")
        self.report_prefix = env("SEDNA_REPORT_PREFIX")
        self._handlers = {}
        self._lock = threading.Lock()
        u = urlparse(self.broker_url)
        if u.scheme not in ("tcp", "mqtt", ""):
            raise WorkerError(f"SEDNA_BROKER_URL {self.broker_url}: only tcp:// is supported here")
        cid = client_id or f"py-{self.role or 'worker'}-{uuid.uuid4().hex[:8]}"
        self.client = mqtt.Client(client_id=cid, clean_session=True, protocol=mqtt.MQTTv311)
        user, password = u.username or env("SEDNA_USERNAME"), u.password or env("SEDNA_WORKER_PASSWORD")
        if user:
            self.client.username_pw_set(user, password)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self._connected = threading.Event()
        self.client.connect(u.hostname or "127.0.0.1", u.port or 1883, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(connect_timeout):
            self.client.loop_stop()
            raise WorkerError(f"no connection to {self.broker_url} in {connect_timeout:.0f} s")

    def _on_connect(self, client, userdata, flags, rc):
        if rc != 0:
            return
        with self._lock:
            topics = list(self._handlers)
        for t in topics:
            client.subscribe(t, qos=1)
        self._connected.set()

    def _on_message(self, client, userdata, msg):
        with self._lock:
            handlers = [h for t, h in self._handlers.items() if mqtt.topic_matches_sub(t, msg.topic)]
        for h in handlers:
            h(msg.topic, msg.payload)

    def subscribe(self, topic, handler):
        """Calls handler(topic, payload) for each message on topic (a filter),
        on the MQTT client's thread."""
        with self._lock:
            self._handlers[topic] = handler
        rc, _ = self.client.subscribe(topic, qos=1)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise WorkerError(f"subscribe {topic}: {mqtt.error_string(rc)}")

    def publish(self, topic, payload, timeout=30.0):
        """Publishes payload with QoS 1 and waits for the broker's PUBACK
        (on a topic the bridge carries up: the message is in the node's
        store)."""
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise WorkerError(f"publish {topic}: not acknowledged in {timeout:.0f} s")

    def send(self, what, kind, body, **kw):
        """Publishes an envelope of kind under the worker's report prefix
        (SEDNA_REPORT_PREFIX + what)."""
        self.publish(self.report_prefix + what, wire.envelope(kind, body, source=f"python/{self.role}", **kw))

    def report_metrics(self, metrics):
        """The worker's numbers now into its job's status (sedna describe):
        a worker.metrics envelope; values are numbers (others are
        dropped)."""
        clean = {str(k): float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.send("metrics/" + self.role, "worker.metrics", {"role": self.role, "metrics": clean, "t": time.time_ns()})

    def spec(self, timeout=30.0):
        """The job's document (a dict, from its JSON) as the retained spec
        on SEDNA_SPEC_TOPIC gives it."""
        q = queue.Queue(1)

        def got(_topic, payload):
            try:
                e = wire.unpack(payload)
                body = e.body_value()
                q.put_nowait(json.loads(body["data"]))
            except (wire.WireError, KeyError, ValueError, queue.Full):
                pass

        self.subscribe(self.spec_topic, got)
        try:
            return q.get(timeout=timeout)
        except queue.Empty:
            raise WorkerError(f"no spec on {self.spec_topic} in {timeout:.0f} s") from None

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


_worker = None


def current():
    """The process's worker connection, made on first use."""
    global _worker
    if _worker is None:
        _worker = Worker()
    return _worker
