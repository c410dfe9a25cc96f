"""Field declarations: a state field's reduction, shape, dtype and storage, declared once."""

from __future__ import annotations

import attrs
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import FLOAT, INT, X64

import metricskit as mk
from metricskit import exact
from metricskit.metric import FieldSpec, Spec, field_kind, field_spec, reduction_of, storage


def test_declarations_carry_their_metadata():
    cls = attrs.make_class("C", {"s": mk.state("max", shape="count"), "p": mk.static(2)})
    s, p = attrs.fields(cls)
    assert field_kind(s) == "state" and field_kind(p) == "static" and reduction_of(s) == "max"
    assert field_spec(s, Spec((3,), "float32"), Spec((2,), "int32")) == FieldSpec((2,), FLOAT)


@pytest.mark.parametrize(
    ("dtype", "exact_field", "value", "want"),
    [
        ("value", False, "float32", "float32"),
        ("value", False, "float64", "float64" if X64 else "pair"),
        ("value", False, "int64", "int64" if X64 else "words"),
        ("value", True, "int32", "words"),
        ("value", True, "float32", "pair"),
        ("value", False, "bool", "bool"),
        ("float", False, "int32", FLOAT),
        ("float", True, "int32", "pair"),
        ("int", False, "float32", INT),
        ("int", True, "float32", "words"),
        ("bfloat16", False, "float32", "bfloat16"),
    ],
)
def test_storage(dtype, exact_field, value, want):
    assert storage(dtype, exact_field, Spec((), value), Spec((), "int32")) == want


def test_zeros_of_every_storage_and_the_spec_of_a_value():
    for kind, cls in (("pair", exact.Pair), ("words", exact.Words)):
        z = FieldSpec((2,), kind).zeros()
        assert isinstance(z, cls) and FieldSpec.of(z) == FieldSpec((2,), kind)
        stacked = FieldSpec((2,), kind).zeros(5, np)
        assert isinstance(stacked.hi, np.ndarray) and stacked.hi.shape == (5, 2)
        assert FieldSpec.of(stacked, stacked=True) == FieldSpec((2,), kind)
    z = FieldSpec((2, 3), "bfloat16").zeros()
    assert z.shape == (2, 3) and z.dtype == jnp.bfloat16 and not z.any()
    assert FieldSpec.of(z) == FieldSpec((2, 3), "bfloat16")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reduce": "mean"}, "unknown reduction"),
        ({"reduce": "sum", "shape": "batch"}, "state shape"),
        ({"reduce": "sum", "shape": (2.5,)}, "state shape"),
        ({"reduce": "sum", "dtype": "complex64"}, "state dtype"),
        ({"reduce": "sum", "dtype": "text"}, "state dtype"),
        ({"reduce": "sum", "dtype": "bool", "exact": True}, "numeric"),
        ({"reduce": "sum", "dtype": "float16", "exact": True}, "exact=True"),
    ],
)
def test_bad_declarations_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mk.state(**kwargs)
