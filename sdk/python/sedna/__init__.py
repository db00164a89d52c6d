"""Sedna-Go's Python worker library.

Workers written against KubeEdge Sedna's Python lib (sedna.core.*,
sedna.common.config, sedna.datasources) run on Sedna-Go with this package
on PYTHONPATH instead of Sedna's: the same module paths, class and method
names and environment variables, over Sedna-Go's worker protocol
(docs/WORKERS.md). It needs python3-msgpack and python3-paho-mqtt (Debian)
and, for models and data sets, python3-numpy.

Beyond Sedna's API: sedna.wire (the envelope), sedna.worker (a worker's
MQTT connection: its spec, metrics into the job's status) and sedna.model
(the learning substrate's model format, read and written with NumPy).
"""

__version__ = "0.1.0"
