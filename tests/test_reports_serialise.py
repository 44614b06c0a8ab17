"""Results, statuses and errors survive pickling, copying and JSON: they travel to other
processes, dashboards and logs."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest

import hotswap
from hotswap import exceptions
from hotswap._ops.events import Changes, Dependent, ModuleStatus, Skipped, Status
from hotswap._plan.diff import Finding

FINDING = Finding("charge", "charge(amount, currency)", "charge(amount)", 4, "removed", True)


def _syntax() -> SyntaxError:
    return SyntaxError("'(' was never closed", ("shop.py", 3, 11, "def charge(\n", 3, 12))


# One instance of every exception hotswap defines, each field set to a telling value.
ERRORS: dict[str, Callable[[], exceptions.HotswapError]] = {
    "HotswapError": lambda: exceptions.HotswapError(
        "shop (shop.py:2): no", module="shop", filename="shop.py", lineno=2
    ),
    "ModuleNotReloadableError": lambda: exceptions.ModuleNotReloadableError(
        "shop: gone", module="shop", filename="shop.py"
    ),
    "SourceSyntaxError": lambda: exceptions.SourceSyntaxError(
        "shop (shop.py:3:11): '(' was never closed", module="shop", error=_syntax()
    ),
    "IncompatibleChangeError": lambda: exceptions.IncompatibleChangeError(
        "shop (shop.py:4): 1 incompatible change",
        module="shop",
        filename="shop.py",
        findings=[FINDING],
    ),
    "ExecutionError": lambda: exceptions.ExecutionError(
        "shop (shop.py:5): ValueError: bad", module="shop", filename="shop.py", lineno=5
    ),
    "MigrationError": lambda: exceptions.MigrationError(
        "shop (shop.py:6): in migrate", module="shop", filename="shop.py", lineno=6
    ),
    "VerificationError": lambda: exceptions.VerificationError(
        "shop (shop.py:7): in verify", module="shop", filename="shop.py", lineno=7
    ),
    "PinTimeoutError": lambda: exceptions.PinTimeoutError("shop: pinned", module="shop"),
    "ReentrantReloadError": lambda: exceptions.ReentrantReloadError("shop: re", module="shop"),
    "VersionNotFoundError": lambda: exceptions.VersionNotFoundError("shop: v9", module="shop"),
    "AuditError": lambda: exceptions.AuditError(
        "shop (shop.py:3): call to os.system",
        module="shop",
        filename="shop.py",
        names=[(3, "call to", "os.system")],
    ),
    "SignatureError": lambda: exceptions.SignatureError(
        "shop.py: stale signature", module="shop", filename="shop.py", reason="stale"
    ),
    "CanaryError": lambda: exceptions.CanaryError(
        "shop (shop.py:9): a top-level expression would run again",
        module="shop",
        filename="shop.py",
        lineno=9,
    ),
    "ConfigError": lambda: exceptions.ConfigError(
        "app.toml:3: db.timeout: not a number", filename="app.toml", lineno=3, key="db.timeout"
    ),
}

SLOTS = ("msg", "filename", "lineno", "offset", "text", "end_lineno", "end_offset", "args")


def _fields(error: BaseException) -> dict[str, Any]:
    found = dict(vars(error))
    for name in SLOTS:  # SyntaxError keeps these outside __dict__
        if hasattr(error, name):
            found[name] = getattr(error, name)
    found["str"] = str(error)
    return found


COPIES: dict[str, Callable[[Any], Any]] = {
    "pickle": lambda value: pickle.loads(pickle.dumps(value)),
    "deepcopy": copy.deepcopy,
    "copy": copy.copy,
}


def test_reports_every_exception_is_covered():
    defined = set(exceptions.__all__) - {"HotswapWarning"}
    assert defined == set(ERRORS)


@pytest.mark.parametrize("how", sorted(COPIES))
@pytest.mark.parametrize("name", sorted(ERRORS))
def test_reports_exception_copies_with_every_field_and_its_cause(name, how):
    error = ERRORS[name]()
    error.__cause__ = ValueError("the original")
    again = COPIES[how](error)
    assert type(again) is type(error)
    assert _fields(again) == _fields(error)
    assert isinstance(again.__cause__, ValueError)
    assert str(again.__cause__) == "the original"


class _Picky(Exception):
    """A user's exception that pickle cannot rebuild: its ``__init__`` takes two arguments."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(a)


def test_reports_exception_with_an_unpicklable_cause_still_copies():
    error = ERRORS["ExecutionError"]()
    error.__cause__ = _Picky(1, 2)
    again = pickle.loads(pickle.dumps(error))
    assert _fields(again) == _fields(error)
    assert copy.deepcopy(error).lineno == 5


def _every_nested_result() -> hotswap.ReloadResult:
    error = ERRORS["IncompatibleChangeError"]()
    error.__cause__ = KeyError("currency")
    return hotswap.ReloadResult(
        module="shop",
        ok=False,
        version=3,
        changes=Changes(
            ("refund",),
            ("charge",),
            ("legacy",),
            ("Color (it is an Enum)",),
            {"refund": (40, 41), "charge": (12, 18)},
        ),
        error=error,
        rolled_back=True,
        duration=0.0012,
        warnings=("shop (shop.py:4): charge(a, b) -> charge(a): parameter 'b' removed",),
        kind="reload",
        dependents=(Dependent("cart", (3, 7)),),
        skipped=(Skipped(12, "running since line 12: restart to apply", ("main",)),),
    )


def test_reports_result_to_dict_serialises_every_nested_type():
    result = _every_nested_result()
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) == {
        "module",
        "ok",
        "version",
        "changes",
        "error",
        "rolled_back",
        "duration",
        "warnings",
        "kind",
        "dependents",
        "skipped",
        "reason",
        "epoch",
    }
    assert data["changes"]["lines"] == {"refund": [40, 41], "charge": [12, 18]}
    assert data["changes"]["replaced"] == ["Color (it is an Enum)"]
    assert data["dependents"] == [{"module": "cart", "lines": [3, 7]}]
    assert data["skipped"] == [
        {"line": 12, "reason": "running since line 12: restart to apply", "names": ["main"]}
    ]
    error = data["error"]
    assert error["type"] == "IncompatibleChangeError"
    assert (error["module"], error["filename"], error["lineno"]) == ("shop", "shop.py", 4)
    assert error["cause"] == {"type": "KeyError", "message": "'currency'"}
    assert error["findings"] == [
        {
            "symbol": "charge",
            "old": "charge(amount, currency)",
            "new": "charge(amount)",
            "lineno": 4,
            "reason": "removed",
        }
    ]
    status = Status(
        modules={"shop": ModuleStatus("shop", 3, "ab" * 32, result, (1, 2, 3))},
        watching=False,
        reloads=4,
        failures=1,
        last_duration=0.001,
        total_duration=0.01,
    )
    as_json = json.loads(json.dumps(status.to_dict()))
    assert as_json["modules"]["shop"]["last_result"] == data
    assert as_json["modules"]["shop"]["history"] == [1, 2, 3]
    assert as_json["canaries"] == {}  # a running canary's to_dict(): tests/test_canary.py


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_reports_result_to_dict_of_every_error_kind_is_json(name):
    error = ERRORS[name]()
    result = hotswap.ReloadResult(module="shop", ok=False, version=1, error=error)
    data = json.loads(json.dumps(result.to_dict()))["error"]
    assert data["type"] == name
    assert data["message"] == str(error)
    assert data["lineno"] == error.lineno


class _Odd(Exception):
    """An exception from somewhere else, whose attributes are not text."""

    module = object()
    filename = b"/srv/app/shop.py"
    lineno = "twelve"


def test_reports_result_to_dict_of_a_foreign_error_is_json():
    result = hotswap.ReloadResult(module="shop", ok=False, version=1, error=_Odd("odd"))
    data = json.loads(json.dumps(result.to_dict()))["error"]
    assert data["filename"] == "/srv/app/shop.py"
    assert data["lineno"] is None
    assert data["module"].startswith("<object object")


@pytest.mark.parametrize("how", sorted(COPIES))
def test_reports_result_and_status_copy_with_their_error(how):
    result = _every_nested_result()
    again = COPIES[how](result)
    assert again.to_dict() == result.to_dict()
    assert isinstance(again.error.__cause__, KeyError)
    status = ModuleStatus("shop", 3, "ab" * 32, result, (1, 2, 3))
    assert COPIES[how](status).to_dict() == status.to_dict()


SHOP = "from prices import RATE\nTOTAL = RATE * 10\n\ndef charge(a, b):\n    return a\n"


def test_reports_real_results_serialise(project):
    project.load("prices", "RATE = 2\n\ndef rate():\n    return RATE\n")
    project.load(
        "shop", "from prices import RATE\nTOTAL = RATE * 10\n\ndef charge(a, b):\n    return a\n"
    )
    results = [
        project.reload("prices", "RATE = 3\n\ndef rate():\n    return RATE\n"),  # dependents
        project.reload("shop", "from prices import RATE\nTOTAL = (\n"),  # syntax
        project.reload(
            "shop", "from prices import RATE\nTOTAL = RATE * 10\n\ndef charge(a):\n    return a\n"
        ),  # incompatible
        project.reload(
            "shop", "from prices import RATE\nTOTAL = RATE / 0\n\ndef charge(a, b):\n    return a\n"
        ),  # raised while executing
        project.reload("shop", SHOP.replace("a, b", "a, b=0"), force=True),  # a reset
        hotswap.rollback("prices"),
    ]
    assert [r.ok for r in results] == [True, False, False, False, True, True]
    assert results[0].dependents
    for result in results:
        data = json.loads(json.dumps(result.to_dict()))
        assert COPIES["pickle"](result).to_dict() == data
        assert copy.deepcopy(result).to_dict() == data
    assert json.loads(json.dumps(results[3].to_dict()))["error"]["cause"]["type"] == (
        "ZeroDivisionError"
    )
    status = hotswap.status()
    assert json.loads(json.dumps(status.to_dict()))["modules"]["shop"]["version"] == 3
