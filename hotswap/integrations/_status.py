"""What the middleware's status endpoint answers: hotswap's status as JSON."""

from __future__ import annotations

import json

from hotswap import status

__all__ = ("ALLOWED", "status_body")

ALLOWED = ("GET", "HEAD")


def status_body() -> bytes:
    """``json.dumps(hotswap.status(fleet=True).to_dict())``, encoded as UTF-8: in a fleet it
    answers for the fleet, whichever worker the request reached."""
    return json.dumps(status(fleet=True).to_dict()).encode()
