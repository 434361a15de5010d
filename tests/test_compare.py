"""`keras-vae compare`: one set of networks under five objectives, on several
seeds, and its report.

A tiny budget on 8×8 digits: the numbers are recomputed here from the saved
models, not trusted from the report.
"""

import json
import math
import os
import re

import keras
import numpy as np
import pytest

from export import lock
from keras_vae import data as data_lib
from pipelines import compare
from pipelines import config as config_lib
from pipelines import datasets


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    config = config_lib.load_config(overrides={
        "data.source": "digits", "data.image_size": 8, "data.channels": 1,
        "model.latent_dim": 2, "model.filters": [4, 8], "train.batch_size": 64,
        "train.output_dir": str(tmp_path_factory.mktemp("out")),
        "compare.seeds": 2, "compare.curve_points": 2,
    })
    folder = compare.compare(config, steps=6, name="tiny", verbose=0)
    return config, folder, json.loads((folder / "results.json").read_text())


def test_every_objective_shares_the_networks_and_initial_weights():
    config = config_lib.load_config(overrides={
        "data.image_size": 8, "data.channels": 1, "model.latent_dim": 2, "model.filters": [4, 8],
    })
    by_key = {o.key: compare.build_model(o, config, (8, 8, 1)) for o in compare.OBJECTIVES}
    reference = by_key["mse_kl"]
    for key in ("mse_0.1kl", "calibrated", "autoencoder"):
        for part in ("encoder", "decoder"):
            for a, b in zip(getattr(reference, part).get_weights(),
                            getattr(by_key[key], part).get_weights()):
                np.testing.assert_array_equal(a, b)
    assert by_key["mse_kl_4z"].latent_dim == 8


def _first_batches(config, objective, seed):
    compare.build_model(objective, config, (16, 16, 3), seed)  # Seeds, as run_objective does.
    return [batch.numpy() for batch, _ in zip(compare.training_stream(config, seed), range(3))]


def test_every_objective_sees_the_same_training_crops_and_each_seed_its_own():
    config = config_lib.load_config(overrides={"data.image_size": 16, "model.filters": [4, 8]})
    first, autoencoder, other_seed = (_first_batches(config, compare.OBJECTIVES[k], seed)
                                      for k, seed in ((0, 0), (3, 0), (0, 1)))
    for a, b in zip(first, autoencoder):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other_seed[0])
    # Another seed, the same split: the held-out pictures do not move.
    held_out = [datasets.first_images(datasets.from_config(config, shuffle_seed=s)[1], 20)
                for s in (0, 1)]
    np.testing.assert_array_equal(*held_out)


def test_seeds_change_the_initial_weights():
    config = config_lib.load_config(overrides={
        "data.image_size": 8, "data.channels": 1, "model.latent_dim": 2, "model.filters": [4, 8],
    })
    a, b = (compare.build_model(compare.OBJECTIVES[0], config, (8, 8, 1), seed).encoder.get_weights()
            for seed in (0, 1))
    assert not np.array_equal(a[0], b[0])


def test_models_compute_in_the_requested_precision():
    config = config_lib.load_config(overrides={
        "data.image_size": 8, "data.channels": 1, "model.latent_dim": 2, "model.filters": [4, 8],
        "train.precision": "mixed_bfloat16",
    })
    for objective in (compare.OBJECTIVES[2], compare.OBJECTIVES[3]):
        model = compare.build_model(objective, config, (8, 8, 1))
        conv = next(layer for layer in model.decoder.layers if layer.weights)
        assert conv.compute_dtype == "bfloat16" and conv.variable_dtype == "float32"
        assert np.asarray(model(np.zeros((1, 8, 8, 1), "float32"))).dtype == np.float32


def test_sigmas_are_the_losses_of_the_question(compared):
    _, _, saved = compared
    results = {key: r["seeds"][1] for key, r in saved["results"].items()}
    # ‖x − x̂‖² + w·KL is a Gaussian decoder with σ² = w/2.
    assert results["mse_kl"]["sigma"] == pytest.approx(math.sqrt(1 / 2), rel=1e-6)
    assert results["mse_0.1kl"]["sigma"] == pytest.approx(math.sqrt(0.1 / 2), rel=1e-6)
    assert results["mse_kl_4z"]["latent_dim"] == 8
    assert results["autoencoder"]["sigma"] is None
    assert results["autoencoder"]["train"]["rate"] is None
    assert [run["seed"] for run in saved["results"]["calibrated"]["seeds"]] == [0, 1]


def test_reported_numbers_match_an_independent_recomputation(compared):
    config, folder, saved = compared
    d = config["data"]
    views = np.concatenate(list(data_lib.training_views(
        "digits", 8, 1, 256, d["validation_split"], d["seed"])))
    for key, runs in saved["results"].items():
        result = runs["seeds"][1]
        model = keras.saving.load_model(folder / "runs" / key / "seed1" / "model.keras")
        recon = np.asarray(model(views))
        mse = ((views.astype("float64") - recon) ** 2).mean(axis=(1, 2, 3))
        train = result["train"]
        assert train["images"] == len(views)
        assert train["mse"] == pytest.approx(mse.mean(), rel=1e-4)
        # One PSNR: of the split's mean MSE, not a mean of per-image PSNRs.
        assert train["psnr"] == pytest.approx(10 * np.log10(1 / mse.mean()), rel=1e-4)
        assert -1.0 <= train["ssim"] <= 1.0
        # The learning curve: step 0, every steps / curve_points, and the end,
        # where it is the final measurement.
        assert [p["step"] for p in result["curve"]] == [0, 3, 6]
        assert result["curve"][-1]["train"] == pytest.approx(train["psnr"], abs=1e-3)
        assert result["curve"][0]["train"] < result["curve"][-1]["train"] + 1.0
        if result["sigma"] is not None:
            for split in ("train", "held_out"):
                values = result[split]
                assert values["elbo"] == pytest.approx(-(values["rate"] + values["distortion"]),
                                                       rel=1e-4, abs=1e-3)
            assert float(model.likelihood.scale()) == pytest.approx(result["sigma"])
            assert result["gradient_ratio"] > 0


def test_report_is_self_contained_and_quotes_its_numbers(compared):
    _, folder, saved = compared
    page = (folder / "report.html").read_text()
    pngs = sorted(p.name for p in folder.glob("*.png"))
    assert len(pngs) == 8  # Reconstructions, curves, samples, rate/PSNR, 4 traversals.
    assert page.count('src="data:image/png;base64,') == len(pngs)
    assert not re.search(r'(src|href)="(https?:)?//', page)  # Nothing fetched from outside.
    text = (folder / "report.md").read_text()
    for png in pngs:
        assert f"({png})" in text
    for question in ("Is weighting the KL term sound?", "What does it do to gradient descent?",
                     "Does it mean reconstruction matters more than a smooth latent space?"):
        assert question in text and question in page
    seeds = saved["results"]["calibrated"]["seeds"]
    assert f"σ comes out at {np.mean([r['sigma'] for r in seeds]):.3f}" in text
    assert f"{np.mean([r['train']['psnr'] for r in seeds]):.2f} dB" in text
    assert "PSNR = 10·log10(1 / MSE)" in text and "95 % interval" in text
    rows = (folder / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2 * len(compare.OBJECTIVES)  # Split × seed × objective.


def test_rerun_reuses_finished_objectives(compared):
    config, folder, _ = compared
    models = sorted((folder / "runs").glob("*/seed*/model.keras"))
    assert len(models) == 2 * len(compare.OBJECTIVES)
    stamps = [m.stat().st_mtime_ns for m in models]
    compare.compare(config, steps=6, name="tiny", verbose=0)
    assert [m.stat().st_mtime_ns for m in models] == stamps


def test_cli_errors_are_one_line(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "compare", "--data", str(tmp_path / "missing"),
         "--output-dir", str(tmp_path), "-q"],
        capture_output=True, text=True, timeout=120,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("keras-vae: error:") and "missing" in lines[0]
    assert not (tmp_path / "compare").exists()


def test_labels_draw_every_symbol_of_the_objectives():
    # The report's row labels are pixels: a font without ‖, −, σ, β, ², × or →
    # draws the same empty box for each of them (Pillow's default did).
    from keras_vae import grids

    font = grids._font()
    missing = font.getmask("\uffff").getbbox()  # A noncharacter: the font's "no glyph" box.
    for symbol in "‖−σβ²×→x̂":
        assert font.getmask(symbol).getbbox() != missing, symbol


def test_a_second_comparison_of_one_name_is_refused(compared, tmp_path):
    config, folder, _ = compared
    assert not (folder / ".lock").exists()  # The first one released and removed it.
    config = {**config, "train": {**config["train"], "output_dir": str(tmp_path)}}
    busy = tmp_path / "compare" / "tiny"
    with lock.hold(busy, "keras-vae compare"), pytest.raises(
            lock.RunLockedError, match=f"is in use by keras-vae compare \\(pid {os.getpid()},"):
        compare.compare(config, steps=6, name="tiny", verbose=0)
    assert list(busy.iterdir()) == []  # Refused before training anything.
