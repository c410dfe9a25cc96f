"""The dtype policy: logical dtypes of every input, and which are wide (64-bit, x64 off)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from helpers import X64

from metricskit import exact


@pytest.mark.parametrize(
    ("dtype", "logical"),
    [
        (np.bool_, "bool"),
        (np.int8, "int32"),
        (np.int16, "int32"),
        (np.int32, "int32"),
        (np.int64, "int64"),
        (np.uint8, "int32"),
        (np.uint16, "int32"),
        (np.uint32, "int64"),
        (np.uint64, "int64"),
        (np.float16, "float32"),
        (ml_dtypes.bfloat16, "float32"),
        (np.float32, "float32"),
        (np.float64, "float64"),
        (np.complex64, None),
        (np.object_, None),
        (np.str_, None),
    ],
)
def test_logical_dtypes(dtype, logical):
    assert exact.logical(np.dtype(dtype)) == logical


def test_python_numbers():
    assert exact.logical_of_python(True) == "bool"
    assert exact.logical_of_python(2**31 - 1) == "int32"
    assert exact.logical_of_python(-(2**31)) == "int32"
    assert exact.logical_of_python(2**31) == "int64"
    assert exact.logical_of_python(0.5) == "float64"


def test_kinds_and_wide_dtypes_follow_x64():
    assert [exact.kind(d) for d in ("bool", "int32", "int64", "float32", "float64")] == [
        "int",
        "int",
        "int",
        "float",
        "float",
    ]
    assert exact.is_wide("int64") == exact.is_wide("float64") == (not X64)
    assert not exact.is_wide("int32") and not exact.is_wide("float32")
    assert exact.x64() == X64
    assert exact.float_dtype() == (np.float64 if X64 else np.float32)
    assert exact.int_dtype() == (np.int64 if X64 else np.int32)
