"""The demo (``python -m metricskit demo``): a byte-level language model trained on real text.

The text is the source of Python's own standard library, read from the running interpreter
(:mod:`metricskit.demo.text`), so nothing is downloaded. A small model
(:mod:`metricskit.demo.model`) trains with jitted steps that update a
:class:`~metricskit.MetricStore` on the device, as a researcher's loop would:

- every ``log_every`` steps, one ``compute()`` brings the training metrics to the host (loss
  mean, std and max over the window, perplexity, token accuracy and bits per byte from
  :mod:`metricskit.tasks`, gradient-norm mean and max, and tokens per second measured on the
  host without the compile step); they go to the sinks and the progress bar, and the store
  is reset;
- every ``eval_every`` steps, an evaluation pass over held-out text aggregates batches (the
  last one smaller) with :func:`~metricskit.aggregate_metrics`: per-sequence log-likelihoods
  through the per-sample ``single_noreduce_wcount`` mode, quantiles of the per-sequence loss,
  perplexity, token accuracy and bits per byte;
- at the end: a summary table of the last training window and the last evaluation, the plot
  (one panel per metric family, training and evaluation together) and checkpoints of the
  metric state, all in the run's folder.

Needs the ``demo`` extra (tqdm and matplotlib): ``pip install "metricskit[demo]"``.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from metricskit import tasks
from metricskit._engine.store import MetricStore
from metricskit.demo import model, text
from metricskit.functional import aggregate_metrics, get_metrics
from metricskit.plot import NothingToPlotError, plot_jsonl
from metricskit.sinks import MultiSink, format_table, make_sink, require

__all__ = ["QUICK", "Config", "run_demo"]


@attrs.frozen
class Config:
    """The demo's sizes (the defaults train in well under a minute on 2 CPU cores).

    Attributes:
        batch: Training windows per step.
        length: Bytes per window (the model predicts ``length - context`` of them).
        context: Bytes the model sees before each prediction.
        embed: Embedding width.
        hidden: Hidden layer width.
        eval_sequences: Held-out windows per evaluation.
        eval_batch: Windows per evaluation batch (the last batch may be smaller).
        learning_rate: Adam's step size.
    """

    batch: int = 32
    length: int = 72
    context: int = 8
    embed: int = 24
    hidden: int = 256
    eval_sequences: int = 120
    eval_batch: int = 32
    learning_rate: float = 3e-3


QUICK = Config(batch=16, length=40, hidden=64, eval_sequences=20, eval_batch=8)

_TRAIN_MODES = {
    "loss": {"value": 0.0, "log_modes": ["mean", "std", "max"]},
    "grad_norm": {"value": 0.0, "log_modes": ["mean", "max"]},
}


def _nll(logits: jax.Array, targets: jax.Array) -> jax.Array:
    picked = jnp.take_along_axis(jax.nn.log_softmax(logits), targets[..., None], axis=-1)
    return -picked[..., 0]


def _train_step(
    cfg: Config, params: Any, opt: Any, step: jax.Array, store: MetricStore, tokens: jax.Array
) -> tuple[Any, Any, MetricStore]:
    def loss_fn(p: Any) -> tuple[jax.Array, jax.Array]:
        out = model.logits(p, tokens, cfg.context)
        return _nll(out, tokens[:, cfg.context :]).mean(), out

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    params, opt = model.adam(params, grads, opt, step, cfg.learning_rate)
    targets = tokens[:, cfg.context :]
    store = store.update(
        {
            "loss": {"value": loss, "log_modes": ["mean", "std", "max"]},
            "grad_norm": {
                "value": jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(grads))),
                "log_modes": ["mean", "max"],
            },
            "perplexity": tasks.perplexity(logits, targets),
            "token_accuracy": tasks.token_accuracy(logits, targets),
            "bits_per_byte": tasks.bits_per_byte(logits, targets, targets.size),
        }
    )
    return params, opt, store


def _eval_step(cfg: Config, store: MetricStore, params: Any, tokens: jax.Array) -> MetricStore:
    logits = model.logits(params, tokens, cfg.context)
    targets = tokens[:, cfg.context :]
    nll = _nll(logits, targets)
    return store.update(
        {
            "loss": {"value": nll.sum(), "count": nll.size},
            "perplexity": tasks.perplexity(logits, targets),
            "token_accuracy": tasks.token_accuracy(logits, targets),
            "bits_per_byte": tasks.bits_per_byte(logits, targets, targets.size),
            "sequence": tasks.sequence_log_likelihood(logits, targets),
            "sequence_loss": tasks.quantiles(nll.mean(axis=1), q=(0.5, 0.9, 0.99)),
        }
    )


def _evaluate(
    eval_step: Any, empty: MetricStore, params: Any, windows: np.ndarray, batch: int
) -> tuple[Any, dict[str, Any]]:
    """One pass over the held-out windows: the aggregate, and its results by ``eval_`` name.

    As with the documented functional API: the eval step carries one store through the
    batches (the accumulating modes sum over them), and :func:`aggregate_metrics` appends the
    per-sample values of each batch and keeps the latest state of the other modes.
    """
    store: MetricStore = empty
    evaluated: Any = {}
    for start in range(0, len(windows), batch):
        store = eval_step(store, params, windows[start : start + batch])
        evaluated = aggregate_metrics(evaluated, store)
    _, host = get_metrics(dict(evaluated))  # get_metrics resets: keep the aggregate intact
    ll, _ = host.pop("sequence_single_noreduce_wcount")  # one per held-out window
    host["sequence_ll_mean"] = float(np.mean(ll))  # nats per window
    host["sequence_ll_min"] = float(np.min(ll))
    return evaluated, {f"eval_{k}": v for k, v in host.items()}


def run_demo(
    steps: int = 400,
    seed: int = 0,
    log_every: int = 20,
    eval_every: int = 100,
    out: str | os.PathLike[str] = "runs/demo",
    sinks: Sequence[str] = ("jsonl",),
    progress: bool = True,
    plot: bool = True,
    config: Config | None = None,
) -> dict[str, Any]:
    """Train the demo language model, logging to sinks, a progress bar and a plot.

    Args:
        steps: Training steps.
        seed: Seed of the parameters and the order of the training windows.
        log_every: Steps between two training logs.
        eval_every: Steps between two evaluations (and one after the last step).
        out: The run's folder (created).
        sinks: Names of :func:`~metricskit.sinks.make_sink` sinks; ``"jsonl"`` writes the
            ``metrics.jsonl`` that the plot is drawn from.
        progress: Show a tqdm progress bar with the latest metrics.
        plot: Write ``curves.png`` (needs the ``jsonl`` sink).
        config: Model and batch sizes (default :class:`Config`; ``QUICK`` for tests).

    Returns:
        The last training window's metrics and the last evaluation's (``eval_`` names).

    Raises:
        ImportError: Without the ``demo`` extra, naming it.
        ValueError: For ``plot`` without the ``jsonl`` sink, an unknown sink, or a count
            that is not positive.
    """
    for name, value in (("steps", steps), ("log_every", log_every), ("eval_every", eval_every)):
        if value < 1:
            raise ValueError(f"{name} must be a positive number of steps, got {value}")
    if plot and "jsonl" not in sinks:
        raise ValueError("plot=True draws metrics.jsonl: add the 'jsonl' sink or pass plot=False")
    cfg = config or Config()
    tqdm = require("tqdm", "demo", "the demo's progress bar").tqdm if progress else None
    if plot:
        require("matplotlib", "demo", "the demo's plot")
    folder = os.fspath(out)
    os.makedirs(folder, exist_ok=True)
    train, held_out, modules = text.corpus()
    eval_windows = text.eval_windows(held_out, cfg.eval_sequences, cfg.length)
    rng = np.random.default_rng(seed)
    params = model.init_params(jax.random.PRNGKey(seed), cfg.context, cfg.embed, cfg.hidden)
    opt = jax.tree.map(jnp.zeros_like, (params, params))
    train_step = jax.jit(functools.partial(_train_step, cfg), donate_argnames=("store",))
    eval_step = jax.jit(functools.partial(_eval_step, cfg))
    eval_shapes = jax.eval_shape(eval_step, MetricStore(), params, eval_windows[: cfg.eval_batch])
    empty_eval = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), eval_shapes)
    # every key up front, zero-filled from the step's abstract output: one compile
    shapes = jax.eval_shape(
        train_step, params, opt, jnp.int32(1), MetricStore().init(_TRAIN_MODES),
        jnp.zeros((cfg.batch, cfg.length), jnp.int32),
    )  # fmt: skip
    store = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes[2])
    sink = MultiSink(make_sink(s, folder) for s in sinks)
    bar = tqdm(total=steps, desc="demo", unit="step", file=sys.stderr) if tqdm else None
    logged: dict[str, Any] = {}
    evaluated: dict[str, Any] = {}
    window_start, window, timer, timed_steps = 1, (1, steps), None, 0
    try:
        for step in range(1, steps + 1):
            tokens = text.train_windows(train, rng, cfg.batch, cfg.length)
            params, opt, store = train_step(params, opt, jnp.int32(step), store, tokens)
            if timer is None:  # the first step compiles: time from its end
                store.first_leaf().block_until_ready()
                timer, timed_steps = time.perf_counter(), 0
            else:
                timed_steps += 1
            if step % log_every == 0 or step == steps:
                # throughput: the window's training steps only (not the log's own work)
                jax.block_until_ready((params, store.first_leaf()))  # type: ignore[no-untyped-call,unused-ignore]
                elapsed = time.perf_counter() - timer
                logged = store.compute()  # the one device-to-host transfer of this log
                if step == steps:
                    store.save(os.path.join(folder, "train_state.npz"))
                store = store.reset()
                if timed_steps:
                    tokens_per_step = cfg.batch * (cfg.length - cfg.context)
                    logged["tokens_per_s"] = timed_steps * tokens_per_step / elapsed
                window, window_start = (window_start, step), step + 1
                sink.write(step, logged)
                if bar is not None:
                    bar.set_postfix(
                        loss=f"{logged['loss_mean']:.3f}",
                        ppl=f"{logged['perplexity']:.2f}",
                        acc=f"{logged['token_accuracy']:.3f}",
                        refresh=False,
                    )
                timer, timed_steps = time.perf_counter(), 0
            if step % eval_every == 0 or step == steps:
                aggregate, evaluated = _evaluate(
                    eval_step, empty_eval, params, eval_windows, cfg.eval_batch
                )
                sink.write(step, evaluated)
                timer = time.perf_counter()  # evaluation time is not training throughput
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    finally:
        sink.close()
    MetricStore.from_mapping(aggregate).save(os.path.join(folder, "eval_state.npz"))
    print(
        format_table(
            list(logged.items()),
            title=f"train: steps {window[0]}-{window[1]} (the last log window)",
        )
    )
    print(
        format_table(
            list(evaluated.items()),
            title=f"eval: after step {steps}, on {len(eval_windows)} held-out windows of "
            f"{cfg.length} bytes of the standard library's source ({', '.join(modules[-2:])})",
        )
    )
    if plot:
        try:
            plot_jsonl(os.path.join(folder, "metrics.jsonl"), os.path.join(folder, "curves.png"))
        except NothingToPlotError as e:  # e.g. one log row: say so, the run itself is complete
            print(f"no curves.png: {e}", file=sys.stderr)
    print(f"wrote {', '.join(sorted(os.listdir(folder)))} to {folder}")
    return {**logged, **evaluated}
