"""Task metrics: the standard evaluation metrics, built on the log-mode engine.

Each function turns one batch of model outputs into sufficient statistics under a registered
log mode; put its result under a key of a step dict, next to the loss:

    store.update({"loss": loss, "val/f1": tasks.f1(logits, labels, num_classes=10)})

It then works wherever a log mode works: in a store, under ``jit`` and ``shard_map``, across
devices (``sync``, ``axis_name``) and processes, in checkpoints and in the functional API.
Statistics are summed exactly and finished on the host in float64, so the reported numbers
are scikit-learn's on all the samples (see each family's module for its references).
"""

from metricskit.metric import register_legacy_names
from metricskit.tasks.classification import (
    accuracy,
    class_counts,
    cohen_kappa,
    confusion_matrix,
    matthews_corrcoef,
)
from metricskit.tasks.curves import exact_average_precision, exact_roc_auc, scored_samples
from metricskit.tasks.fscores import (
    ScoreOptions,
    balanced_accuracy,
    dice,
    f1,
    fbeta,
    jaccard,
    precision,
    recall,
    specificity,
)
from metricskit.tasks.images import psnr, ssim
from metricskit.tasks.language import (
    bits_per_byte,
    bits_per_token,
    multiple_choice_accuracy,
    perplexity,
    sequence_log_likelihood,
    token_accuracy,
    token_nll,
)
from metricskit.tasks.legacy import translate
from metricskit.tasks.ranking import mrr, ndcg
from metricskit.tasks.regression import (
    cosine_similarity,
    explained_variance,
    mae,
    mape,
    mse,
    msle,
    pearson,
    r2,
    rmse,
    rmsle,
    smape,
)
from metricskit.tasks.retrieval import hit_rate, map_at_k, precision_at_k, recall_at_k
from metricskit.tasks.scores import (
    average_precision,
    binned_average_precision,
    binned_roc_auc,
    calibration_error,
    roc_auc,
    score_histograms,
)
from metricskit.tasks.sequences import (
    bleu,
    cer,
    edit_distance,
    longest_common_subsequence,
    ngram_matches,
    rouge,
    wer,
)
from metricskit.tasks.sketch import Histogram, histogram, quantiles

register_legacy_names(translate)  # checkpoints of metricskit 0.2 name task modes by options

__all__ = [
    "Histogram",
    "ScoreOptions",
    "accuracy",
    "average_precision",
    "balanced_accuracy",
    "binned_average_precision",
    "binned_roc_auc",
    "bits_per_byte",
    "bits_per_token",
    "bleu",
    "calibration_error",
    "cer",
    "class_counts",
    "cohen_kappa",
    "confusion_matrix",
    "cosine_similarity",
    "dice",
    "edit_distance",
    "exact_average_precision",
    "exact_roc_auc",
    "explained_variance",
    "f1",
    "fbeta",
    "histogram",
    "hit_rate",
    "jaccard",
    "longest_common_subsequence",
    "mae",
    "map_at_k",
    "mape",
    "matthews_corrcoef",
    "mrr",
    "mse",
    "msle",
    "multiple_choice_accuracy",
    "ndcg",
    "ngram_matches",
    "pearson",
    "perplexity",
    "precision",
    "precision_at_k",
    "psnr",
    "quantiles",
    "r2",
    "recall",
    "recall_at_k",
    "rmse",
    "rmsle",
    "roc_auc",
    "rouge",
    "score_histograms",
    "scored_samples",
    "sequence_log_likelihood",
    "smape",
    "specificity",
    "ssim",
    "token_accuracy",
    "token_nll",
    "wer",
]
