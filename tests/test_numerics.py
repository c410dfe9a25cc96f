"""The dtype policy and the division helper."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from helpers import FLOAT, INT, X64

from metricskit.numerics import count_dtype, divide, float_dtype, input_dtype, is_numeric_dtype


@pytest.mark.parametrize(
    ("dtype", "value", "count"),
    [
        (np.float64, "float64", FLOAT),
        (np.float32, "float32", FLOAT),
        (np.float16, "float32", FLOAT),
        (ml_dtypes.bfloat16, "float32", FLOAT),
        (np.int64, INT, INT),
        (np.int8, INT, INT),
        (np.uint16, INT, INT),
        (np.bool_, "bool", INT),
    ],
)
def test_dtype_policy(dtype, value, count):
    assert input_dtype(np.dtype(dtype)).name == value
    assert count_dtype(np.dtype(dtype)).name == count


@pytest.mark.parametrize("dtype", [object, np.complex64, np.str_, "datetime64[s]"])
def test_non_numeric_dtypes_are_rejected(dtype):
    assert not is_numeric_dtype(np.dtype(dtype))
    with pytest.raises(TypeError, match="not numeric"):
        input_dtype(np.dtype(dtype))


def test_float_dtype_follows_x64():
    assert float_dtype() == (np.float64 if X64 else np.float32)


@pytest.mark.parametrize("use_jit", [False, True])
def test_divide_reports_zero_for_empty_counts(use_jit):
    fn = jax.jit(divide) if use_jit else divide
    out = fn(jnp.array([3.0, 1.0, -2.0]), jnp.array([2, 0, 4]))
    np.testing.assert_array_equal(out, [1.5, 0.0, -0.5])
    assert out.dtype == FLOAT
    assert fn(jnp.int32(7), jnp.int32(2)).dtype == FLOAT
    grad = jax.grad(lambda x: divide(x, 0.0))(1.0)  # no NaN leaks through the masked branch
    assert float(grad) == 0.0
