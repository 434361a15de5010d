"""Probabilities of 8-bit pixel levels under a continuous distribution.

8-bit images scaled to [0, 1] take the 256 values v_i = i/255. A continuous
distribution of a pixel value (a Gaussian, a logistic) becomes a probability
mass function over them by giving level i the probability of its bin,

    P(i) = F(v_i + 1/510) − F(v_i − 1/510),   0 < i < 255,
    P(0) = F(1/510),   P(255) = 1 − F(1 − 1/510),

the edge bins extended to ±∞, so the 256 masses sum to exactly 1 (Salimans
et al. 2017, PixelCNN++, eq. 2; the convention of published bits/dim on
images: Kingma et al. 2016, Vahdat & Kautz 2020). Its −log P, nats, is an
exact negative log-likelihood of 8-bit data; the dequantised density
−log p(x) − ln(1/255) only approximates it and leaves out the mass outside
[0, 1], which on saturated pixels (exactly 0 or 1) is most of it.

Values that are not on the 8-bit grid (resized crops, averaged pixels) are
read as their nearest level, round(x·255)/255: the probability is that of
the image as an 8-bit file would store it.
"""

import math

import tensorflow as tf
import tensorflow_probability as tfp

#: The levels of 8-bit data: v_i = i / (LEVELS − 1), i = 0..255.
LEVELS = 256
#: Half the spacing of the levels in [0, 1] units: each bin is v_i ± HALF_BIN.
HALF_BIN = 0.5 / (LEVELS - 1)
#: Below this gap between the two log-CDFs of a bin (the bin holds less than
#: 1e-4 of the larger CDF) their difference loses float32 digits, and the
#: midpoint rule log f(v_i) + ln(1/255) takes over (PixelCNN++'s fallback).
_MIN_LOG_GAP = 1e-4


def quantise(x):
    """x in [0, 1] -> its nearest 8-bit level, round(x·255)/255 (float32)."""
    x = tf.cast(x, "float32")
    return tf.round(tf.clip_by_value(x, 0.0, 1.0) * (LEVELS - 1)) / (LEVELS - 1)


def log_normal_cdf(t):
    """log Φ(t) of the standard normal, accurate far into the lower tail."""
    return tfp.distributions.Normal(0.0, 1.0).log_cdf(t)  # log_ndtr: asymptotic in the tail


def log_normal_pdf(t):
    """log φ(t) of the standard normal."""
    return -0.5 * tf.square(t) - 0.5 * math.log(2.0 * math.pi)


def log_logistic_cdf(t):
    """log σ(t): the log CDF of the standard logistic."""
    return tf.math.log_sigmoid(t)


def log_logistic_pdf(t):
    """log of the standard logistic density, σ(t)·σ(−t)."""
    return tf.math.log_sigmoid(t) + tf.math.log_sigmoid(-t)


def log_level_mass(x, loc, scale, log_cdf, log_pdf):
    """log P(level of x) under loc + scale·T, nats, elementwise.

    T is a standard distribution symmetric about 0 with log CDF `log_cdf`
    and log density `log_pdf` (`log_normal_cdf`/`log_normal_pdf`,
    `log_logistic_cdf`/`log_logistic_pdf`); `x`, `loc`, `scale` broadcast,
    in [0, 1] pixel units; x is first `quantise`d. Stable in log space: a
    bin above the location is computed from the upper tail,
    log(F(−l) − F(−u)), so neither tail cancels; the edge bins are single
    log-CDFs; bins too thin to resolve use the midpoint rule.
    """
    x = quantise(x)
    upper = (x + HALF_BIN - loc) / scale
    lower = (x - HALF_BIN - loc) / scale
    above = x > loc
    log_big = log_cdf(tf.where(above, -lower, upper))
    log_small = log_cdf(tf.where(above, -upper, lower))
    gap = log_big - log_small
    # Both branches finite wherever they are not selected: tf.where's
    # gradient multiplies the unselected one by 0, and 0·inf is NaN.
    interior = log_big + tf.math.log(-tf.math.expm1(-tf.maximum(gap, _MIN_LOG_GAP)))
    midpoint = log_pdf((x - loc) / scale) - tf.math.log(scale) - math.log(LEVELS - 1)
    interior = tf.where(gap > _MIN_LOG_GAP, interior, midpoint)
    bottom = log_cdf(upper)  # Level 0: (−∞, 1/510].
    top = log_cdf(-lower)  # Level 255: [1 − 1/510, ∞).
    return tf.where(x < HALF_BIN, bottom, tf.where(x > 1.0 - HALF_BIN, top, interior))
