"""Signed changes: with ``require_signature`` set, a changed file applies only when
``<file>.sig`` beside it holds an Ed25519 signature of its exact bytes by an accepted key.

``cryptography`` (the ``hotswap[signing]`` extra) is imported here, and only once a signature
is checked or made. Without it, or without a readable key, every change is refused: hotswap
fails closed rather than apply code it was told to check.

A signature file is a small JSON object: ``{"algorithm": "ed25519", "key": <key id>,
"sha256": <hex digest of the signed bytes>, "signature": <base64>}``. Only ``signature`` is
trusted; ``key`` and ``sha256`` make the message say *why* a signature does not verify (the file
changed since it was signed, or another key signed it).
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from typing import TYPE_CHECKING, Any

from hotswap._config import settings as _config
from hotswap._ops.events import display_path
from hotswap.exceptions import SignatureError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = ("SUFFIX", "key_id", "sign_file", "signature_path", "verify")

SUFFIX = ".sig"

# key file -> ((size, mtime_ns), key): keys are read once, again when the file changes.
_keys: dict[str, tuple[tuple[int, int], Ed25519PublicKey]] = {}


def signature_path(path: str) -> str:
    """Where the signature of ``path`` lives: ``<path>.sig``."""
    return path + SUFFIX


def key_id(key: Ed25519PublicKey) -> str:
    """A short fingerprint of a public key: 16 hex digits of the sha256 of its raw bytes."""
    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def verify(
    path: str,
    data: bytes,
    settings: _config.Settings | None = None,
    *,
    module: str | None = None,
) -> None:
    """Raise :class:`~hotswap.SignatureError` unless ``data``, the bytes about to be applied
    from ``path``, carry a valid signature; nothing to do while signatures are not required."""
    policy = (settings or _config.current()).require_signature
    if policy is None:
        return
    where = display_path(path)
    sig_path = signature_path(path)

    def refuse(why: str, reason: str) -> SignatureError:
        message = f"{where}: {why}; the change is refused (require_signature is on)"
        return SignatureError(message, module=module, filename=path, reason=reason)

    # The keys first: without a key (or cryptography) no signature could ever verify, and
    # that is what the user has to fix.
    try:
        keys = [_public_key(k) for k in policy.public_keys]
    except ImportError as error:
        why = (
            "checking signatures needs the 'cryptography' package, hotswap's 'signing' extra "
            "(pip install -e '.[signing]' in a checkout)"
        )
        raise refuse(why, "unavailable") from error
    except (OSError, ValueError, TypeError) as error:
        raise refuse(f"no usable public key: {error}", "unavailable") from error
    try:
        with open(sig_path, "rb") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise refuse(f"no signature ({display_path(sig_path)} is missing)", "missing") from None
    except OSError as error:
        raise refuse(f"cannot read {display_path(sig_path)}: {error}", "missing") from error
    try:
        import json

        fields = json.loads(text)
        signature = base64.b64decode(fields["signature"], validate=True)
    except (ValueError, KeyError, TypeError) as error:
        raise refuse(f"{display_path(sig_path)} is not a hotswap signature", "invalid") from error
    from cryptography.exceptions import InvalidSignature

    for key in keys:
        try:
            key.verify(signature, data)
        except InvalidSignature:
            continue
        return
    digest = hashlib.sha256(data).hexdigest()
    if isinstance(fields, dict) and fields.get("sha256") not in (None, digest):
        why = (
            f"{display_path(sig_path)} is stale: it was made for other content "
            f"(sha256 {str(fields['sha256'])[:12]}..., the file is {digest[:12]}...); "
            "sign the file again"
        )
        raise refuse(why, "stale")
    signer = fields.get("key") if isinstance(fields, dict) else None
    known = {key_id(key) for key in keys}
    if signer is not None and signer not in known:
        why = f"{display_path(sig_path)} was made with key {signer}, which is not an accepted key"
        raise refuse(why, "invalid")
    raise refuse(f"{display_path(sig_path)} does not verify for this file's content", "invalid")


def _public_key(path: str) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    stat = os.stat(path)
    stamp = (stat.st_size, stat.st_mtime_ns)
    cached = _keys.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    with open(path, "rb") as handle:
        text = handle.read()
    loaded: Any
    if text.startswith(b"ssh-ed25519 "):
        loaded = serialization.load_ssh_public_key(text)
    else:
        loaded = serialization.load_pem_public_key(text)
    if not isinstance(loaded, Ed25519PublicKey):
        message = f"{path} is a {type(loaded).__name__}, not an Ed25519 public key"
        raise TypeError(message)
    _keys[path] = (stamp, loaded)
    return loaded


def _private_key(path: str) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    with open(path, "rb") as handle:
        text = handle.read()
    loaded: Any
    if b"OPENSSH PRIVATE KEY" in text:
        loaded = serialization.load_ssh_private_key(text, password=None)
    else:
        loaded = serialization.load_pem_private_key(text, password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        message = f"{path} is a {type(loaded).__name__}, not an Ed25519 private key"
        raise TypeError(message)
    return loaded


def sign_file(path: str, private_key: str) -> str:
    """Sign the current bytes of ``path`` with the Ed25519 key in the PEM (or OpenSSH) file
    ``private_key`` and write ``<path>.sig``; returns its path.

    The signature file is written to a temporary name and renamed into place, so a watcher
    never reads half of one.

    Raises:
        OSError: a file cannot be read or written.
        ValueError: the key file is not an unencrypted private key.
        TypeError: the key is not an Ed25519 key.
        ImportError: ``cryptography`` is not installed.
    """
    key = _private_key(private_key)
    with open(path, "rb") as handle:
        data = handle.read()
    import json

    fields = {
        "algorithm": "ed25519",
        "key": key_id(key.public_key()),
        "sha256": hashlib.sha256(data).hexdigest(),
        "signature": base64.b64encode(key.sign(data)).decode("ascii"),
    }
    target = signature_path(path)
    folder = os.path.dirname(os.path.abspath(target))
    fd, temporary = tempfile.mkstemp(prefix=".hotswap-", suffix=SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            json.dump(fields, handle, indent=1)
            handle.write("\n")
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise
    return target
