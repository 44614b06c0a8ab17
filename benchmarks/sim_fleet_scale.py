"""What one coordinator costs as a fleet grows: N simulated agents (threads) against one real
coordinator, for docs/at-scale.md.

Run: python benchmarks/sim_fleet_scale.py [--agents 25,50,100,200] [--rounds 10] [--kib 4]

Each agent is a thread that speaks the fleet protocol over its own authenticated unix socket
connection (hotswap/_fleet/protocol.py), exactly as a worker's agent does, but votes yes and
commits at once without planning or running anything: what is measured is the coordinator's
side (fan-out, gathering, pickling), not the workers' reload. The threads share one GIL with the
coordinator, so the figures are an upper bound for the coordinator's own cost on this machine.

Per fleet size: the round's duration (change set to the last commit answer; median and max over
the rounds), the mixed-version window as the coordinator saw it (first to last commit answer),
the bytes of one prepare message and of one welcome (what a joining worker receives), and the
bytes a round sends in all (prepare + commit to every agent).
"""

from __future__ import annotations

import argparse
import logging
import pickle
import statistics
import threading
import time
from typing import Any

from hotswap._fleet import protocol
from hotswap._fleet.coordinator import Coordinator
from hotswap._fleet.release import Release, ledger

PATH = "/srv/app/simmod.py"


def _agent(address: protocol.Address, pid: int, ready: threading.Semaphore) -> None:
    conn = protocol.connect(address)
    conn.send((protocol.HELLO, 0, {"pid": pid}))
    _, _, welcome = conn.recv()
    epoch = welcome["epoch"]
    ready.release()
    while True:
        try:
            kind, number, body = conn.recv()
        except (EOFError, OSError):
            return
        if kind == protocol.PREPARE:
            names = {path: ["simmod"] for path in body["files"]}
            reply: dict[str, Any] = {"ok": True, "names": names, "pid": pid, "epoch": epoch}
            conn.send((protocol.VOTE, number, reply))
        elif kind == protocol.COMMIT:
            epoch = body["release"].epoch
            conn.send(
                (protocol.DONE, number, {"ok": True, "results": [], "pid": pid, "epoch": epoch})
            )
        elif kind == protocol.ROLLBACK:
            conn.send((protocol.DONE, number, {"ok": True, "pid": pid, "epoch": epoch}))


def measure(agents: int, rounds: int, size: int) -> dict[str, float]:
    ledger.reset()
    coordinator = Coordinator(lambda entries: [])
    coordinator.start()
    ready = threading.Semaphore(0)
    threads = [
        threading.Thread(target=_agent, args=(coordinator.address, 100000 + i, ready), daemon=True)
        for i in range(agents)
    ]
    for thread in threads:
        thread.start()
    for _ in threads:
        ready.acquire()
    deadline = time.monotonic() + 60
    while len(coordinator.workers()) < agents and time.monotonic() < deadline:
        time.sleep(0.01)  # the welcome threads register each agent just after answering
    filler = b"# " + b"x" * max(0, size - 40) + b"\n"
    durations, windows = [], []
    try:
        for number in range(rounds):
            data = f"VALUE = {number}\n".encode() + filler
            coordinator.apply_files({PATH: data}, [])
            fleet = coordinator.results[-1]
            assert fleet.ok, fleet.describe()
            assert sum(w.outcome == "committed" for w in fleet.workers) == agents
            durations.append(fleet.duration)
            windows.append(fleet.window)
        prepare = pickle.dumps((protocol.PREPARE, 1, {"parent": "0" * 64, "files": {PATH: data}}))
        release = Release.of("0" * 64, {"simmod": data})
        commit = pickle.dumps((protocol.COMMIT, 1, {"release": release, "timeout": 9.0}))
        welcome = pickle.dumps(
            (protocol.WELCOME, 0, {"epoch": release.epoch, "overlay": {"simmod": data}})
        )
    finally:
        coordinator.stop()
        for thread in threads:
            thread.join(5)
        ledger.reset()  # this process's epoch is its own again
    return {
        "median_ms": statistics.median(durations) * 1000,
        "max_ms": max(durations) * 1000,
        "window_ms": statistics.median(windows) * 1000,
        "prepare_bytes": len(prepare),
        "welcome_bytes": len(welcome),
        "round_bytes": agents * (len(prepare) + len(commit)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", default="25,50,100,200")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--kib", type=int, default=4, help="size of the released module")
    options = parser.parse_args()
    logging.getLogger("hotswap").setLevel(logging.ERROR)
    print(f"one coordinator, a {options.kib} KiB module per release, {options.rounds} rounds each")
    heads = ("agents", 6), ("median", 10), ("max", 10), ("window", 10), ("prepare", 9)
    heads += ("welcome", 9), ("per round", 10)
    print(" ".join(f"{name:>{width}}" for name, width in heads))
    for count in (int(n) for n in options.agents.split(",")):
        row = measure(count, options.rounds, options.kib * 1024)
        print(
            f"{count:>6} {row['median_ms']:>8.1f}ms {row['max_ms']:>8.1f}ms "
            f"{row['window_ms']:>8.1f}ms {row['prepare_bytes']:>8}B {row['welcome_bytes']:>8}B "
            f"{row['round_bytes'] / 1024:>8.0f}KiB"
        )


if __name__ == "__main__":
    main()
