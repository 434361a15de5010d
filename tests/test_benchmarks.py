"""The benchmark stays out of the installed package, and its verdicts follow its numbers."""

import configparser
import pathlib

import setuptools

from benchmarks import report

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_benchmarks_are_not_installed():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    include = config["options.packages.find"]["include"].split()
    packages = setuptools.find_packages(str(REPO), include=include)
    assert "keras_vae" in packages and "pipelines" in packages
    assert not [p for p in packages if p.split(".")[0] == "benchmarks"]


def row(implementation, precision, batch, images_per_s, first_step_s):
    return {"architecture": "64x64x3", "implementation": implementation,
            "precision": precision, "batch_size": batch, "xla": False,
            "images_per_s": images_per_s, "first_step_s": first_step_s}


def test_targets_are_judged_from_the_measured_ratios():
    rows = [row("plain", "float32", 128, 100, 2.0), row("keras-vae", "float32", 128, 110, 2.0),
            row("keras-vae", "auto", 128, 170, 2.5),
            row("plain", "float32", 32, 100, 2.0), row("keras-vae", "float32", 32, 100, 2.0),
            row("keras-vae", "auto", 32, 130, 2.2)]
    elbos = [
        {"architecture": "64x64x3", "steps": 10, "precision": "float32", "seed": 0,
         "validation_elbo": -1000.0, "same_weights_elbo": {"mixed_bfloat16": -1000.5}},
        {"architecture": "64x64x3", "steps": 10, "precision": "auto", "seed": 0,
         "validation_elbo": -1012.0},
        {"architecture": "64x64x3", "steps": 10, "precision": "float32", "seed": 1,
         "validation_elbo": -1100.0, "same_weights_elbo": {"mixed_bfloat16": -1100.0}},
        {"architecture": "64x64x3", "steps": 10, "precision": "auto", "seed": 1,
         "validation_elbo": -1100.0},
    ]
    verdicts = {what: (got, met) for what, got, _, met in report.targets(rows, elbos)}
    assert verdicts["64x64x3 batch 128: keras-vae auto / plain float32 img/s (overhead)"] == ("1.70×", True)
    assert verdicts["64x64x3 batch 32: keras-vae auto / plain float32 img/s"] == ("1.30×", False)
    assert verdicts["64x64x3 batch 128: first step, auto vs keras-vae float32"] == ("+25 %", False)
    assert verdicts["64x64x3 batch 32: first step, auto vs keras-vae float32"] == ("+10 %", True)
    what = "64x64x3: validation ELBO after 10 steps"
    assert verdicts[f"{what}, auto vs float32 (mean over 2 seeds)"] == ("-0.60 %", True)
    assert verdicts[f"{what}, float32 seed vs seed (for scale: not a target)"] == ("-10.00 %", None)
    assert verdicts["the same float32-trained weights scored in mixed precision vs float32"] == (
        "-0.050 %", True)
    assert verdicts["64x64x3 batch 32: keras-vae float32 / plain float32 img/s (overhead)"] == ("1.00×", True)
    assert verdicts["64x64x3 batch 128: keras-vae auto / plain float32 img/s (overhead)"] == ("1.70×", True)


def test_xla_targets_compare_compiled_with_the_plain_loop_and_uncompiled():
    rows = [dict(row(impl, "float32", 128, rate, 2.0), xla=xla) for impl, xla, rate in (
        ("plain", False, 200), ("plain", True, 100), ("keras-vae", False, 180),
        ("keras-vae", True, 95))]
    verdicts = {what: (got, met) for what, got, _, met in report.targets(rows, [])}
    assert verdicts["64x64x3 batch 128: keras-vae float32 compiled / the plain loop compiled "
                    "img/s"] == ("0.95×", True)
    assert verdicts["64x64x3 batch 128: keras-vae float32 compiled / keras-vae uncompiled "
                    "img/s"] == ("0.53×", False)
    assert verdicts["64x64x3 batch 128: keras-vae float32 / plain float32 img/s (overhead)"] == (
        "0.90×", False)
