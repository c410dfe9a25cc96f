"""Images: peak signal-to-noise ratio and structural similarity.

Both take ``predictions`` and ``targets`` of one shape, ``(N, ...)`` images (ints or floats,
converted to float32 on the device; float64 with ``jax_enable_x64`` split into two float32s
for PSNR), and an optional ``mask``. Each image's statistic is computed on the device and the
batch's images summed nearly exactly
(:func:`~metricskit.tasks.batchsums.pair_total`: about 2^-43 of the largest term plus 2^-47
of the sum), with exact image and pixel counts; batches, devices and processes merge exactly,
and the number is finished on the host in float64.

References: scikit-image's ``peak_signal_noise_ratio`` (per image) and NumPy float64 (over
all pixels), and scikit-image's ``structural_similarity`` with the same settings.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from metricskit import exact
from metricskit.metric import static
from metricskit.tasks.batchsums import as_pairs, dd_mul, dd_sub, div_count, pair_total
from metricskit.tasks.modes import SumsMetric, counted, step_item

__all__ = ["PSNR", "psnr", "ssim"]

Reduction = Literal["per_image", "whole"]


def _shapes(function: str, predictions: Any, targets: Any) -> tuple[jax.Array, jax.Array]:
    p, y = jnp.asarray(predictions), jnp.asarray(targets)
    if p.shape != y.shape:
        raise ValueError(
            f"{function}: predictions have shape {p.shape} but targets have shape {y.shape}; "
            f"they must match (one predicted image per target image): reshape predictions "
            f"to {y.shape}"
        )
    if p.ndim < 2:
        raise ValueError(
            f"{function}: images have shape {p.shape}; pass a batch of images (N, ...) with "
            f"a leading image axis (add one for a single image: x[None])"
        )
    return p, y


def _data_range(function: str, data_range: Any) -> float:
    if not (
        isinstance(data_range, int | float | np.integer | np.floating)
        and math.isfinite(data_range)
        and data_range > 0
    ):
        raise ValueError(
            f"{function}: data_range={data_range!r} must be a positive finite Python number "
            "(the span of the pixel values: 1.0 for images in [0, 1], 255 for uint8 images)"
        )
    return float(data_range)


def _pair_sum(x: exact.Pair) -> exact.Pair:
    """Per row of ``(N, P)`` double-floats, the sum over ``P``, ``(N,)``, nearly exact."""
    return pair_total(exact.Pair(x.hi.T, x.lo.T))


def _stack(parts: list[exact.Pair]) -> exact.Pair:
    return exact.Pair(jnp.stack([q.hi for q in parts]), jnp.stack([q.lo for q in parts]))


def psnr(
    predictions: Any,
    targets: Any,
    *,
    data_range: float,
    mask: Any = None,
    reduction: Reduction = "per_image",
) -> dict[str, Any]:
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / MSE)``, in decibels.

    ``reduction="per_image"`` (the default, what most papers report) is the mean over images
    of each image's PSNR, scikit-image's ``peak_signal_noise_ratio`` per image;
    ``reduction="whole"`` (torchmetrics' default) is the PSNR of the MSE over all pixels of
    all images.

    Each image's sum of squared errors is computed in double-float and summed nearly exactly
    (:func:`~metricskit.tasks.batchsums.pair_total`); its MSE is that over its exact pixel
    count. Per image, the device takes ``log10(MSE_i)`` in float32 (relative error about
    ``1e-7``) and sums them nearly exactly; the host finishes ``20 log10(data_range) - 10
    mean_i log10(MSE_i)`` in float64. For ``"whole"`` the host takes the log of the exact
    totals.

    Args:
        predictions: ``(N, ...)`` images (any number of pixel axes), ints or floats.
        targets: The same shape.
        data_range: The span of the pixel values (a positive Python number; 1.0 for images
            in [0, 1], 255 for uint8).
        mask: Booleans of the images' shape or of its leading axes (``(N,)``: which images
            count). A counted image is one with a counted pixel; its MSE is over those.
        reduction: ``"per_image"`` or ``"whole"``.

    Returns:
        A step item, reported as the key (a float). A perfect prediction (MSE 0) gives
        ``inf``, as scikit-image: with ``"per_image"``, one perfect image makes the mean
        ``inf``. A NaN pixel in a counted image makes the statistics NaN (the store's NaN
        policy then propagates or skips the step).

    Raises:
        ValueError: If the shapes differ or have no pixel axis, the mask does not fit,
            ``data_range`` is not a positive number or ``reduction`` is unknown.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> p = jnp.array([[0.0, 0.5], [1.0, 1.0]])
        >>> y = jnp.array([[0.0, 0.6], [1.0, 0.9]])
        >>> step = {"psnr": mk.tasks.psnr(p, y, data_range=1.0)}
        >>> round(mk.MetricStore().update(step).compute()["psnr"], 4)
        23.0103
    """
    dr = _data_range("psnr", data_range)
    if reduction not in ("per_image", "whole"):
        raise ValueError(f"psnr: reduction={reduction!r} must be 'per_image' or 'whole'")
    p, y = _shapes("psnr", predictions, targets)
    if mask is not None and np.shape(mask) != p.shape[: np.ndim(mask)]:
        raise ValueError(
            f"psnr: mask has shape {np.shape(mask)} but the images have shape {p.shape}; pass "
            f"a mask of the images' shape or of its leading axes (e.g. {p.shape[:1]})"
        )
    stats, images = _psnr_stats(p, y, counted(mask, p.shape))
    return step_item(stats, images, PSNR.configure(data_range=dr, reduction=reduction))


@jax.jit
def _psnr_stats(p: jax.Array, y: jax.Array, which: jax.Array) -> tuple[exact.Pair, jax.Array]:
    """The batch's summed ``log10`` MSEs of imperfect images, perfect images, squared errors
    and pixels, and its image count (one compiled kernel, eager calls too)."""
    n = p.shape[0]
    which = which.reshape(n, -1)
    e = dd_sub(as_pairs(y), as_pairs(p))
    sq = dd_mul(e, e)
    sq = exact.Pair(
        jnp.where(which, sq.hi.reshape(n, -1), 0.0), jnp.where(which, sq.lo.reshape(n, -1), 0.0)
    )
    sse = _pair_sum(sq)  # (N,)
    pixels = jnp.sum(which, axis=1, dtype=jnp.int32)
    images = pixels > 0
    mse = div_count(sse, jnp.maximum(pixels, 1))
    perfect = images & (mse.hi == 0)
    log = jnp.log10(mse.hi) + mse.lo / (mse.hi * math.log(10))
    log = jnp.where(images & ~perfect, log, 0.0)
    parts = [
        pair_total(as_pairs(log)),
        as_pairs(jnp.sum(perfect, dtype=jnp.int32)),
        pair_total(sse),
        as_pairs(jnp.sum(pixels, dtype=jnp.int32)),
    ]
    return _stack(parts), jnp.sum(images, dtype=jnp.int32)


def _psnr_finish(sums: np.ndarray, count: np.ndarray, data_range: float, reduction: str) -> float:
    logs, perfect, sse, pixels = np.asarray(sums, np.float64)
    if reduction == "whole":
        if np.isnan(sse):
            return float("nan")
        with np.errstate(divide="ignore"):
            return float(10.0 * np.log10(data_range**2 / (sse / pixels)))
    if np.isnan(logs):
        return float("nan")
    if perfect > 0:
        return float("inf")
    return float(20.0 * np.log10(data_range) - 10.0 * logs / np.float64(count))


class PSNR(SumsMetric):
    """The log mode of :func:`psnr`: summed ``log10`` per-image MSEs, perfect images, squared
    errors and pixels, finished with the options ``data_range`` and ``reduction``."""

    data_range = static(1.0)
    reduction = static("per_image")

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _psnr_finish(sums, count, self.data_range, self.reduction)


def _weights(win_size: int, gaussian: bool, sigma: float) -> np.ndarray:
    if not gaussian:
        return np.full(win_size, 1.0 / win_size)
    radius = int(3.5 * sigma + 0.5)  # scikit-image's truncate=3.5, scipy's gaussian_filter
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * x**2 / sigma**2)
    return np.asarray(w / w.sum())


def _band(size: int, w: np.ndarray) -> np.ndarray:
    """The ``(size, size - k + 1)`` matrix of the valid correlation with ``w`` along an axis."""
    k = len(w)
    band = np.zeros((size, size - k + 1), np.float32)
    for j in range(size - k + 1):
        band[j : j + k, j] = w
    return band


def _filter(a: jax.Array, w: np.ndarray) -> jax.Array:
    """The separable filter of ``(..., N, H, W, C)`` images, valid positions only (two
    products with banded matrices, float32)."""
    rows = jnp.einsum("...hwc,hk->...kwc", a, _band(a.shape[-3], w), precision="highest")
    return jnp.einsum("...hwc,wk->...hkc", rows, _band(a.shape[-2], w), precision="highest")


def ssim(
    predictions: Any,
    targets: Any,
    *,
    data_range: float,
    win_size: int = 7,
    gaussian: bool = False,
    sigma: float = 1.5,
    use_sample_covariance: bool = True,
    k1: float = 0.01,
    k2: float = 0.03,
    mask: Any = None,
) -> dict[str, Any]:
    """Mean structural similarity (Wang et al., 2004), per image, averaged over images.

    As scikit-image's ``structural_similarity`` (with ``channel_axis=-1`` for color images:
    the mean of the channels' SSIM): local means, variances and covariance under a window,

        SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)),

    ``C1 = (k1 data_range)^2``, ``C2 = (k2 data_range)^2``, averaged over the positions where
    the window lies inside the image (scikit-image crops ``(win_size - 1) // 2`` pixels at
    each border). The defaults are scikit-image's documented ones (a ``7 x 7`` uniform window,
    sample covariance); Wang et al.'s settings are ``gaussian=True, sigma=1.5,
    use_sample_covariance=False`` (an ``11 x 11`` window, truncated at 3.5 sigma).

    The window sums are float32 (of the images less their per-image mean, so the variances
    do not cancel far from zero): an image's SSIM is within about ``1e-6`` of scikit-image's
    float64; the images' values are summed nearly exactly, over an exact image count.

    Args:
        predictions: ``(N, H, W)`` or ``(N, H, W, C)`` images, ints or floats.
        targets: The same shape.
        data_range: The span of the pixel values (a positive Python number).
        win_size: The uniform window's side, odd, at least 3 and at most ``min(H, W)``
            (ignored with ``gaussian=True``: ``2 int(3.5 sigma + 0.5) + 1``).
        gaussian: A Gaussian window of ``sigma`` instead of the uniform one.
        sigma: The Gaussian's standard deviation.
        use_sample_covariance: Normalize the covariances by ``NP - 1`` instead of ``NP``
            (``NP = win_size^2``), as scikit-image's default.
        k1: The luminance constant.
        k2: The contrast constant.
        mask: ``(N,)`` booleans: which images count.

    Returns:
        A step item, reported as the key: the mean SSIM of the counted images. A NaN pixel
        in a counted image makes the statistics NaN (the store's NaN policy applies).

    Raises:
        ValueError: If the shapes differ or are not ``(N, H, W[, C])``, the images are smaller
            than the window, or an option is out of range.
    """
    dr = _data_range("ssim", data_range)
    p, y = _shapes("ssim", predictions, targets)
    if p.ndim not in (3, 4):
        raise ValueError(
            f"ssim: images have shape {p.shape}; pass (N, H, W) gray or (N, H, W, C) color images"
        )
    if gaussian:
        if not (isinstance(sigma, int | float) and sigma > 0):
            raise ValueError(f"ssim: sigma={sigma!r} must be a positive number")
        win_size = 2 * int(3.5 * sigma + 0.5) + 1
    elif not (isinstance(win_size, int) and win_size >= 3 and win_size % 2 == 1):
        raise ValueError(f"ssim: win_size={win_size!r} must be an odd int of at least 3")
    if win_size > min(p.shape[1], p.shape[2]):
        raise ValueError(
            f"ssim: images of shape {p.shape} are smaller than the {win_size} x {win_size} "
            "window; pass larger images or a smaller win_size (odd, at least 3)"
        )
    if mask is not None and np.shape(mask) != p.shape[:1]:
        raise ValueError(
            f"ssim: mask has shape {np.shape(mask)}; pass ({p.shape[0]},) booleans, one per image"
        )
    w = _weights(win_size, gaussian, sigma)
    norm = win_size**2 / (win_size**2 - 1) if use_sample_covariance else 1.0
    constants = ((k1 * dr) ** 2, (k2 * dr) ** 2, norm)
    which = counted(mask, p.shape[:1])
    total = _ssim_stats(p, y, which, tuple(w.tolist()), constants)
    return step_item(total, jnp.sum(which, dtype=jnp.int32), "mean_nopostfix")


@functools.partial(jax.jit, static_argnums=(3, 4))
def _ssim_stats(
    p: jax.Array,
    y: jax.Array,
    which: jax.Array,
    window: tuple[float, ...],
    constants: tuple[float, float, float],
) -> exact.Pair:
    """The batch's sum of per-image SSIM (one compiled kernel, eager calls too)."""
    x4 = (p if p.ndim == 4 else p[..., None]).astype(jnp.float32)
    y4 = (y if y.ndim == 4 else y[..., None]).astype(jnp.float32)
    w = np.asarray(window)
    c1, c2, norm = (np.float32(c) for c in constants)
    cx = jnp.mean(x4, axis=(1, 2), keepdims=True)
    cy = jnp.mean(y4, axis=(1, 2), keepdims=True)
    xc, yc = x4 - cx, y4 - cy  # the variances of the centred images do not cancel as much
    ux, uy, uxx, uyy, uxy = _filter(jnp.stack([xc, yc, xc * xc, yc * yc, xc * yc]), w)
    vx, vy, vxy = norm * (uxx - ux * ux), norm * (uyy - uy * uy), norm * (uxy - ux * uy)
    mx, my = ux + cx, uy + cy
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    n = p.shape[0]
    per = div_count(_pair_sum(as_pairs(s.reshape(n, -1))), jnp.int32(s[0].size))
    per = exact.Pair(jnp.where(which, per.hi, 0.0), jnp.where(which, per.lo, 0.0))
    return pair_total(per)
