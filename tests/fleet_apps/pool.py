"""A program with a multiprocessing pool of 3 (``pool.py fork`` or ``pool.py spawn``): on each
line ``go`` on stdin it runs 60 small tasks and prints one JSON line per answer (pid, version,
epoch, count), then ``done``."""

import json
import multiprocessing
import os
import sys

import logic

import hotswap


def task(_: int) -> str:
    answer = {
        "pid": os.getpid(),
        "version": logic.version(),
        "epoch": hotswap.status().epoch,
        "count": logic.hit(),
    }
    return json.dumps(answer)


def main() -> None:
    context = multiprocessing.get_context(sys.argv[1])
    with context.Pool(3) as pool:
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() != "go":
                break
            for answer in pool.imap_unordered(task, range(60), chunksize=1):
                print(answer, flush=True)
            print("done", flush=True)


if __name__ == "__main__":
    main()
