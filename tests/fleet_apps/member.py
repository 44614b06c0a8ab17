"""A fleet worker the property test drives over stdin/stdout: it joins the fleet that
``HOTSWAP_FLEET`` names, imports ``logic``, then answers ``call`` (pid, version, epoch and its
counter, as JSON), ``pin`` (a pinned section held open until ``unpin``) and ``unpin``."""

import json
import os
import sys
import threading

import hotswap
from hotswap import _fleet

joined = _fleet.join() is not None

import logic  # noqa: E402  (after joining: it runs the fleet's committed bytes)

release = threading.Event()
held = threading.Event()


def hold() -> None:
    with hotswap.pinned():
        held.set()
        release.wait()


print(json.dumps({"joined": joined}), flush=True)
for line in sys.stdin:
    command = line.strip()
    if command == "call":
        answer = {
            "pid": os.getpid(),
            "version": logic.version(),
            "epoch": hotswap.status().epoch,
            "count": logic.hit(),
        }
        print(json.dumps(answer), flush=True)
    elif command == "pin":
        release.clear()
        held.clear()
        threading.Thread(target=hold, daemon=True).start()
        held.wait()
        print(json.dumps({"pinned": True}), flush=True)
    elif command == "unpin":
        release.set()
        print(json.dumps({"pinned": False}), flush=True)
