"""A fleet coordinator the failure tests drive over stdin: it prints its fleet's name
(``HOTSWAP_FLEET``), answers ``workers`` (how many joined), and on ``save-and-die PATH`` runs
a round for the file that kills this process (SIGKILL) once every worker voted yes, before any
commit is sent."""

import json
import os
import signal
import sys

from hotswap import _fleet

coordinator = _fleet.coordinate(lambda entries: [], spawned=False)
print(json.dumps({"fleet": os.environ["HOTSWAP_FLEET"]}), flush=True)


def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


for line in sys.stdin:
    command, _, path = line.strip().partition(" ")
    if command == "workers":
        print(json.dumps({"workers": len(coordinator.workers())}), flush=True)
    elif command == "save-and-die":
        coordinator._commit = die  # between the prepare (every vote in) and the commit
        with open(path, "rb") as file:
            data = file.read()
        coordinator.apply_files({os.path.realpath(path): data}, [])
