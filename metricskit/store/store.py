""":class:`MetricStore`: every metric of a training loop in one immutable pytree and mapping."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from metricskit import checkpoint, nan_policy
from metricskit.compat import AxisName
from metricskit.distributed import local_copy, process_sync, reduce_entries, sync_metric
from metricskit.metric import Metric, zeros_like
from metricskit.registry import Mode
from metricskit.store import combine, engine, host, leaves, results, tree
from metricskit.store.entries import KeyMetrics, Row, on_host, stack
from metricskit.store.layout import Layout, index, key_modes, names, rows
from metricskit.store.pack import pack
from metricskit.store.parse import DEFAULT_LOG_MODES, normalize_log_modes, parse
from metricskit.store.plan import make_plan, step_signature

__all__ = ["MetricStore"]

_UNSET: Any = object()
_EMPTY = Layout()


class MetricStore(Mapping[str, KeyMetrics]):
    """Every metric of a loop, per key and log mode, as one immutable pytree and mapping.

    Keys that share a log mode and state structure share one stacked
    :class:`~metricskit.Metric` (a leading key axis), so a store of thousands of scalar
    metrics has a handful of leaves, and its structure does not depend on the order in which
    steps list their keys. Every method returns a new store; an eager :meth:`update` is one
    compiled call per store structure. The store goes in and out of ``jax.jit`` like any
    pytree, and it is a read-only mapping of key -> :class:`KeyMetrics` (log mode -> metric),
    as the documented functional module's global metrics are; iterating it copies nothing.

    Args:
        default_log_modes: Log modes for keys whose step metrics name none; ``None`` means
            ``["mean_nopostfix"]``. A key keeps the modes it was first given.
        nan_policy: ``"propagate"`` (default: NaN and inf flow into the metrics, as float64
            arithmetic would carry them) or ``"skip"``: a step whose value or count is not
            finite adds nothing to that key, and the number of such steps is reported as
            ``key_nonfinite``. A step dict may override it per key with ``"nan_policy"``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import metricskit as mk
        >>> store = mk.MetricStore(default_log_modes=("mean", "max"))
        >>> store = store.init({"loss": 0.0})
        >>> @jax.jit
        ... def step(store, loss):
        ...     return store.update({"loss": loss})
        >>> for loss in (4.0, 2.0, 3.0):
        ...     store = step(store, jnp.float32(loss))
        >>> store.compute()
        {'loss_max': 4.0, 'loss_mean': 3.0}
        >>> list(store), sorted(store["loss"])
        (['loss'], ['max', 'mean'])
        >>> store.reset().compute()["loss_mean"]  # empty again: warns, reports 0.0
        0.0
    """

    __slots__ = ("default_log_modes", "layout", "metrics", "nan_policy")

    default_log_modes: tuple[Mode, ...] | None
    nan_policy: str
    layout: Layout
    metrics: tuple[Metric, ...]

    def __init__(
        self,
        default_log_modes: Sequence[Mode | type[Metric]] | None = None,
        nan_policy: str = "propagate",
    ):
        modes = (
            None
            if default_log_modes is None
            else normalize_log_modes(default_log_modes, "default_log_modes")
        )
        tree.build(self, modes, _check_policy(nan_policy), _EMPTY, ())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"MetricStore is immutable: cannot set {name!r}; methods return a new store"
        )

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"MetricStore is immutable: cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # copy, deepcopy and pickle rebuild through the pytree (leaves and static structure)
        flat, aux = tree.flatten(self)
        return tree.unflatten, (MetricStore, aux, flat)

    def _evolve(self, metrics: Sequence[Metric], layout: Layout | None = None) -> MetricStore:
        new = object.__new__(MetricStore)
        return tree.build(
            new, self.default_log_modes, self.nan_policy, layout or self.layout, tuple(metrics)
        )

    # -- the mapping -----------------------------------------------------------------------

    def __getitem__(self, key: str) -> KeyMetrics:
        where = index(self.layout)
        modes = key_modes(self.layout).get(key)
        if modes is None:
            raise KeyError(key)
        sources = {}
        for mode in modes:
            g, row = where[(key, mode)]
            sources[mode] = Row(self.metrics[g], row, self.layout.groups[g].signature)
        return KeyMetrics(sources)

    def first_leaf(self) -> Any:
        """The first leaf of the state (a store's leaves are traced together, or not at all)."""
        return leaves.first(self.metrics, self.layout)

    def entries(self) -> Iterator[tuple[str, dict[Mode, Row]]]:
        """``(key, {mode: Row})`` for every key, sorted: ``items()`` without the views."""
        groups, metrics = self.layout.groups, self.metrics
        for key, triples in rows(self.layout):
            yield key, {mode: Row(metrics[g], r, groups[g].signature) for mode, g, r in triples}

    def __iter__(self) -> Iterator[str]:
        return iter(key_modes(self.layout))

    def __len__(self) -> int:
        return len(key_modes(self.layout))

    def __contains__(self, key: object) -> bool:
        return key in key_modes(self.layout)

    __eq__ = object.__eq__  # a store compares by identity; compare compute() results instead
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        reported = ", ".join(name for name, _, _, _ in names(self.layout))
        return f"MetricStore({len(self.layout.groups)} groups: {reported})"

    @classmethod
    def from_mapping(
        cls,
        metrics: Mapping[str, Any],
        default_log_modes: Sequence[Mode | type[Metric]] | None = None,
        nan_policy: str = "propagate",
    ) -> MetricStore:
        """A store of the entries of any mapping of key -> per-mode metrics.

        ``metrics`` may be a store, a dict built from the entries of several stores (renamed
        keys, several evaluation datasets), a dict that ``flax.core.unfreeze`` made, or the
        result of :func:`~metricskit.aggregate_metrics`. Rows that still lie in order in one
        stacked group are used as they are (no copy).

        Args:
            metrics: ``{key: KeyMetrics or {mode: Metric}}``.
            default_log_modes: The new store's default log modes.
            nan_policy: The new store's NaN policy.

        Returns:
            The store.

        Raises:
            TypeError: For an entry that is not one key's metrics.
        """
        if isinstance(metrics, MetricStore) and default_log_modes is None:
            return metrics
        layout, stacked, passthrough = stack(metrics)
        if passthrough:
            key = next(iter(passthrough))
            raise TypeError(
                f"metrics entry {key!r} is a {type(passthrough[key]).__name__}, not one key's "
                "metrics; remove it first"
            )
        return cls(default_log_modes, nan_policy)._evolve(stacked, layout)

    # -- updating --------------------------------------------------------------------------

    def _entries(
        self, step_metrics: Mapping[str, Any], modes: Any, axis_name: AxisName | None
    ) -> Any:
        if modes is _UNSET:
            defaults = self.default_log_modes or DEFAULT_LOG_MODES
            known = key_modes(self.layout)
        else:
            defaults = (
                DEFAULT_LOG_MODES
                if modes is None
                else normalize_log_modes(modes, "default_log_modes")
            )
            known = None
        entries = parse(step_metrics, defaults, self.nan_policy, known)
        return reduce_entries(entries, axis_name) if axis_name is not None else entries

    def init(
        self, example_step_metrics: Mapping[str, Any], *, default_log_modes: Any = _UNSET
    ) -> MetricStore:
        """A store with the structure that ``update(example_step_metrics)`` gives, all empty.

        Creating every key up front means a jitted step sees one structure and compiles once.
        The example's dtypes matter (an integer example makes an integer state): write ``0.0``
        for a float metric.

        Args:
            example_step_metrics: Step metrics of the right keys, shapes, dtypes and modes
                (their values are not used).
            default_log_modes: Overrides the store's default modes for this call.

        Returns:
            The store, with every new ``(key, mode)`` empty and existing ones unchanged.

        Raises:
            ValueError, TypeError: As :meth:`update`.
        """
        plan = make_plan(
            self.layout,
            step_signature(self._entries(example_step_metrics, default_log_modes, None)),
        )
        if not plan.grows:
            return self
        with host.device_for(self.metrics):
            return self._evolve(engine.grow_jit(self.metrics, plan=plan), plan.after)

    def update(
        self,
        step_metrics: Mapping[str, Any],
        *,
        default_log_modes: Any = _UNSET,
        axis_name: AxisName | None = None,
    ) -> MetricStore:
        """Add one step's metrics.

        Args:
            step_metrics: Key to value (scalar or array) or to a dict with ``"value"``,
                optional ``"count"`` (default 1), optional ``"log_modes"`` and optional
                ``"nan_policy"``.
            default_log_modes: The modes of this call's keys that name none (the functional
                API's per-call semantics). If not given, a key already in the store keeps its
                modes, and a new key takes the store's ``default_log_modes``.
            axis_name: Inside ``shard_map``/``pmap``: a mesh axis name, or a tuple of names,
                across which the step metrics are first combined (values and counts summed,
                per-sample values gathered along axis 0), so that every device runs the same
                global update.

        Returns:
            The updated store. New keys and modes are added; keys absent from this step keep
            their state.

        Raises:
            ValueError: Unknown or repeated log mode, a key whose shapes changed since earlier
                steps (for an accumulating mode), a dict without ``"value"``, two keys reported
                under one name, or an integer beyond ±2**60.
            TypeError: A non-numeric value or count, or a step whose dtypes cannot update the
                key's state (floats into an integer state).
        """
        entries = self._entries(step_metrics, default_log_modes, axis_name)
        plan = make_plan(self.layout, step_signature(entries))
        values, counts = pack(entries, plan)
        try:
            with host.device_for(self.metrics):
                metrics = engine.apply_update(self.metrics, values, counts, plan)
        except ValueError as e:  # JAX's message names an internal function: name the keys
            if "incompatible devices" not in str(e):
                raise
            raise ValueError(host.device_mismatch(entries, self.first_leaf())) from None
        return self._evolve(metrics, plan.after)

    # -- combining -------------------------------------------------------------------------

    def sync(self, axis_name: AxisName) -> MetricStore:
        """Combine every device's accumulated state across ``axis_name`` (inside a map).

        Each device accumulated its own samples; the result holds the union of all devices'
        samples, as :meth:`aggregate` would combine them (sums add, extremes take the extreme,
        ``std`` uses Chan's formula, per-sample values concatenate in device order, so their
        state grows). A user's metric gets this from its field declarations.

        Args:
            axis_name: A mesh axis name or a tuple of names.

        Returns:
            The combined store, the same on every device.

        Raises:
            ValueError: Outside a map over ``axis_name``.
        """
        try:
            return self._evolve([sync_metric(m, axis_name) for m in self.metrics])
        except NameError as e:  # JAX's "unbound axis name"
            raise ValueError(
                f"MetricStore.sync({axis_name!r}) combines devices inside a map over that axis "
                "(jax.shard_map, jax.pmap); outside one there are no devices to combine. Call "
                "it in the mapped function, or use process_sync/aggregate outside"
            ) from e

    def aggregate(self, other: MetricStore) -> MetricStore:
        """Combine with a store of disjoint data (another device, shard, process or stream half).

        Each metric combines with :meth:`Metric.aggregate <metricskit.Metric.aggregate>`:
        sums add, extremes take the extreme, ``std`` uses Chan's formula, per-sample values
        concatenate (eagerly, an empty per-sample state, all zeros as after :meth:`reset`,
        adds no samples; inside ``jit`` shapes are static, so it adds its zeros). Keys
        present in only one store are kept as they are.

        Args:
            other: The other partial store.

        Returns:
            The combined store.

        Raises:
            ValueError: If a metric's state has other shapes in the two stores (beyond the
                sample axis of per-sample modes).
        """
        if self.layout == other.layout and not combine.drops_empty(self.metrics, other.metrics):
            with host.device_for((self.metrics, other.metrics)):
                return self._evolve(engine.aggregate_jit(self.metrics, other.metrics))
        out = combine.aggregate_entries(self, other)
        return MetricStore.from_mapping(out, self.default_log_modes, self.nan_policy)

    def process_sync(self) -> MetricStore:
        """Combine the stores of all processes (``jax.distributed``), host side.

        Every process calls it with a store of the same structure; each gets the combined
        store, as :meth:`aggregate` combines parts in process order (per-sample values are
        concatenated in process order). With one process it returns the store unchanged.

        Returns:
            The combined store, with NumPy leaves.

        Raises:
            ValueError: If the processes' stores differ in structure.
            TypeError: When called on traced values (inside ``jax.jit``).
        """
        host.refuse_tracers(self.first_leaf(), "MetricStore.process_sync")
        return process_sync(self, MetricStore.aggregate)

    # -- reporting -------------------------------------------------------------------------

    def compute(self) -> dict[str, Any]:
        """The reported metrics, with one device-to-host transfer for the whole store.

        Returns:
            A dict from reported name (``key + postfix``, sorted by key, then mode) to a
            Python ``float``/``int`` for size-1 results, a read-only NumPy array (or tuple of
            them) otherwise. Exact quotients (means, ``single``) are divided in float64 on
            the host. A metric with no samples reports ``0.0``, with one warning naming it.

        Raises:
            TypeError: When called on traced values (inside ``jax.jit``).
        """
        if not self.metrics:
            return {}
        host.refuse_tracers(self.first_leaf(), "MetricStore.compute")
        leaves.check_shapes(self.metrics, self.layout, "MetricStore.compute()")
        return results.compute(self.layout, local_copy(self.metrics))

    def reset(self) -> MetricStore:
        """Every metric back to its empty (all-zero) state.

        Device state keeps its structure, shapes, dtypes and shardings, so a jitted step does
        not recompile; a host store of evaluation results resets to no samples at all.

        Returns:
            The reset store.
        """
        if self.metrics and leaves.uncommitted(self.metrics, self.layout):
            return self._evolve(engine.zeros_jit(self.metrics))  # one call for every leaf
        return self._evolve(
            [zeros_like(m, drop_samples=1 if on_host(m) else None) for m in self.metrics]
        )

    # -- checkpoints -----------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the store's state and structure to a ``.npz`` checkpoint (atomically).

        Every leaf keeps its exact bytes and dtype, so a loaded store continues exactly where
        this one stopped. See :mod:`metricskit.checkpoint`.

        Args:
            path: The file to write.

        Raises:
            TypeError: When called on traced values (inside ``jax.jit``).
        """
        host.refuse_tracers(self.first_leaf(), "MetricStore.save")
        modes = checkpoint.modes_json(self.default_log_modes)
        meta = {"default_log_modes": modes, "nan_policy": self.nan_policy}
        checkpoint.save(path, self.layout, local_copy(self.metrics), meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str], like: MetricStore | None = None) -> MetricStore:
        """Read a checkpoint written by :meth:`save`.

        Args:
            path: The checkpoint file.
            like: If given, the checkpoint must have this store's keys, modes and state
                structure (up to the sample axis of per-sample modes, which evaluation grows);
                otherwise a :class:`~metricskit.checkpoint.CheckpointError` names the key, the
                field and the two shapes. The result takes ``like``'s default log modes and
                NaN policy.

        Returns:
            The loaded store (JAX leaves).

        Raises:
            metricskit.checkpoint.CheckpointError: A ``ValueError`` for a truncated file, a
                file that is not a metricskit checkpoint, or a structure other than ``like``'s.
        """
        known = None if like is None else tuple(g.mode for g in like.layout.groups)
        layout, metrics, meta = checkpoint.load(path, known)
        if like is not None:
            checkpoint.check_like(path, layout, like.layout)
            return like._evolve(metrics, layout)
        try:
            modes = checkpoint.modes_from_json(meta.get("default_log_modes"))
        except (KeyError, TypeError, ValueError) as e:  # a CheckpointError is a ValueError
            raise checkpoint.CheckpointError(f"{os.fspath(path)!r}: default log modes: {e}") from e
        store = cls(modes, meta.get("nan_policy", "propagate"))
        return store._evolve(metrics, layout)


def _check_policy(policy: Any) -> str:
    return nan_policy.check(policy, "the store")


tree.register(MetricStore)
