"""reffeat.output: the one JSON encoder in its three uses (report, rounded report,
lossless store) and the one version."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

import reffeat
from reffeat import _version
from reffeat.output import decode, encode, package_versions, strict_json

REPO = Path(__file__).resolve().parent.parent


def test_report_mode_writes_nonfinite_as_null_and_converts_numpy():
    obj = {"a": np.array([1.5, np.nan, np.inf]), 3: np.int64(7), "b": np.bool_(True),
           "t": (np.float32(0.25), -np.inf), "p": Path("x/y")}
    out = encode(obj)
    assert out == {"a": [1.5, None, None], "3": 7, "b": True, "t": [0.25, None], "p": "x/y"}
    assert type(out["3"]) is int and type(out["b"]) is bool
    json.dumps(out, allow_nan=False)                     # strict JSON: would raise on NaN


def test_digits_rounds_finite_floats_only():
    out = encode({"x": 1.23456789, "y": [np.float64(2 / 3)], "n": np.nan, "i": 12345678}, digits=3)
    assert out == {"x": 1.23, "y": [0.667], "n": None, "i": 12345678}


def test_nonfinite_text_writes_inf_as_a_string_and_nan_as_null():
    out = encode({"v": math.inf, "w": -math.inf, "z": math.nan, "f": 2.0}, nonfinite="text")
    assert out == {"v": "inf", "w": "-inf", "z": None, "f": 2.0}
    with pytest.raises(ValueError, match="nonfinite must be one of null, text"):
        encode(1.0, nonfinite="nan")


def test_lossless_round_trip_is_bit_exact_and_rejects_report_options():
    obj = {"a": np.array([np.nan, -0.0, 5e-324]), "s": -math.inf, "k": [1, "x", None]}
    back = decode(json.loads(strict_json(obj, lossless=True)))
    assert back["a"].tobytes() == obj["a"].tobytes() and back["s"] == -math.inf and back["k"] == [1, "x", None]
    with pytest.raises(ValueError, match="lossless"):
        encode(obj, lossless=True, digits=3)


def test_the_version_is_written_once():
    assert reffeat.__version__ == _version.__version__ == package_versions()["reffeat"]
    cfg = (REPO / "setup.cfg").read_text(encoding="utf-8")
    assert re.search(r"^version = attr: reffeat\._version\.__version__$", cfg, re.M), "setup.cfg must read _version"
    assert reffeat.__version__ in (REPO / "CITATION.cff").read_text(encoding="utf-8")
