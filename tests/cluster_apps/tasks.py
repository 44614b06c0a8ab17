"""A Celery app whose nodes join a hotswap cluster: ``probe`` answers with its process's pid,
node, the version ``logic`` runs, the epoch and a per-process counter (state a release keeps)."""

import os
import time

import logic
from celery import Celery

import hotswap
from hotswap.integrations import celery as hotswap_celery

URL = os.environ["HOTSWAP_TEST_REDIS"]
app = Celery("tasks", broker=URL, backend=URL)
app.conf.update(
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_pool_restarts=True,  # benchmarks/bench_clusters.py compares with pool_restart
)
hotswap_celery.install(app)


@app.task
def probe(pause: float = 0.05) -> dict:
    time.sleep(pause)  # long enough that a batch spreads over every pool child
    return {
        "pid": os.getpid(),
        "node": probe.request.hostname,
        "version": logic.version(),
        "epoch": hotswap.status().epoch,
        "count": logic.hit(),
        "scoped": _scoped(),
    }


def _scoped() -> str:
    """The version a canary unit runs (the candidate at weight 1.0)."""
    with hotswap.canary_scope("probe"):
        return logic.version()
