"""Prefect flows of driftloop (the retraining flow lands here).

driftloop never phones home. The Prefect server that runs without ``PREFECT_API_URL`` (a
temporary one, in a subprocess that inherits this environment) would post an anonymous
telemetry heartbeat to prefect.io, which fails where there is no internet and, racing the
server's other writers on its SQLite file, logs a ``database is locked`` traceback; Prefect's
client would send usage analytics. Both are off unless the environment says otherwise.
"""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
