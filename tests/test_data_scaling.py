"""`benchmarks.data_scaling` writes only its own region of BENCHMARKS.md."""

from benchmarks import data_scaling


def _row(kind, **values):
    row = {"entries": 1000, "px": 64, "kind": kind, "first_step_s": 5.0, "peak_rss_gb": 1.0,
           "pipeline_img_s": 3000.0, "train_img_s": 200.0, "cached_train_img_s": 250.0}
    return {**row, **values}


def test_the_region_is_appended_once_then_replaced_alone(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nthe other engineer's tables\n")
    data_scaling.write_markdown(path, "first")
    data_scaling.write_markdown(path, "second")
    assert path.read_text() == (
        "# Benchmarks\n\nthe other engineer's tables\n\n"
        f"{data_scaling.START}\nsecond\n{data_scaling.END}\n")
    path.write_text(path.read_text() + "\na section added after it\n")
    data_scaling.write_markdown(path, "third")
    assert path.read_text().endswith(f"\nthird\n{data_scaling.END}\n\na section added after it\n")


def test_the_table_puts_both_runs_and_keras_on_one_line():
    rows = [_row("first", prepare_img_s=3500.0, peak_rss_gb=0.9),
            _row("second", first_step_s=4.0, uncached_img_s=2000.0),
            _row("keras", first_step_s=6.0, train_img_s=100.0)]
    header, _, line = data_scaling.table(rows).splitlines()
    assert header.count("|") == line.count("|") == 15
    assert line == ("| 1,000 | 64 | 5.0 | 3,500 | 4.0 | 0.90 / 1.00 | 3,000 (2,000) | 200.0 | "
                    "0.80 | 6.0 | 1.00 | 3,000 | 100.0 | 0.40 |")
