"""The task-metric mode names of metricskit 0.2, for checkpoints of format 2.

metricskit 0.2 registered one mode per task function and configuration, named after its
options (``"f1_macro_zd0"``, ``"quantiles_a0_01_0_5_0_9_0_99"``); checkpoints of that version
(format ``metricskit.checkpoint/2``) record those names. This version's task metrics are
classes configured with the options, so loading such a checkpoint translates each name to its
configured metric: :func:`translate`, registered with the checkpoint reader when
:mod:`metricskit.tasks` is imported. Names whose options can be read back (F-scores,
histograms, the option-free modes) translate on their own; a quantile name is ambiguous
(its numbers were joined with the same ``_`` that replaced their decimal points), so it
translates only to a configuration of the store loaded into (``like=``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from metricskit.metric import ConfiguredMetric, Metric, Mode
from metricskit.tasks.classification import ConfusionMatrix
from metricskit.tasks.fscores import FScores
from metricskit.tasks.language import Bits, Perplexity
from metricskit.tasks.ranking import MRR, NDCG
from metricskit.tasks.regression import (
    R2,
    ExplainedVariance,
    MeanAbsoluteError,
    MeanSquaredError,
    Pearson,
    RootMeanSquaredError,
)
from metricskit.tasks.scores import BinnedAveragePrecision, BinnedRocAuc, CalibrationError
from metricskit.tasks.sketch import HistogramSketch, QuantileSketch

__all__ = ["legacy_name", "translate"]

_PLAIN: dict[str, type[Metric]] = {
    "confusion_matrix": ConfusionMatrix,
    "roc_auc": BinnedRocAuc,
    "average_precision": BinnedAveragePrecision,
    "mrr": MRR,
    "ndcg": NDCG,
    "mse": MeanSquaredError,
    "rmse": RootMeanSquaredError,
    "mae": MeanAbsoluteError,
    "r2": R2,
    "explained_variance": ExplainedVariance,
    "pearson": Pearson,
    "perplexity": Perplexity,
    "bits": Bits,
}
_FSCORES = re.compile(
    r"(precision|recall|f1|fbeta)(?:_beta([0-9a-z_]+?))?_(binary|micro|macro|weighted|none)"
    r"_zd([0-9a-z_]+)"
)


def _sanitized(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", name)


def _number(text: str) -> float:
    """A number 0.2 formatted with ``:g`` and sanitized (``0_5`` -> 0.5, ``_1`` -> -1,
    ``1e_05`` -> 1e-05, ``nan``)."""
    sign = "-" if text.startswith("_") else ""
    body = text.removeprefix("_").replace("e_", "e-").replace("_", ".", 1)
    return float(sign + body)


def legacy_name(mode: ConfiguredMetric) -> str | None:
    """The name metricskit 0.2 gave ``mode``'s configuration (``None``: no 0.2 name)."""
    options = dict(mode.options)
    if mode.cls is FScores:
        beta = f"_beta{options['beta']:g}" if options["kind"] == "fbeta" else ""
        zd = options["zero_division"]
        return _sanitized(f"{options['kind']}{beta}_{options['average']}_zd{zd:g}")
    if mode.cls is QuantileSketch:
        qs = "_".join(f"{v:.12g}" for v in options["q"])
        return _sanitized(f"quantiles_a{options['relative_accuracy']:g}_{qs}")
    if mode.cls is HistogramSketch:
        return _sanitized(f"histogram_a{options['relative_accuracy']:g}")
    if mode.cls is CalibrationError:
        return None  # its name held the number of bins, which its shape holds now
    return next((name for name, cls in _PLAIN.items() if cls is mode.cls), None)


def translate(name: str, known: Sequence[Mode] = ()) -> Mode | None:
    """The configured metric a 0.2 task-mode ``name`` stands for (one of ``known`` if one
    has that name), or ``None`` for a name that is not one of 0.2's task modes."""
    for mode in known:
        if isinstance(mode, ConfiguredMetric) and legacy_name(mode) == name:
            return mode
    if name in _PLAIN:
        return _PLAIN[name].configure()
    if re.fullmatch(r"calibration_error_[0-9]+", name):
        return CalibrationError.configure()  # option-free: equal to any store's
    found = _FSCORES.fullmatch(name)
    if found:
        kind, beta, average, zd = found.groups()
        return FScores.configure(
            kind=kind,
            average=average,
            beta=1.0 if beta is None else _number(beta),
            zero_division=_number(zd),
        )
    histogram = re.fullmatch(r"histogram_a([0-9a-z_]+)", name)
    if histogram:
        return HistogramSketch.configure(relative_accuracy=_number(histogram.group(1)))
    return None
