"""How the coordinator and its workers find and talk to each other.

The coordinator listens on a unix socket (in Linux's abstract namespace, elsewhere in a
private temporary folder of mode 0700) with
:mod:`multiprocessing.connection`, which authenticates every connection with a random key
(HMAC challenge) before anything is read. The address and the key reach the workers in the
environment variable :data:`ENV` (``HOTSWAP_FLEET``), which forked and spawned children
inherit. Messages are ``(kind, round, body)`` tuples, pickled by the connection.

Coordinator -> worker: ``welcome`` (the epoch and committed overlay, answering ``hello``),
``prepare`` (files and parent epoch; answered by ``vote``), ``commit`` (a release; answered by
``done``), ``abort``, ``rollback`` (answered by ``done``). Worker -> coordinator: ``hello``,
``vote``, ``done``. For a fleet's canary: ``canary`` (start the candidate; answered by
``done``), ``stats`` (the candidate's figures; answered by ``done``) and ``end`` (drop it).

A process of the fleet that asks something of the coordinator (``hotswap.canary()`` or
``status()`` in a worker) opens a connection of its own for it: ``request`` (an operation and
its arguments), answered by one ``answer``; then it closes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = (
    "ENV",
    "Address",
    "Message",
    "Server",
    "ask",
    "connect",
    "from_environ",
    "new_address",
)

ENV = "HOTSWAP_FLEET"
"""The environment variable that names the fleet a process belongs to."""

HELLO, WELCOME, PREPARE, VOTE, COMMIT, ABORT, ROLLBACK, DONE = (
    "hello",
    "welcome",
    "prepare",
    "vote",
    "commit",
    "abort",
    "rollback",
    "done",
)
CANARY, STATS, END, REQUEST, ANSWER = "canary", "stats", "end", "request", "answer"

Message = tuple[str, int, dict[str, Any]]

# Linux's unix sockets have an abstract namespace (an address starting with NUL: no file).
_ABSTRACT: bool = sys.platform.startswith("linux")


@dataclass(frozen=True)
class Address:
    """Where a coordinator listens, and the key its workers authenticate with.

    Attributes:
        pid: the coordinator's process id.
        path: its unix socket.
        key: the authentication key.
    """

    pid: int
    path: str
    key: bytes

    def export(self) -> str:
        """The value of :data:`ENV` that names this fleet."""
        return json.dumps({"pid": self.pid, "path": self.path, "key": self.key.hex()})

    @property
    def folder(self) -> str:
        """The private folder holding the socket ("" for an abstract socket: no file)."""
        return "" if self.path.startswith("\0") else os.path.dirname(self.path)

    def remove(self) -> None:
        """Delete the socket's folder (the coordinator, when it stops)."""
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)


class Server:
    """The coordinator's listening socket. Unlike ``multiprocessing.connection.Listener``, a
    thread blocked in :meth:`accept` wakes up when it is closed, and the authentication is
    left to :meth:`authenticate`, so a slow client never holds the next one up."""

    def __init__(self, address: Address) -> None:
        # Imported here, before any thread of the fleet runs: a child forked while another
        # thread is half way through an import would wait for that import forever (hmac is
        # what the handshake imports when the first worker connects, as the next is forked).
        import hmac  # noqa: F401
        import multiprocessing.connection  # noqa: F401

        self._key = address.key
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.bind(address.path)
        self._socket.listen(64)

    def accept(self) -> Connection:
        """The next connection, not authenticated yet.

        Raises:
            OSError: the server was closed.
        """
        from multiprocessing.connection import Connection

        client, _ = self._socket.accept()
        return Connection(client.detach())

    def authenticate(self, conn: Connection) -> None:
        """Check the client's key, and prove ours (both sides, as ``Listener`` does).

        Raises:
            multiprocessing.AuthenticationError: a wrong key.
            OSError, EOFError: the client went away.
        """
        # Imported when used: `import hotswap` does not pay for multiprocessing.
        from multiprocessing.connection import answer_challenge, deliver_challenge

        deliver_challenge(conn, self._key)
        answer_challenge(conn, self._key)

    def close(self) -> None:
        """Stop listening; a thread blocked in :meth:`accept` gets an ``OSError``."""
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()


def new_address() -> Address:
    """A fresh socket address and a random key. On Linux the socket is in the abstract
    namespace: no file, so a coordinator that is killed leaves nothing behind (the key keeps
    others out); elsewhere it is a file in a new private folder (mode 0700)."""
    key = os.urandom(32)
    if _ABSTRACT:
        return Address(os.getpid(), f"\0hotswap-fleet-{os.urandom(8).hex()}", key)
    folder = tempfile.mkdtemp(prefix="hotswap-fleet-")
    return Address(os.getpid(), os.path.join(folder, "fleet.sock"), key)


def from_environ(environ: dict[str, str] | None = None) -> Address | None:
    """The fleet :data:`ENV` names, or None (unset or unreadable)."""
    text = (os.environ if environ is None else environ).get(ENV, "")
    if not text:
        return None
    try:
        data = json.loads(text)
        return Address(int(data["pid"]), str(data["path"]), bytes.fromhex(data["key"]))
    except (ValueError, KeyError, TypeError):
        return None


def connect(address: Address) -> Connection:
    """An authenticated connection to the coordinator.

    Raises:
        OSError: it does not listen (any more).
        multiprocessing.AuthenticationError: the key is not its key.
    """
    from multiprocessing.connection import Client

    return Client(address.path, family="AF_UNIX", authkey=address.key)


def wait(conns: list[Any], timeout: float) -> list[Any]:
    """The connections among ``conns`` ready to read within ``timeout`` (none past it)."""
    from multiprocessing.connection import wait as ready

    return ready(conns, timeout)


def authentication_error() -> type[Exception]:
    """``multiprocessing.AuthenticationError``, imported when a handshake needs it."""
    from multiprocessing import AuthenticationError

    return AuthenticationError


def ask(address: Address, op: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Ask the coordinator for ``op`` on a connection of its own; its answer.

    Raises:
        OSError: it does not listen, or did not answer within ``timeout``.
    """
    conn = connect(address)
    try:
        conn.send((REQUEST, 0, {"pid": os.getpid(), "op": op, **body}))
        if not conn.poll(timeout):
            raise TimeoutError(f"the fleet's coordinator did not answer {op!r} within {timeout} s")
        kind, _, answer = conn.recv()
    except EOFError as error:
        raise OSError(f"the fleet's coordinator closed the connection: {error}") from error
    finally:
        conn.close()
    if kind != ANSWER:
        raise OSError(f"the fleet's coordinator answered {kind!r} to {op!r}")
    return dict(answer)
