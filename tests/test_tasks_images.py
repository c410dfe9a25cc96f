"""Image task metrics (PSNR, SSIM) against scikit-image, over batches, splits and edges."""

from __future__ import annotations

import itertools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import metricskit as mk
from metricskit.compat import make_mesh, shard_map

T = mk.tasks
WANG = {"gaussian": True, "sigma": 1.5, "use_sample_covariance": False}


def _images(rng, n=6, shape=(12, 11), scale=1.0, noise=0.1):
    y = (scale * rng.uniform(size=(n, *shape))).astype(np.float32)
    p = (y + scale * noise * rng.normal(size=y.shape)).astype(np.float32)
    return p, y


def _items(p, y, scale=1.0, mask=None):
    channels = p.ndim == 4
    return {
        "psnr": T.psnr(p, y, data_range=scale, mask=mask),
        "psnr_whole": T.psnr(p, y, data_range=scale, mask=mask, reduction="whole"),
        "ssim": T.ssim(p, y, data_range=scale, mask=mask),
        "ssim_wang": T.ssim(p, y, data_range=scale, mask=mask, **WANG),
        **({"ssim_win5": T.ssim(p, y, data_range=scale, win_size=5)} if not channels else {}),
    }


def _reference(p, y, scale=1.0):
    p, y = p.astype(np.float64), y.astype(np.float64)
    axis = -1 if p.ndim == 4 else None

    def ssim(**kw):
        return np.mean(
            [structural_similarity(y[i], p[i], data_range=scale, channel_axis=axis, **kw)
             for i in range(len(p))]
        )  # fmt: skip

    with np.errstate(divide="ignore"):
        whole = 10 * np.log10(scale**2 / np.mean((p - y) ** 2))
    out = {
        "psnr": np.mean(
            [peak_signal_noise_ratio(y[i], p[i], data_range=scale) for i in range(len(p))]
        ),
        "psnr_whole": whole,
        "ssim": ssim(),
        "ssim_wang": ssim(gaussian_weights=True, sigma=1.5, use_sample_covariance=False),
    }
    if axis is None:
        out["ssim_win5"] = ssim(win_size=5)
    return out


def _check(host, want):
    for key, value in want.items():
        assert host[key] == pytest.approx(value, rel=1e-6, abs=1e-6), key


@pytest.mark.parametrize(
    ("use_jit", "color"),
    [(False, False), (True, False), (True, True)],
    ids=["eager", "jit", "color"],
)
def test_split_batches_match_scikit_image_on_all_images(use_jit, color, rng):
    shape = (12, 11, 3) if color else (12, 11)
    p, y = _images(rng, 9, shape, scale=255.0)

    def update(store, p, y):
        return store.update(_items(p, y, 255.0))

    update = jax.jit(update) if use_jit else update
    whole = update(mk.MetricStore(), jnp.asarray(p), jnp.asarray(y)).compute()
    store = mk.MetricStore()
    cuts = [0, *sorted(rng.choice(np.arange(1, 9), 2, replace=False)), 9]
    for lo, hi in itertools.pairwise(cuts):
        store = update(store, jnp.asarray(p[lo:hi]), jnp.asarray(y[lo:hi]))
    want = _reference(p, y, 255.0)
    _check(whole, want)
    _check(store.compute(), want)
    for key in ("psnr", "psnr_whole", "ssim"):  # nearly exact sums: the split barely shows
        assert store.compute()[key] == pytest.approx(whole[key], rel=1e-12), key


def test_masked_images_do_not_count(rng):
    p, y = _images(rng, 8)
    mask = np.array([True, False, True, True, False, True, True, False])
    host = mk.MetricStore().update(_items(p, y, mask=mask)).compute()
    want = _reference(p[mask], y[mask])
    del want["ssim_win5"]
    _check(host, want)


def test_a_pixel_mask_gives_each_image_the_mse_of_its_counted_pixels(rng):
    p, y = _images(rng, 3)
    mask = rng.random(p.shape) < 0.6
    host = mk.MetricStore().update({"psnr": T.psnr(p, y, data_range=1.0, mask=mask)}).compute()
    pd, yd = p.astype(np.float64), y.astype(np.float64)
    want = np.mean([10 * np.log10(1 / np.mean((pd[i] - yd[i])[mask[i]] ** 2)) for i in range(3)])
    assert host["psnr"] == pytest.approx(want, rel=1e-7)


def test_identical_images_give_inf_psnr_and_ssim_one(rng):
    _, y = _images(rng, 3)
    p = y.copy()
    p[0] += 0.1  # one imperfect image: the per-image mean is still inf
    host = mk.MetricStore().update({
        "perfect": T.psnr(y, y, data_range=1.0),
        "perfect_whole": T.psnr(y, y, data_range=1.0, reduction="whole"),
        "one": T.psnr(p, y, data_range=1.0),
        "one_whole": T.psnr(p, y, data_range=1.0, reduction="whole"),
        "ssim": T.ssim(y, y, data_range=1.0),
    }).compute()  # fmt: skip
    assert host["perfect"] == host["perfect_whole"] == host["one"] == np.inf
    assert np.isfinite(host["one_whole"])
    assert host["ssim"] == pytest.approx(1.0, abs=1e-6)


def test_all_masked_is_an_empty_key(rng):
    p, y = _images(rng, 2)
    none = np.zeros(2, bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        host = mk.MetricStore().update({
            "psnr": T.psnr(p, y, data_range=1.0, mask=none),
            "ssim": T.ssim(p, y, data_range=1.0, mask=none),
        }).compute()  # fmt: skip
    assert host == {"psnr": 0.0, "ssim": 0.0}


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_a_nan_pixel_in_a_counted_image_gives_nan(use_jit, rng):
    p, y = _images(rng, 3)
    p[1, 2, 3] = np.nan

    def update(store, p, y, mask):
        return store.update(_items(p, y, mask=mask))

    update = jax.jit(update) if use_jit else update
    host = update(mk.MetricStore(), p, y, np.ones(3, bool)).compute()
    assert all(np.isnan(host[key]) for key in ("psnr", "psnr_whole", "ssim", "ssim_wang"))
    masked = update(mk.MetricStore(), p, y, np.array([True, False, True])).compute()
    assert all(np.isfinite(masked[key]) for key in ("psnr", "psnr_whole", "ssim", "ssim_wang"))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p, y: T.psnr(p, y[:, :3], data_range=1.0), r"\(2, 8, 8\).*\(2, 3, 8\)"),
        (lambda p, y: T.psnr(p[0, 0], y[0, 0], data_range=1.0), "leading image axis"),
        (lambda p, y: T.psnr(p, y, data_range=0.0), "data_range=0.0"),
        (lambda p, y: T.psnr(p, y, data_range=jnp.float32(1)), "Python number"),
        (lambda p, y: T.psnr(p, y, data_range=1.0, reduction="mean"), "reduction='mean'"),
        (lambda p, y: T.psnr(p, y, data_range=1.0, mask=np.ones(3, bool)), r"mask.*\(3,\)"),
        (lambda p, y: T.ssim(p, y, data_range=1.0, win_size=9), "smaller than the 9 x 9"),
        (lambda p, y: T.ssim(p, y, data_range=1.0, win_size=4), "win_size=4"),
        (lambda p, y: T.ssim(p[:, 0], y[:, 0], data_range=1.0), r"\(N, H, W\)"),
        (lambda p, y: T.ssim(p, y, data_range=-1.0), "data_range=-1.0"),
        (lambda p, y: T.ssim(p, y, data_range=1.0, mask=np.ones((2, 8), bool)), "one per image"),
    ],
)
def test_bad_arguments_raise_naming_them(make, message, rng):
    p, y = _images(rng, 2, (8, 8))
    with pytest.raises(ValueError, match=message):
        make(jnp.asarray(p), jnp.asarray(y))


def test_integer_images_are_exact(rng):
    y = rng.integers(0, 256, size=(4, 11, 12)).astype(np.uint8)
    p = np.clip(y.astype(int) + rng.integers(-20, 21, size=y.shape), 0, 255).astype(np.uint8)
    host = mk.MetricStore().update(_items(p, y, 255.0)).compute()
    _check(host, _reference(p, y, 255.0))


@pytest.mark.extended
def test_eight_devices_sync_and_axis_name_give_one_devices_numbers(rng):
    assert jax.device_count() == 8, "XLA_FLAGS must force 8 host devices (conftest)"
    mesh = make_mesh((8,), ("data",))
    p, y = _images(rng, 16, (11, 12))

    def synced(p, y):
        return mk.MetricStore().update(_items(p, y)).sync("data")

    def reduced(p, y):
        return mk.MetricStore().update(_items(p, y), axis_name="data")

    one = mk.MetricStore().update(_items(p, y)).compute()
    _check(one, _reference(p, y))
    for fn in (synced, reduced):
        mapped = shard_map(fn, mesh=mesh, in_specs=(P("data"),) * 2, out_specs=P())
        host = jax.jit(mapped)(jnp.asarray(p), jnp.asarray(y)).compute()
        for key in one:  # per-image float32 values of another compilation: 1e-7
            rel = 1e-12 if key.startswith("psnr") else 1e-6
            assert host[key] == pytest.approx(one[key], rel=rel), (fn.__name__, key)
