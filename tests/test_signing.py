"""Signed changes: a changed file applies only with a valid <file>.sig (issue 16, point 5)."""

from __future__ import annotations

import base64
import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hotswap
from hotswap._plan import signing as _signing

SHOP = "RATE = 2\n\ndef price(amount):\n    return amount * RATE\n"
NEW = SHOP.replace("RATE = 2", "RATE = 3")


@pytest.fixture
def signed(project, release_key):
    """Signatures required, by the release key; the module ``shop`` loaded at version 1."""
    hotswap.configure(require_signature={"public_keys": [str(release_key.public)]})
    return project.load("shop", SHOP)


def test_signing_valid_signature_applies(project, signed, release_key):
    path = project.write("shop", NEW)
    written = _signing.sign_file(str(path), str(release_key.private))
    assert written == f"{path}.sig"
    result = hotswap.reload("shop")
    assert result.ok, result.error
    assert signed.RATE == 3


def test_signing_missing_signature_is_refused_and_nothing_runs(project, signed):
    result = project.reload("shop", NEW + "\nraise SystemExit('must not run')\n")
    assert not result.ok
    assert not result.rolled_back
    error = result.error
    assert isinstance(error, hotswap.SignatureError)
    assert error.reason == "missing"
    assert str(error) == (
        "src/shop.py: no signature (src/shop.py.sig is missing); "
        "the change is refused (require_signature is on)"
    )
    assert (error.module, error.filename) == ("shop", str(project.path("shop")))
    assert signed.RATE == 2
    assert result.version == 1


def test_signing_stale_signature_after_an_edit_is_refused(project, signed, release_key):
    path = project.write("shop", NEW)
    _signing.sign_file(str(path), str(release_key.private))
    project.write("shop", NEW.replace("RATE = 3", "RATE = 4"))  # edited after signing
    result = hotswap.reload("shop")
    assert isinstance(result.error, hotswap.SignatureError)
    assert result.error.reason == "stale"
    assert "src/shop.py.sig is stale: it was made for other content" in str(result.error)
    assert "sign the file again" in str(result.error)
    assert signed.RATE == 2
    _signing.sign_file(str(path), str(release_key.private))
    assert hotswap.reload("shop").ok
    assert signed.RATE == 4


def test_signing_by_a_key_not_accepted_is_refused(project, signed, other_key):
    path = project.write("shop", NEW)
    _signing.sign_file(str(path), str(other_key.private))
    result = hotswap.reload("shop")
    assert isinstance(result.error, hotswap.SignatureError)
    assert result.error.reason == "invalid"
    assert "which is not an accepted key" in str(result.error)
    assert signed.RATE == 2


def test_signing_tampered_signature_is_refused(project, signed, release_key):
    path = project.write("shop", NEW)
    sig = _signing.sign_file(str(path), str(release_key.private))
    fields = json.loads(Path(sig).read_text())
    raw = bytearray(base64.b64decode(fields["signature"]))
    raw[0] ^= 1
    fields["signature"] = base64.b64encode(bytes(raw)).decode()
    Path(sig).write_text(json.dumps(fields))
    result = hotswap.reload("shop")
    assert isinstance(result.error, hotswap.SignatureError)
    assert result.error.reason == "invalid"
    assert "does not verify for this file's content" in str(result.error)


def test_signing_garbage_signature_file_is_refused(project, signed):
    path = project.write("shop", NEW)
    (path.parent / "shop.py.sig").write_text("not a signature\n")
    result = hotswap.reload("shop")
    assert isinstance(result.error, hotswap.SignatureError)
    assert result.error.reason == "invalid"
    assert "is not a hotswap signature" in str(result.error)


def test_signing_unreadable_key_refuses_every_change(project, release_key, tmp_path):
    hotswap.configure(require_signature={"public_keys": [str(tmp_path / "nope.pub")]})
    shop = project.load("shop", SHOP)
    path = project.write("shop", NEW)
    _signing.sign_file(str(path), str(release_key.private))
    result = hotswap.reload("shop")
    assert isinstance(result.error, hotswap.SignatureError)
    assert result.error.reason == "unavailable"
    assert "nope.pub" in str(result.error)
    assert shop.RATE == 2


def test_signing_off_by_default_applies_unsigned_changes(project):
    shop = project.load("shop", SHOP)
    assert project.reload("shop", NEW).ok
    assert shop.RATE == 3


def test_signing_result_error_pickles(project, signed):
    result = project.reload("shop", NEW)
    copy = pickle.loads(pickle.dumps(result))
    assert isinstance(copy.error, hotswap.SignatureError)
    assert copy.error.reason == "missing"
    assert str(copy.error) == str(result.error)


def test_signing_setting_rejects_a_table_without_keys(project):
    with pytest.raises(ValueError, match="require_signature"):
        hotswap.configure(require_signature={"public_keys": []})
    with pytest.raises(ValueError, match="require_signature"):
        hotswap.configure(require_signature={"keys": ["a.pub"]})


def test_signing_pyproject_key_paths_are_relative_to_it(project, release_key, tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.hotswap]\nrequire_signature = {public_keys = ["keys/release.pub"]}\n'
    )
    shop = project.load("shop", SHOP)
    assert hotswap.configure().require_signature.public_keys == (str(release_key.public),)
    assert isinstance(project.reload("shop", NEW).error, hotswap.SignatureError)
    _signing.sign_file(str(project.path("shop")), str(release_key.private))
    assert hotswap.reload("shop").ok
    assert shop.RATE == 3


def test_signing_from_the_environment(project, release_key, monkeypatch):
    monkeypatch.setenv("HOTSWAP_REQUIRE_SIGNATURE", str(release_key.public))
    project.load("shop", SHOP)
    assert isinstance(project.reload("shop", NEW).error, hotswap.SignatureError)


def run(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_signing_cli_signs_files_that_then_verify(project, signed, release_key, tmp_path):
    path = project.write("shop", NEW)
    other = project.write("other", "X = 1\n")
    done = run(
        "-m",
        "hotswap",
        "sign",
        str(path),
        str(other),
        "--key",
        str(release_key.private),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert f"signed {path} -> {path}.sig" in done.stdout
    assert (other.parent / "other.py.sig").is_file()
    assert hotswap.reload("shop").ok
    assert signed.RATE == 3


def test_signing_cli_reports_a_bad_key(project, tmp_path):
    path = project.write("shop", NEW)
    (tmp_path / "bad.key").write_text("not a key\n")
    done = run("-m", "hotswap", "sign", str(path), "--key", str(tmp_path / "bad.key"), cwd=tmp_path)
    assert done.returncode == 1
    assert f"hotswap sign: {path}:" in done.stderr
    assert not (path.parent / "shop.py.sig").exists()
    missing = run("-m", "hotswap", "sign", str(path), cwd=tmp_path)
    assert missing.returncode == 2
    assert "--key" in missing.stderr


def test_signing_without_cryptography_refuses_every_change(tmp_path, release_key):
    # A fresh interpreter where cryptography cannot be imported: hotswap fails closed.
    (tmp_path / "shop.py").write_text(SHOP)
    code = textwrap.dedent(
        f"""
        import pathlib, sys
        sys.modules["cryptography"] = None  # what a missing package looks like to import
        import hotswap
        import shop
        hotswap.configure(require_signature={{"public_keys": [{str(release_key.public)!r}]}})
        pathlib.Path("shop.py").write_text({NEW!r})
        pathlib.Path("shop.py.sig").write_text("{{}}")
        result = hotswap.reload("shop")
        print(result.error.reason, shop.RATE)
        print(result.error)
        """
    )
    done = run("-c", code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()[:2]
    assert first == "unavailable 2"
    assert "needs the 'cryptography' package, hotswap's 'signing' extra" in second


@pytest.mark.watcher
def test_signing_watcher_applies_once_the_signature_arrives(project, signed, release_key, events):
    hotswap.enable([str(project.root)])
    try:
        path = project.path("shop")
        path.write_text(NEW)
        events.wait_for(lambda e: bool(e.of(hotswap.ReloadResult)))
        refused = events.of(hotswap.ReloadResult)[0]
        assert isinstance(refused.error, hotswap.SignatureError)
        assert signed.RATE == 2
        _signing.sign_file(str(path), str(release_key.private))
        events.wait_for(lambda e: any(r.ok for r in e.of(hotswap.ReloadResult)))
    finally:
        hotswap.disable()
    assert signed.RATE == 3
