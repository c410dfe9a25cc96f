"""Checkpoints of metric state: a store's layout and leaves in one NumPy ``.npz`` file.

Each leaf is stored under its path (``metrics[0].total.hi``) with its exact bytes, so any dtype
survives (bfloat16 included) and a store loaded from a checkpoint written mid-epoch continues
exactly as the uninterrupted run would. A JSON header records the format, the layout (keys,
log modes, each metric's class as an import path and its static options, each field's shape
and storage) and every leaf's dtype and shape; loading checks all of it before building
anything. A checkpoint is self-describing: loading it in a fresh process needs nothing
registered or called first. It imports the module that defines each recorded metric class (a
class defined inside a function, or in a script's ``__main__``, cannot be found that way) and
accepts only :class:`~metricskit.Metric` subclasses from it; options are JSON data. No code
from the file itself runs, but importing a module runs that module's import-time code, as
unpickling does: load only checkpoints you trust, or pass ``like=`` (a store of the same
metrics), which takes the classes from that store and imports nothing. :meth:`MetricStore.save
<metricskit.MetricStore.save>` and :meth:`MetricStore.load <metricskit.MetricStore.load>` are
the entry points.

Examples:
    >>> import os, tempfile
    >>> import metricskit as mk
    >>> store = mk.MetricStore(default_log_modes=("mean", "max")).update({"loss": 2.0})
    >>> path = os.path.join(tempfile.mkdtemp(), "metrics.npz")
    >>> store.save(path)
    >>> mk.MetricStore.load(path).update({"loss": 4.0}).compute()
    {'loss_max': 4.0, 'loss_mean': 3.0}
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import zipfile
from collections.abc import Sequence
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from metricskit._engine import kernels
from metricskit._engine.step import Group, Layout, Signature, empty_state, index, names
from metricskit.metric import (
    ConfiguredMetric,
    FieldSpec,
    Metric,
    Mode,
    Options,
    get_log_mode,
    legacy_mode,
    mode_order,
    sample_fields,
    state_fields,
    static_options,
    x64_storage,
)

FORMAT = "metricskit.checkpoint/3"
"""The format tag every checkpoint's header carries."""

_FORMAT_2 = "metricskit.checkpoint/2"  # metricskit 0.2: modes by registered name only

_HEADER = "__metricskit__"


class CheckpointError(ValueError):
    """A file that is not a complete metricskit checkpoint, or not of the expected structure."""


def _tuples(x: Any) -> Any:
    return tuple(_tuples(v) for v in x) if isinstance(x, list) else x


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _mode_json(mode: Mode) -> Any:
    if isinstance(mode, ConfiguredMetric):
        options = [[name, value] for name, value in mode.options]
        return {"class": mode.path, "options": options, "postfix": mode.postfix}
    return mode


def modes_json(modes: Sequence[Mode] | None) -> list[Any] | None:
    """Log modes as JSON data (names as they are; configured metrics as class path, options
    and postfix), e.g. a store's default log modes."""
    return None if modes is None else [_mode_json(m) for m in modes]


def modes_from_json(data: Sequence[Any] | None) -> tuple[Mode, ...] | None:
    """The log modes :func:`modes_json` wrote (metric classes imported as needed)."""
    return None if data is None else tuple(_mode_from_json({"mode": m}, FORMAT) for m in data)


def layout_json(layout: Layout) -> list[dict[str, Any]]:
    """A layout as JSON data: every group's mode (a name, or a configured metric's class path,
    options and postfix), the class behind it, its keys, fields and static options."""
    return [
        {
            "mode": _mode_json(g.mode),
            "class": _class_path(get_log_mode(g.mode).cls),
            "keys": list(g.keys),
            "fields": [[name, list(s.shape), s.storage] for name, s in g.signature.fields],
            "statics": [[name, value] for name, value in get_log_mode(g.mode).options],
        }
        for g in layout.groups
    ]


_MOVED = {
    "metricskit.persample": "metricskit.builtin",
    "metricskit.nan_policy": "metricskit.builtin",
}
"""Modules of metricskit's own metric classes that earlier versions recorded, and where those
classes are now."""


def current_path(path: str) -> str:
    """A recorded class path (``module:qualname``) as it is in this version (metricskit's own
    classes that moved module keep loading)."""
    module, _, qualname = path.partition(":")
    return f"{_MOVED.get(module, module)}:{qualname}"


def _import_class(path: str) -> type[Metric]:
    """The metric class at ``module:qualname`` (its module imported if it is not yet)."""
    module, _, qualname = path.partition(":")
    if "<locals>" in qualname:
        raise CheckpointError(
            f"metric class {path} was defined inside a function, so it cannot be imported: "
            "define it at module level (or load with like= a store that uses it)"
        )
    if module == "__main__" and not hasattr(importlib.import_module("__main__"), qualname):
        raise CheckpointError(
            f"metric class {path} was defined in the script that saved the checkpoint "
            "(__main__), which another program cannot import: move the class into a module "
            "(or load with like= a store that uses it)"
        )
    try:
        obj: Any = importlib.import_module(module)
        for name in qualname.split("."):
            obj = getattr(obj, name)
    except (ImportError, AttributeError, ValueError) as e:
        raise CheckpointError(
            f"metric class {path} cannot be imported ({type(e).__name__}: {e}); install or "
            "make importable the module that defines it"
        ) from e
    if not (isinstance(obj, type) and issubclass(obj, Metric)):
        raise CheckpointError(f"{path} is {obj!r}, not a metricskit.Metric subclass")
    return obj


def _mode_from_json(
    group: dict[str, Any], version: str, known: Sequence[Mode] = (), imports: bool = True
) -> Mode:
    """The mode a checkpoint records: one of ``known`` (a store to load into) when it is
    there, else a registered name, a metricskit 0.2 task-mode name, or a class imported."""
    mode = group["mode"]
    if isinstance(mode, str):
        if mode in known:
            return mode
        with contextlib.suppress(ValueError):
            return get_log_mode(mode).name
        legacy = legacy_mode(mode, known) if version == _FORMAT_2 else None
        if legacy is not None:
            return legacy
        if "class" in group and imports:
            _import_class(current_path(group["class"]))  # its module registers the name
            return get_log_mode(mode).name
        raise CheckpointError(
            f"log mode {mode!r} is not a registered name"
            + (
                f" (a {version} checkpoint, written by metricskit 0.2, which named task metrics "
                "after their options): load it with like= a store made by the same task "
                "functions with the same options (MetricStore().init(step_metrics))"
                if version == _FORMAT_2
                else ""
            )
        )
    path, postfix = current_path(mode["class"]), mode["postfix"]
    options = {name: _tuples(value) for name, value in mode["options"]}
    for candidate in known:  # a store to load into knows its classes: nothing to import
        if (
            isinstance(candidate, ConfiguredMetric)
            and (candidate.path, candidate.postfix) == (path, postfix)
            and candidate.options == _with_defaults(candidate.cls, options, candidate)
        ):
            return candidate
    if not imports:
        raise CheckpointError(
            f"the checkpoint holds log mode {path}{options} (postfix {postfix!r}), which "
            "the store to load into does not have; load it without like= to get the saved "
            "structure"
        )
    cls = _import_class(path)
    _with_defaults(cls, options, path)
    return ConfiguredMetric.of(cls, {**options, "postfix": postfix})


def _with_defaults(cls: type[Metric], recorded: dict[str, Any], mode: Any) -> Options:
    """The recorded options of ``cls`` with the defaults of options the class has gained since
    the checkpoint was written.

    Raises:
        CheckpointError: If the class lost a recorded option (or one has no default now).
    """
    try:
        return static_options(cls, recorded)
    except TypeError as e:
        raise CheckpointError(
            f"log mode {mode}: {e}. The class's options changed since the checkpoint was "
            "written: load it with the class that saved it (options the class has gained "
            "since, with a default, are filled in)"
        ) from None


def layout_from_json(
    groups: list[dict[str, Any]],
    version: str = FORMAT,
    known: Sequence[Mode] | None = None,
) -> Layout:
    """The layout :func:`layout_json` wrote: metric classes imported as needed, or, given the
    modes of a store to load into (``known``), taken from them (nothing imported).

    Raises:
        CheckpointError: For a class that cannot be imported, or whose state fields are not
            the recorded ones.
        KeyError, TypeError, ValueError: For a malformed record.
    """
    out = []
    for g in groups:
        mode = _mode_from_json(g, version, known or (), known is None)
        fields = tuple((n, FieldSpec(tuple(shape), storage)) for n, shape, storage in g["fields"])
        log_mode = get_log_mode(mode)
        cls = log_mode.cls
        names = [f.name for f in state_fields(cls)]
        if names != [n for n, _ in fields]:
            raise CheckpointError(
                f"log mode {mode!r} was saved with state fields {[n for n, _ in fields]}, but "
                f"its class {_class_path(cls)} now has {names}: the state fields differ from "
                "the classes that wrote the checkpoint; load it with the metric class that "
                "saved it"
            )
        for f, (_, spec) in zip(state_fields(cls), fields, strict=True):
            _check_field_x64(mode, f, spec.storage)
        if version == _FORMAT_2 and isinstance(mode, ConfiguredMetric):
            statics = mode.options  # 0.2's task classes had no static fields
        else:
            statics = _with_defaults(cls, {n: _tuples(v) for n, v in g["statics"]}, repr(mode))
        if isinstance(mode, ConfiguredMetric) and (
            statics != mode.options or current_path(g.get("class", mode.path)) != mode.path
        ):
            raise CheckpointError(
                f"log mode {mode!r} is recorded with class {g.get('class')} and options "
                f"{statics}, which disagree with the mode itself; the file was altered"
            )
        if statics != log_mode.options:  # a registered name: its class's defaults now
            raise CheckpointError(
                f"log mode {mode!r} is recorded with options {dict(statics)}, but its class "
                f"{_class_path(cls)} now has defaults {dict(log_mode.options)}; load "
                "it with the class that saved it"
            )
        out.append(Group(mode, Signature(fields), tuple(g["keys"])))
    return Layout(tuple(out))


def _leaves(layout: Layout, metrics: Sequence[Metric]) -> list[tuple[str, np.ndarray]]:
    flat = jax.device_get(kernels.flatten(metrics, layout))
    return [(path, np.asarray(x)) for path, x in zip(kernels.paths(layout), flat, strict=True)]


def save(
    path: str | os.PathLike[str], layout: Layout, metrics: Sequence[Metric], meta: dict[str, Any]
) -> None:
    """Write a store's layout, leaves and ``meta`` (JSON) to ``path``, atomically.

    The file is written beside ``path`` and renamed over it only when complete, so a crash
    while saving leaves the previous checkpoint in place.

    Raises:
        TypeError: If a metric's static configuration is not JSON.
    """
    leaves = _leaves(layout, metrics)
    header = {
        "format": FORMAT,
        "meta": meta,
        "layout": layout_json(layout),
        "leaves": [[name, str(x.dtype), list(x.shape)] for name, x in leaves],
    }
    arrays = {_HEADER: np.frombuffer(json.dumps(header).encode(), np.uint8)}
    for name, x in leaves:  # raw bytes: any dtype (bfloat16, float8) round-trips exactly
        arrays[name] = np.ascontiguousarray(x).reshape(-1).view(np.uint8)
    path = os.fspath(path)
    partial = f"{path}.partial"
    with open(partial, "wb") as f:
        cast(Any, np.savez)(f, **arrays)
    os.replace(partial, path)


def _read(path: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    where = f"{path!r}"
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            if _HEADER not in npz.files:
                raise CheckpointError(
                    f"{where} is not a metricskit checkpoint (no {_HEADER!r} entry); write "
                    "checkpoints with MetricStore.save"
                )
            header = json.loads(npz[_HEADER].tobytes().decode())
            arrays = {name: npz[name] for name in npz.files if name != _HEADER}
    except (CheckpointError, FileNotFoundError):
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"{where} is not a complete metricskit checkpoint ({type(e).__name__}: {e}); it "
            "may be truncated or not a checkpoint at all. Save it again with MetricStore.save"
        ) from e
    if not isinstance(header, dict) or header.get("format") not in (FORMAT, _FORMAT_2):
        found = header.get("format") if isinstance(header, dict) else None
        raise CheckpointError(
            f"{where} has format {found!r}; this metricskit reads {FORMAT!r} and {_FORMAT_2!r}"
        )
    return header, arrays


def load(
    path: str | os.PathLike[str], known: Sequence[Mode] | None = None
) -> tuple[Layout, tuple[Metric, ...], dict[str, Any]]:
    """Read a checkpoint written by :func:`save`. Given ``known`` (the modes of a store to load
    into), its modes are taken from them and nothing is imported; otherwise metric classes are
    imported from their recorded paths.

    Returns:
        ``(layout, metrics with device leaves, meta)``. Nothing passed in is changed.

    Raises:
        CheckpointError: (a ``ValueError``) for a truncated file, a file that is not a
            metricskit checkpoint, or leaves its layout does not produce.
        FileNotFoundError: If ``path`` does not exist.
    """
    path = os.fspath(path)
    header, arrays = _read(path)
    try:
        layout = layout_from_json(header["layout"], header["format"], known)
        names(layout)  # two values reported under one name: not a store's layout
        template = tuple(empty_state(g.mode, g.signature, len(g.keys), np) for g in layout.groups)
        expected = _leaves(layout, template)
    except CheckpointError as e:
        raise CheckpointError(f"{path!r}: {e}") from e
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{path!r} has an unreadable store layout: {e}") from e
    found = [(name, dtype, tuple(shape)) for name, dtype, shape in header["leaves"]]
    if found != [(name, str(x.dtype), x.shape) for name, x in expected]:
        _check_x64(path, found, expected)
        raise CheckpointError(
            f"{path!r} has leaves {found}, which its layout does not produce; the file was "
            "not written by MetricStore.save of this metricskit version"
        )
    leaves = []
    for name, x in expected:
        raw = arrays.get(name)
        if raw is None or raw.size != x.nbytes:
            raise CheckpointError(f"{path!r}: leaf {name!r} is missing or truncated")
        leaves.append(jnp.asarray(raw.view(x.dtype).reshape(x.shape)))
    return layout, kernels.unflatten(layout, leaves), dict(header.get("meta", {}))


def _pair_order(pair: tuple[str, Mode]) -> tuple[str, tuple[int, str]]:
    return pair[0], mode_order(pair[1])


_WIDER = {"float32": "float64", "int32": "int64"}
_NARROWER = {b: a for a, b in _WIDER.items()}


def _x64_error(saved: str, what: str) -> CheckpointError:
    now = "off" if saved == "on" else "on"
    return CheckpointError(
        f"it was saved with jax_enable_x64 {saved} ({what}), and this process has it {now}: "
        f"load it in a process with jax_enable_x64 {saved}"
    )


def _check_field_x64(mode: Mode, field: Any, storage: str) -> None:
    """Raise naming ``jax_enable_x64`` if a field's recorded storage is one this process would
    not make (a 64-bit array with x64 off, a field declared "int"/"float" of the other width)."""
    if storage in ("pair", "words"):
        return  # exact accumulators: their leaves' widths are checked with the leaves
    now = x64_storage(field)
    wide = storage in ("int64", "uint64", "float64")
    other_width = now is not None and storage in (_WIDER.get(now), _NARROWER.get(now))
    if other_width or (wide and jax.dtypes.canonicalize_dtype(storage) != np.dtype(storage)):
        what = f"log mode {mode!r} field {field.name!r} holds {storage}"
        raise _x64_error("on" if wide else "off", what)


def _check_x64(path: str, found: list[Any], expected: list[tuple[str, np.ndarray]]) -> None:
    """Raise naming ``jax_enable_x64`` if the leaves differ from ``expected`` only in the
    width of their accumulators (a file saved with the other setting)."""
    pairs = list(zip(found, expected, strict=False))
    if len(found) != len(expected) or any(
        (n, tuple(shape)) != (m, x.shape) for (n, _, shape), (m, x) in pairs
    ):
        return
    widths = {(d, str(x.dtype)) for (_, d, _), (_, x) in pairs if d != str(x.dtype)}
    if widths and all(_WIDER.get(a) == b or _WIDER.get(b) == a for a, b in widths):
        saved = "on" if any(_WIDER.get(b) == a for a, b in widths) else "off"
        what = f"its exact accumulators are {sorted(a for a, _ in widths)}"
        raise CheckpointError(f"{path!r}: {_x64_error(saved, what)}")


def check_like(path: str | os.PathLike[str], found: Layout, like: Layout) -> None:
    """Raise unless the checkpoint's layout ``found`` is ``like``'s, up to the sample axis of
    per-sample fields (an evaluation store grown over batches loads into a one-batch store).

    Raises:
        CheckpointError: Naming the key, mode, field and the two shapes or storages.
    """
    mine, theirs = index(found), index(like)
    missing = sorted(set(theirs) - set(mine), key=_pair_order)
    extra = sorted(set(mine) - set(theirs), key=_pair_order)
    if missing or extra:
        raise CheckpointError(
            f"{os.fspath(path)!r} holds (key, mode) pairs that differ from the store to restore: "
            f"missing {missing}, not expected {extra}; load it without like= to get the saved "
            "structure"
        )
    for (key, mode), (g, _) in mine.items():
        a = found.groups[g].signature
        b = like.groups[theirs[(key, mode)][0]].signature
        sample = sample_fields(get_log_mode(mode).cls)  # per-sample fields
        for (name, fa), (_, fb) in zip(a.fields, b.fields, strict=True):
            sa, sb = fa.shape, fb.shape
            if name in sample:
                sa, sb = sa[1:], sb[1:]
            if sa != sb or fa.storage != fb.storage:
                raise CheckpointError(
                    f"{os.fspath(path)!r}: metric {key!r} (log mode {mode!r}) field {name!r} is "
                    f"{tuple(fa.shape)} {fa.storage} in the checkpoint but {tuple(fb.shape)} "
                    f"{fb.storage} in the store to restore"
                )
