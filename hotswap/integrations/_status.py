"""What the middleware's status endpoint answers: hotswap's status as JSON."""

from __future__ import annotations

import json

from hotswap import status

__all__ = ("ALLOWED", "status_body")

ALLOWED = ("GET", "HEAD")


def status_body() -> bytes:
    """``json.dumps(hotswap.status().to_dict())``, encoded as UTF-8."""
    return json.dumps(status().to_dict()).encode()
