"""The benchmark stays out of the installed package, its ratios are paired,
its verdicts follow its numbers, and the GPU run runs (tiny, on the CPU)."""

import configparser
import csv
import pathlib
import types

import setuptools

from benchmarks import report
from benchmarks.results import ElboRun, Row, Spread

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_benchmarks_are_not_installed():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    include = config["options.packages.find"]["include"].split()
    packages = setuptools.find_packages(str(REPO), include=include)
    assert "keras_vae" in packages and "pipelines" in packages
    assert not [p for p in packages if p.split(".")[0] == "benchmarks"]


def test_ratios_are_taken_within_rounds_then_their_median():
    from benchmarks import timing

    # The machine was busy in round 2: both slowed, their ratio did not.
    base = types.SimpleNamespace(wall=[100.0, 40.0, 100.0, 100.0, 100.0], cpu=[50.0] * 5)
    ours = types.SimpleNamespace(wall=[104.0, 42.0, 106.0, 90.0, 110.0], cpu=[51.0] * 5)
    ratio = timing.paired(ours, base)
    assert ratio.median == 1.05  # Of 1.04, 1.05, 1.06, 0.90, 1.10.
    assert (ratio.low, ratio.high) == (1.04, 1.06)  # Quartiles (inclusive).
    assert timing.paired(ours, base, cpu=True).median == 1.02
    # The ratio of the medians would say 104 / 100.
    assert Spread.of(ours.wall).median / Spread.of(base.wall).median == 1.04
    assert Spread.of([3.0, 1.0]) == Spread(2.0, 1.0, 3.0)  # Few values: min and max.


def row(implementation, precision, batch, images_per_s, first_step_s, vs_plain=None, xla=False,
        vs_uncompiled=None):
    """A `Row` of 64x64x3 whose paired ratios are the given medians."""
    spread = (lambda median: None if median is None else Spread(median, median - 0.1,
                                                                median + 0.1))
    return Row("64x64x3", implementation, precision, "float32", batch, xla,
               Spread.of([images_per_s]), Spread.of([images_per_s]), 5, 0.6, "float32", 10.0,
               first_step_s, spread(vs_plain), spread(vs_plain), spread(vs_uncompiled))


def test_targets_are_judged_from_the_paired_ratios():
    # The medians of the rates (120 / 100) are not what is judged: the
    # paired ratio is.
    rows = [row("plain", "float32", 128, 100, 2.0), row("keras-vae", "float32", 128, 120, 2.0, 0.99),
            row("keras-vae", "auto", 128, 170, 2.5, 1.7),
            row("plain", "float32", 32, 100, 2.0), row("keras-vae", "float32", 32, 100, 2.0, 1.0),
            row("keras-vae", "auto", 32, 130, 2.2, 1.3)]
    elbos = [ElboRun("64x64x3", "float32", "float32", 0, 10, 32, -1000.0, 1.0,
                     {"mixed_bfloat16": -1000.5}),
             ElboRun("64x64x3", "auto", "mixed_bfloat16", 0, 10, 32, -1012.0, 1.0),
             ElboRun("64x64x3", "float32", "float32", 1, 10, 32, -1100.0, 1.0,
                     {"mixed_bfloat16": -1100.0}),
             ElboRun("64x64x3", "auto", "mixed_bfloat16", 1, 10, 32, -1100.0, 1.0)]
    verdicts = {what: (got, met) for what, got, _, met in report.targets(rows, elbos)}
    overhead = "64x64x3 batch {}: keras-vae {} / plain float32 img/s (overhead)"
    assert verdicts[overhead.format(128, "float32")] == (
        "0.99× (0.89–1.09); 0.99× by CPU time", False)
    assert verdicts[overhead.format(128, "auto")] == ("1.70× (1.60–1.80); 1.70× by CPU time", True)
    assert verdicts[overhead.format(32, "float32")][1] is True  # 1.00 counts.
    assert verdicts["64x64x3 batch 32: keras-vae auto / plain float32 img/s"] == (
        "1.30× (1.20–1.40)", False)
    assert verdicts["64x64x3 batch 128: first step, auto vs keras-vae float32"] == ("+25 %", False)
    assert verdicts["64x64x3 batch 32: first step, auto vs keras-vae float32"] == ("+10 %", True)
    what = "64x64x3: validation ELBO after 10 steps"
    assert verdicts[f"{what}, auto vs float32 (mean over 2 seeds)"] == ("-0.60 %", True)
    assert verdicts[f"{what}, float32 seed vs seed (for scale: not a target)"] == ("-10.00 %", None)
    assert verdicts["the same float32-trained weights scored in mixed precision vs float32"] == (
        "-0.050 %", True)


def test_xla_targets_compare_compiled_with_the_plain_loop_and_uncompiled():
    rows = [row("plain", "float32", 128, 200, 2.0), row("keras-vae", "float32", 128, 180, 2.0, 0.9),
            row("plain", "float32", 128, 100, 2.0, xla=True, vs_uncompiled=0.5),
            row("keras-vae", "float32", 128, 95, 2.0, 0.95, xla=True, vs_uncompiled=0.53)]
    verdicts = {what: (got, met) for what, got, _, met in report.targets(rows, [])}
    compiled = "64x64x3 batch 128: keras-vae float32 compiled / {} img/s"
    assert verdicts[compiled.format("the plain loop compiled")] == ("0.95× (0.85–1.05)", True)
    assert verdicts[compiled.format("keras-vae uncompiled")] == ("0.53× (0.43–0.63)", False)
    assert "| 64x64x3 | 128 | keras-vae float32 | 180 | 95 | 0.53× (0.43–0.63) " \
           "| 0.95× (0.85–1.05) |" in report.xla_table(rows)


def test_the_gpu_run_runs_tiny_on_the_cpu_and_keeps_others_regions(tmp_path):
    """`python -m benchmarks --gpu --tiny`: every variant of the GPU run
    (float16 too), compiled and not, paired with the plain loop, and the same
    weights scored in each mixed precision; BENCHMARKS.md's marked regions kept."""
    from benchmarks.__main__ import main

    kept = ("<!-- data-scaling:start -->\n## Data\n\n| a |\n<!-- data-scaling:end -->",
            "<!-- someone-else:start -->\nTheirs.\n<!-- someone-else:end -->")
    (tmp_path / "BENCHMARKS.md").write_text("# Old\n\n" + "\n\n".join(kept) + "\n")
    assert main(["--gpu", "--tiny", "--output-dir", str(tmp_path)]) == 0
    with open(tmp_path / "benchmarks.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["implementation"], r["precision"], r["xla"]) for r in rows} == {
        (impl, precision, xla) for impl, precision in (
            ("plain", "float32"), ("keras-vae", "float32"), ("keras-vae", "auto"),
            ("keras-vae", "mixed_float16")) for xla in ("False", "True")}
    for r in rows:
        assert int(r["rounds"]) == 2 and float(r["images_per_s"]) > 0
        assert (r["vs_plain"] == "") == (r["implementation"] == "plain")
        assert (r["vs_uncompiled"] == "") == (r["xla"] == "False")
        if r["precision"] == "mixed_float16":
            assert r["policy"] == r["precision"]
    text = (tmp_path / "BENCHMARKS.md").read_text()
    assert "no GPU has been measured" in text
    assert "| 8x8x1 | float32 | float32 | 0 | 2 × 8 |" in text
    assert "mixed_bfloat16: " in text and "mixed_float16: " in text  # Same weights, each.
    assert all(text.count(region) == 1 for region in kept)  # Each kept once, as it was,
    assert text.index(kept[0]) < text.index(kept[1]) and text.endswith(kept[1] + "\n")  # at the end.
