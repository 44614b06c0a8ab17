"""How a cluster's messages travel in an engine's own messages: plain JSON-friendly dicts,
the bytes of modules in base64, so that any serializer an engine uses (Celery's ``json``,
Dask's pickle) carries them unchanged."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from hotswap._fleet.release import Release

__all__ = ("decode", "encode", "release_body", "release_of")


def encode(modules: Mapping[str, bytes]) -> dict[str, str]:
    """Module name -> base64 text of its bytes."""
    return {name: base64.b64encode(data).decode("ascii") for name, data in modules.items()}


def decode(modules: Mapping[str, str]) -> dict[str, bytes]:
    """The reverse of :func:`encode`."""
    return {name: base64.b64decode(text) for name, text in modules.items()}


def release_body(release: Release) -> dict[str, Any]:
    """A release as a message body."""
    return {"parent": release.parent, "epoch": release.epoch, "modules": encode(release.modules)}


def release_of(body: Mapping[str, Any]) -> Release:
    """The release a message body carries."""
    return Release(body["parent"], decode(body["modules"]), body["epoch"])
