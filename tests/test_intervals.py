"""Intervals over seeds, and the compare report's words chosen by them."""

import math

import numpy as np
import pytest
from scipy import stats

from pipelines import answers
from pipelines import intervals


def test_summary_is_students_t_interval_of_the_mean():
    values = [20.9, 21.6, 21.1, 21.4]
    s = intervals.summary(values)
    half = stats.t.ppf(0.975, 3) * np.std(values, ddof=1) / math.sqrt(4)
    assert s.mean == pytest.approx(np.mean(values))
    assert (s.low, s.high) == pytest.approx((np.mean(values) - half, np.mean(values) + half))
    assert s.n == 4


def test_one_value_has_no_interval_and_no_verdict():
    s = intervals.summary([3.0])
    assert (s.sd, s.low, s.high) == (None, None, None)
    assert intervals.verdict(s, "better", "worse") == intervals.TIE
    with pytest.raises(ValueError, match="finite"):
        intervals.summary([1.0, float("nan")])


def test_paired_differences_cancel_what_the_seed_moves():
    # The seed moves both objectives by up to 1 dB; a is 0.3 dB better on every seed.
    b = np.array([20.0, 21.0, 20.5])
    a = b + np.array([0.31, 0.29, 0.30])
    unpaired_overlap = intervals.summary(a).low < intervals.summary(b).high
    assert unpaired_overlap  # Side by side, the intervals overlap...
    assert intervals.verdict(intervals.paired(a, b), "better", "worse") == "better"  # ...paired, not.
    with pytest.raises(ValueError, match="as many"):
        intervals.paired([1.0, 2.0], [1.0])


def _results(calibrated_minus_autoencoder):
    """Complete synthetic results on len(...) seeds: every objective at 20 dB
    but the calibrated σ-VAE, which is the autoencoder + the given gaps."""
    seeds = len(calibrated_minus_autoencoder)
    base = 20.0 + np.arange(seeds) * 0.7  # What the seed alone moves.

    def run(key, seed):
        psnr = base[seed] + (calibrated_minus_autoencoder[seed] if key == "calibrated" else 0.0)
        bound = None if key == "autoencoder" else {"rate": 10.0 + seed, "distortion": -100.0,
                                                   "elbo": 90.0 + seed}
        split = {"psnr": psnr, "mse": 10 ** (-psnr / 10), "ssim": 0.5,
                 **(bound or {"rate": None, "distortion": None, "elbo": None})}
        return {"seed": seed, "sigma": None if key == "autoencoder" else 0.1 + 0.1 * seed,
                "gradient_ratio": None if key == "autoencoder" else 0.1,
                "train_seconds": 1.0, "latent_dim": 2,
                "train": split, "held_out": {**split, "psnr": psnr - 0.5}}

    return {key: {"label": key, "beta": 1.0, "seeds": [run(key, s) for s in range(seeds)]}
            for key in answers.NAMES}


@pytest.mark.parametrize("gaps, word", [
    ([0.5, 0.6, 0.7], "better than the autoencoder"),
    ([-0.5, -0.6, -0.7], "worse than the autoencoder"),
    ([0.5, -0.6, 0.7], "indistinguishable from the autoencoder at this budget"),
])
def test_the_answers_word_flips_when_the_interval_crosses_zero(gaps, word):
    text = answers.answers(_results(gaps), "paintings")[2]
    phrase = text.split("the calibrated VAE reaches ")[1].split(", while")[0]
    assert word in phrase
    rows = answers.comparison_rows(_results(gaps))
    first = rows[0]  # calibrated − autoencoder, training views.
    expected = {"better": "calibrated σ-VAE higher", "worse": "calibrated σ-VAE lower"}
    assert first[-1] == expected.get(word.split()[0], intervals.TIE)


def test_one_seed_says_so_instead_of_a_verdict():
    text = answers.answers(_results([0.4]), "paintings")[2]
    assert "0.40 dB better than the autoencoder on the one seed trained" in text
    assert answers.comparison_rows(_results([0.4]))[0][-1] == "one seed: no interval"
