"""A Celery app that knows nothing of hotswap but its status: run under ``hotswap run -m celery
-A plain worker``, its pool children are the fleet of the watching MainProcess."""

import os
import time

import logic
from celery import Celery

import hotswap

URL = os.environ["HOTSWAP_TEST_REDIS"]
app = Celery("plain", broker=URL, backend=URL)
app.conf.update(worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True)


@app.task
def probe(pause: float = 0.05) -> dict:
    time.sleep(pause)  # long enough that a batch spreads over every pool child
    return {
        "pid": os.getpid(),
        "version": logic.version(),
        "epoch": hotswap.status().epoch,
        "count": logic.hit(),
    }
