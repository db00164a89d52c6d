"""LOGGER, as Sedna's lib names it: records to stderr, which the agent
keeps in the worker's log file (sedna logs)."""

import logging
import os
import sys

LOGGER = logging.getLogger("sedna")
if not LOGGER.handlers:
    _h = logging.StreamHandler(sys.stderr)
    _h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    LOGGER.addHandler(_h)
    LOGGER.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
