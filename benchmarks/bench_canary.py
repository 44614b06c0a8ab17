"""Gray release: what the middleware adds to a request, and how fast a decision moves traffic.

Run: python benchmarks/bench_canary.py [--number 20000] [--repeat 7] [--rounds 10] [--weight 0.5]

Per request: a minimal ASGI app and a minimal WSGI app (each answering with the bytes of a
``@reloadable`` function of the same module) are called in-process with a fake scope or
environ, ``--number`` requests in a row, bare and through ``HotswapMiddleware``: first with no
canary, then while a canary of the module runs at ``--weight`` (its change edits the
``@reloadable`` function's body). Each figure is the median of ``--repeat`` runs, bare and
middleware interleaved. "added" is the request through the middleware minus the bare app with
no canary: with a canary, it includes the dispatch the canary installs in the module's
functions, the whole price a request pays. The app alone while a canary runs is shown too:
each ``@reloadable`` call outside a request is then a unit of its own.

Switch: a client thread requests through the middleware without pause (yielding the GIL
between requests, as a server's socket I/O would). Each round starts a canary at
``--weight`` and waits until both versions answered; then the main thread calls ``abort()``
(or ``promote()``, in alternate rounds). "switch" is the time from the call to the start of
the first request from which on every request runs the expected version (the live one after an
abort, the new one after a promotion); "call" is how long ``abort()``/``promote()`` took to
return; "wrong" counts requests that began after it returned and ran the other version (must
be 0). One untimed round of each decision comes first (the first reload of a module is cold).

Targets (issue #15): <= 5 us added per request with no canary, <= 15 us with one running.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import itertools
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import hotswap
from hotswap.integrations import asgi, wsgi

SOURCE = """
import hotswap

@hotswap.reloadable
def answer():
    return b"v1"

async def asgi_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": answer()})

def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [answer()]
"""

KINDS = ("asgi", "wsgi")
TARGETS = {"no canary": 5.0, "canary": 15.0}  # us added per request (issue #15)
_names = itertools.count()

Message = MutableMapping[str, Any]


def source(label: int) -> str:
    """The module's source whose ``answer()`` returns ``b"v<label>"``."""
    return SOURCE.replace('b"v1"', f'b"v{label}"')


@contextmanager
def app_module() -> Iterator[tuple[ModuleType, Path]]:
    """A fresh module (``answer``, ``asgi_app``, ``wsgi_app``) in a temporary folder; gone,
    with the folder, afterwards."""
    name = f"bench_canary_app_{next(_names)}"
    with tempfile.TemporaryDirectory(prefix="hotswap-bench-canary-") as tmp:
        path = Path(tmp) / f"{name}.py"
        path.write_text(source(1))
        sys.path.insert(0, tmp)
        try:
            yield importlib.import_module(name), path
        finally:
            sys.modules.pop(name, None)
            sys.path.remove(tmp)


# --- one request, in-process ------------------------------------------------------------------

SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "GET",
    "path": "/",
    "headers": [(b"host", b"bench")],
}
ENVIRON: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_HOST": "bench"}


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    return None


def _start_response(status: str, headers: Any, exc_info: Any = None) -> None:
    return None


async def _asgi_requests(app: Any, number: int) -> float:
    started = time.perf_counter()
    for _ in range(number):
        await app(SCOPE, _receive, _send)
    return time.perf_counter() - started


def _wsgi_requests(app: Any, number: int) -> float:
    started = time.perf_counter()
    for _ in range(number):
        response = app(ENVIRON, _start_response)
        for _chunk in response:
            pass
        close = getattr(response, "close", None)
        if close is not None:
            close()
    return time.perf_counter() - started


def per_request(module: ModuleType, number: int, repeat: int) -> dict[str, float]:
    """Median us per request of each app, bare (``asgi``, ``wsgi``) and through the
    middleware (``asgi+mw``, ``wsgi+mw``); bare and middleware runs interleaved, so drift of
    the machine does not show as a difference."""
    asgi_mw = asgi.HotswapMiddleware(module.asgi_app)
    wsgi_mw = wsgi.HotswapMiddleware(module.wsgi_app)
    loop = asyncio.new_event_loop()
    try:
        runs: dict[str, Callable[[], float]] = {
            "asgi": lambda: loop.run_until_complete(_asgi_requests(module.asgi_app, number)),
            "asgi+mw": lambda: loop.run_until_complete(_asgi_requests(asgi_mw, number)),
            "wsgi": lambda: _wsgi_requests(module.wsgi_app, number),
            "wsgi+mw": lambda: _wsgi_requests(wsgi_mw, number),
        }
        times: dict[str, list[float]] = {label: [] for label in runs}
        for _ in range(repeat):
            for label, run in runs.items():
                times[label].append(run() / number * 1e6)
    finally:
        loop.close()
    return {label: statistics.median(values) for label, values in times.items()}


def measure_cost(
    number: int = 20_000, repeat: int = 7, weight: float = 0.5
) -> list[dict[str, Any]]:
    """Rows of per-request cost: for each middleware, the bare app, the middleware with no
    canary, the app alone and the middleware while a canary runs at ``weight``."""
    with app_module() as (module, path):
        idle = per_request(module, number, repeat)
        path.write_text(source(2))
        run = hotswap.canary(module, weight=weight)
        try:
            busy = per_request(module, number, repeat)
            calls = run.stats
        finally:
            run.abort()
    if calls["candidate"]["errors"] or calls["live"]["errors"]:
        raise SystemExit(f"requests failed during the benchmark: {calls}")
    rows = []
    for kind in KINDS:
        base = idle[kind]
        rows += [
            {"what": f"{kind} app alone", "us": base, "added": None, "target": None},
            _row(f"{kind} middleware, no canary", idle[f"{kind}+mw"], base, "no canary"),
            {"what": f"{kind} app alone, canary", "us": busy[kind], "added": None, "target": None},
            _row(f"{kind} middleware, canary", busy[f"{kind}+mw"], base, "canary"),
        ]
    return rows


def _row(what: str, us: float, base: float, case: str) -> dict[str, Any]:
    return {"what": what, "us": us, "added": us - base, "target": TARGETS[case]}


# --- switch after a decision ------------------------------------------------------------------


class Client:
    """A thread requesting through one middleware without pause; keeps (start, answer) of each
    request."""

    def __init__(self, kind: str, module: ModuleType) -> None:
        self.kind = kind
        self.answers: list[tuple[float, bytes]] = []
        self._module = module
        self._stop = threading.Event()
        self._recorded = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="bench-canary-client", daemon=True)
        self.failure: BaseException | None = None

    def _record(self, started: float, body: bytes) -> None:
        with self._recorded:
            self.answers.append((started, body))
            self._recorded.notify_all()

    def _run(self) -> None:
        try:
            if self.kind == "asgi":
                asyncio.run(self._asgi())
            else:
                self._wsgi()
        except BaseException as error:  # reported by wait_for, not lost in the thread
            self.failure = error
            with self._recorded:
                self._recorded.notify_all()

    def _wsgi(self) -> None:
        app = wsgi.HotswapMiddleware(self._module.wsgi_app)
        while not self._stop.is_set():
            started = time.perf_counter()
            response = app(ENVIRON, _start_response)
            body = b"".join(response)
            response.close()  # type: ignore[attr-defined]
            self._record(started, body)
            time.sleep(0)  # lets the deciding thread take the GIL, as socket I/O would

    async def _asgi(self) -> None:
        app = asgi.HotswapMiddleware(self._module.asgi_app)
        body: list[bytes] = []

        async def send(message: Message) -> None:
            if message["type"] == "http.response.body":
                body.append(message["body"])

        while not self._stop.is_set():
            started = time.perf_counter()
            body.clear()
            await app(SCOPE, _receive, send)
            self._record(started, b"".join(body))
            time.sleep(0)  # as in _wsgi: the event loop of a server would wait on its sockets

    def wait_for(self, done: Callable[[list[tuple[float, bytes]]], bool], timeout: float) -> None:
        """Wait until ``done(answers)`` holds; SystemExit when the client failed or timed out."""
        with self._recorded:
            if not self._recorded.wait_for(
                lambda: self.failure is not None or done(self.answers), timeout
            ):
                raise SystemExit(f"{self.kind} client: no such answers within {timeout} s")
        if self.failure is not None:
            raise SystemExit(f"{self.kind} client failed: {self.failure!r}")

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def _switch(
    client: Client,
    path: Path,
    module: ModuleType,
    live: int,
    new: int,
    decision: str,
    weight: float,
) -> dict[str, float]:
    """One round: a canary of ``v<new>`` beside ``v<live>``, then ``decision``."""
    path.write_text(source(new))
    run = hotswap.canary(module, weight=weight)
    try:
        since = len(client.answers)
        both = {f"v{live}".encode(), f"v{new}".encode()}
        client.wait_for(lambda answers: both <= {body for _, body in answers[since:]}, 30)
        decided = time.perf_counter()
        result = run.promote() if decision == "promote" else run.abort()
        returned = time.perf_counter()
    finally:
        if run.state == "running":  # the client failed: leave no canary behind
            run.abort()
    if decision == "promote" and not result.ok:
        raise SystemExit(f"promotion failed: {result.error}")
    after = len(client.answers)
    client.wait_for(lambda answers: len(answers) >= after + 20, 30)
    answers = client.answers[since:]
    expected = f"v{new if decision == 'promote' else live}".encode()
    last_other = max(i for i, (_, body) in enumerate(answers) if body != expected)
    wrong = sum(1 for started, body in answers if started > returned and body != expected)
    if last_other + 1 == len(answers):  # never switched (then wrong > 0 says so)
        switch = float("nan")
    else:
        switch = max(0.0, answers[last_other + 1][0] - decided)
    return {"switch": switch, "call": returned - decided, "wrong": wrong}


def measure_switch(kind: str, rounds: int = 10, weight: float = 0.5) -> list[dict[str, Any]]:
    """Rows (one per decision) of the time from ``abort()``/``promote()`` to every new request
    on the expected version, over ``rounds`` rounds each, through the ``kind`` middleware."""
    figures: dict[str, list[dict[str, float]]] = {"abort": [], "promote": []}
    with app_module() as (module, path), Client(kind, module) as client:
        client.wait_for(lambda answers: len(answers) > 0, 30)
        live, label = 1, 1
        for index in range(rounds + 1):  # round 0 warms up, untimed
            for decision in ("abort", "promote"):
                label += 1
                figure = _switch(client, path, module, live, label, decision, weight)
                if decision == "promote":
                    live = label
                if index:
                    figures[decision].append(figure)
        requests = len(client.answers)
    rows = []
    for decision, found in figures.items():
        switches = [f["switch"] * 1000 for f in found]
        rows.append(
            {
                "what": f"{kind} {decision}",
                "rounds": len(found),
                "median": statistics.median(switches),
                "max": max(switches),
                "call": statistics.median(f["call"] * 1000 for f in found),
                "wrong": int(sum(f["wrong"] for f in found)),
                "requests": requests,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="requests per timed run")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs; the median is shown")
    parser.add_argument("--rounds", type=int, default=10, help="decisions of each kind timed")
    parser.add_argument("--weight", type=float, default=0.5, help="the canary's weight")
    options = parser.parse_args(argv)
    # Each abort is reported as a failed result (kind "canary") at WARNING: not news here.
    logging.getLogger("hotswap").setLevel(logging.ERROR)

    rows = measure_cost(options.number, options.repeat, options.weight)
    print(
        f"per request, in-process, median of {options.repeat} x {options.number:,} requests, "
        f"canary weight {options.weight:g}"
    )
    header = f"{'what':<32} {'us/request':>10} {'added us':>9} {'target':>8} {'met':>4}"
    print(header)
    print("-" * len(header))
    for row in rows:
        if row["target"] is None:
            print(f"{row['what']:<32} {row['us']:>10.2f}")
            continue
        met = "yes" if row["added"] <= row["target"] else "NO"
        target = f"<= {row['target']:g}"
        print(f"{row['what']:<32} {row['us']:>10.2f} {row['added']:>9.2f} {target:>8} {met:>4}")

    print(
        f"\ndecision -> every new request on the expected version, {options.rounds} rounds, "
        f"canary weight {options.weight:g}"
    )
    header = f"{'what':<16} {'switch median ms':>16} {'max ms':>8} {'call ms':>8} {'wrong':>6}"
    print(header)
    print("-" * len(header))
    for kind in KINDS:
        for row in measure_switch(kind, options.rounds, options.weight):
            print(
                f"{row['what']:<16} {row['median']:>16.3f} {row['max']:>8.3f} "
                f"{row['call']:>8.3f} {row['wrong']:>6}"
            )


if __name__ == "__main__":
    main()
