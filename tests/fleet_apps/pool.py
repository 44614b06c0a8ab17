"""A program with a multiprocessing pool of 3 (``pool.py fork``, ``spawn`` or ``forkserver``):
on each line ``go`` on stdin it runs 60 small tasks and prints one JSON line per answer (pid,
version, epoch, count), then ``done``."""

import json
import multiprocessing
import os
import sys

import logic


def task(_: int) -> str:
    # Imported here, not by the program: a program run under ``hotswap run`` does not import
    # hotswap, and a forkserver is a process of the program's own modules.
    import hotswap

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
                # One write a line: the test reads stderr on the same pipe, and print() writes
                # the line and its end apart, so a status line could land between them.
                sys.stdout.write(answer + "\n")
                sys.stdout.flush()
            print("done", flush=True)


if __name__ == "__main__":
    main()
