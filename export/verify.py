"""Parity: every exported artifact must reproduce the Keras model on probe inputs.

Probe latents are the prior mean (zeros), ±3σ along each axis (the edge of
what the N(0, I) prior covers, where saturating ops show conversion errors)
and N(0, I) draws with a fixed seed, padded to a multiple of 64 rows. The
encoder is probed with the Keras decoder's images of those latents: realistic
inputs in [0, 1].

Each runtime runs the probes at batch 1 (the first rows one at a time) and at
batch 64 (all rows), and its max |Δ| against Keras must not exceed 1e-4 ×
max(1, max |reference|): on [0, 1] images that is 1e-4, far below one 8-bit grey
level (1/255 ≈ 0.004); encoder outputs are unbounded, so the bound scales.

Lossy artifacts (LiteRT with float16 or int8 weights) cannot meet that bound by
design: `quality` measures instead how far their images of prior samples are
from the Keras float32 ones (max |Δ| and PSNR), so users choose size against
quality from numbers.
"""

import math

import numpy as np

from export.common import ExportError

TOLERANCE = 1e-4
BATCH_SIZES = (1, 64)
BATCH_1_ROWS = 8  # Probe rows also run one at a time: the prior mean, then ±3σ points.
MIN_RANDOM_ROWS = 16
QUALITY_SAMPLES = 64  # Prior samples decoded to measure a lossy artifact.


def probe_latents(latent_dim, seed=0):
    """Probe latent vectors, float32 [64·k, latent_dim]."""
    axes = 3.0 * np.eye(latent_dim, dtype="float32")
    fixed = np.concatenate([np.zeros((1, latent_dim), "float32"), axes, -axes])
    rows = 64 * math.ceil((len(fixed) + MIN_RANDOM_ROWS) / 64)
    draws = np.random.default_rng(seed).standard_normal((rows - len(fixed), latent_dim))
    return np.concatenate([fixed, draws.astype("float32")])


def tolerance(reference):
    """The largest max |Δ| accepted against the `reference` outputs."""
    largest = max(float(np.max(np.abs(value))) for value in reference.values())
    return TOLERANCE * max(1.0, largest)


def parity(run, inputs, reference):
    """max |Δ| between `run(inputs)` and `reference`, per batch size.

    Args:
        run: a runner, dict of input arrays -> dict of output arrays.
        inputs: dict name -> array with the probe rows.
        reference: dict name -> the Keras outputs for those rows.

    Returns:
        {"batch_1": float, "batch_64": float}; NaN outputs give NaN.
    """
    rows = len(next(iter(inputs.values())))
    diffs = {}
    for batch_size in BATCH_SIZES:
        worst = 0.0
        for start in range(0, BATCH_1_ROWS if batch_size == 1 else rows, batch_size):
            window = slice(start, start + batch_size)
            outputs = run({name: value[window] for name, value in inputs.items()})
            for name, expected in reference.items():
                got, expected = np.asarray(outputs[name]), expected[window]
                if got.shape != expected.shape:
                    raise ExportError(
                        f"output {name!r} has shape {got.shape} at batch {batch_size}, "
                        f"Keras gives {expected.shape}: the export is wrong; report it"
                    )
                # np.maximum, unlike max(), propagates NaN into the result.
                worst = float(np.maximum(worst, np.max(np.abs(got - expected))))
        diffs[f"batch_{batch_size}"] = worst
    return diffs


def check(label, diffs, limit, hint):
    """Raises a one-line `ExportError` if any of `diffs` exceeds `limit` (or is NaN)."""
    for key, diff in diffs.items():
        if not diff <= limit:
            batch = key.removeprefix("batch_")
            raise ExportError(
                f"{label} parity failed: max |Δ| = {diff:.3g} > {limit:.3g} "
                f"on batch {batch} — {hint}"
            )


def prior_latents(prior, latent_dim, n=QUALITY_SAMPLES, seed=1):
    """n draws z ~ p(z), float32 [n, latent_dim], for the manifest's `prior`
    (a Normal's loc and scale; N(0, I) draws for other priors)."""
    loc, scale = np.zeros(latent_dim, "float32"), np.ones(latent_dim, "float32")
    if prior["class_name"] == "Normal":
        loc, scale = (np.asarray(prior["parameters"][k], "float32") for k in ("loc", "scale"))
    eps = np.random.default_rng(seed).standard_normal((n, latent_dim))
    return (loc + scale * eps).astype("float32")


def quality(run, inputs, reference, value_range):
    """How far a lossy artifact's images are from the Keras float32 ones.

    Returns {"max_abs_diff", "psnr_db", "samples"}: PSNR is
    10·log10(peak² / MSE) with peak = the width of `value_range` (1 for
    [0, 1] images), over every pixel of every sample; None if the images are
    identical (infinite PSNR has no JSON spelling). Non-finite outputs raise.
    """
    outputs = run(inputs)
    diffs = [np.asarray(outputs[name], "float64") - expected for name, expected in reference.items()]
    diff = np.concatenate([d.ravel() for d in diffs])
    if not np.all(np.isfinite(diff)):
        raise ExportError("the file decodes to NaN or infinity — report it")
    mse = float(np.mean(diff**2))
    peak = float(value_range[1] - value_range[0])
    return {
        "max_abs_diff": float(np.max(np.abs(diff))),
        "psnr_db": round(10 * math.log10(peak**2 / mse), 2) if mse > 0 else None,
        "samples": len(next(iter(inputs.values()))),
    }
