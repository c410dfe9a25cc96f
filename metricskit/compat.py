"""The small layer over what differs between the supported JAX versions (0.6.2 and newer).

- ``shard_map``: ``jax.shard_map`` (keyword ``check_vma``) on newer JAX,
  ``jax.experimental.shard_map.shard_map`` (keyword ``check_rep``) on older.
- ``make_mesh``: newer JAX makes mesh axes ``Explicit`` by default, which changes how inputs
  of ``shard_map`` must be sharded; metricskit's helpers and tests use ``Auto`` axes.
- ``axis_size``: ``jax.lax.axis_size`` where it exists, else ``psum(1, axis)``.
- ``Tracer``, :func:`concrete`, :func:`committed`: the one place that asks whether a value is
  traced, a concrete JAX array, or one placed on devices (``committed`` moved between
  versions).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import jax

AxisName = str | tuple[str, ...]
_lax: Any = jax.lax  # collectives are untyped on some supported versions
Tracer = jax.core.Tracer


def concrete(x: Any) -> bool:
    """Whether ``x`` is a JAX array with a value (not a tracer)."""
    return isinstance(x, jax.Array) and not isinstance(x, Tracer)


def committed(x: Any) -> bool:
    """Whether ``x`` is a concrete JAX array that was placed on devices (``device_put``, a
    sharded step's output), which a kernel must keep where it is."""
    return concrete(x) and bool(getattr(x, "committed", getattr(x, "_committed", True)))


# the collectives, typed loosely (untyped on some supported versions)
psum: Callable[..., Any] = _lax.psum
pmax: Callable[..., Any] = _lax.pmax
pmin: Callable[..., Any] = _lax.pmin
all_gather: Callable[..., Any] = _lax.all_gather  # in the order of the named axes


def shard_map(
    f: Callable[..., Any], *, mesh: Any, in_specs: Any, out_specs: Any, check: bool = False
) -> Callable[..., Any]:
    """``shard_map`` on every supported JAX version.

    Args:
        f: The per-device function.
        mesh: The device mesh.
        in_specs: Partition specs of the inputs.
        out_specs: Partition specs of the outputs.
        check: Whether JAX checks replication/varying-ness of the outputs.

    Returns:
        The mapped function.
    """
    new: Any = getattr(jax, "shard_map", None)
    if new is not None:
        return new(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=check)  # type: ignore[no-any-return]

    old: Any = importlib.import_module("jax.experimental.shard_map").shard_map
    return old(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_rep=check)  # type: ignore[no-any-return]


def make_mesh(shape: Sequence[int], names: Sequence[str], devices: Any = None) -> Any:
    """A device mesh with ``Auto`` axes (the default before JAX 0.9).

    Args:
        shape: The mesh shape.
        names: The axis names.
        devices: The devices (default: all).

    Returns:
        A ``jax.sharding.Mesh``.
    """
    kwargs: dict[str, Any] = {} if devices is None else {"devices": devices}
    axis_type = getattr(jax.sharding, "AxisType", None)
    if axis_type is not None:
        kwargs["axis_types"] = (axis_type.Auto,) * len(names)
    return jax.make_mesh(tuple(shape), tuple(names), **kwargs)


def axis_size(axis_name: AxisName) -> int:
    """The number of devices along ``axis_name`` (a name or tuple of names), inside a map."""
    size = getattr(_lax, "axis_size", None)
    if size is not None:
        return int(size(axis_name))
    return int(_lax.psum(1, axis_name))
