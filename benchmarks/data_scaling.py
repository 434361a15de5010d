"""Data at scale: keras-vae's pipeline on folders of 1,000 to 100,000 files, against Keras's.

    python -m benchmarks.data_scaling [--entries 1000,20000,100000] [--sizes 64,256]
        [--work /tmp/keras-vae-data] [--output-dir .]

For each folder (`benchmarks.data_folders`: links to 1,000 JPEG crops of the
embedded paintings) and image size, three fresh processes, one after the
other, each timed from its start (Python and TensorFlow imports included):
keras-vae's first run (the folder prepared into an empty cache), its second
run (the cache reused) and `keras.utils.image_dataset_from_directory` on the
same folder. Each builds the default model of `keras-vae train` (latent 16,
filters 32,64,128, gaussian_learned, automatic precision, batch 32) and
reports: seconds to the end of the first training step, peak RSS (VmHWM),
the input pipeline's own images/s, training images/s on it, and training
images/s on one batch repeated (so live / cached < 1 means input-bound).
Writes `benchmarks_data.csv` and the table between the data-scaling markers
of BENCHMARKS.md, and prints the table with the CPU and the load average.
"""

import argparse
import csv
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

from benchmarks import data_folders

BATCH = 32
PIPELINE_SECONDS = 3.0  # Iterating the input pipeline alone, after its first batch.
TRAIN_STEPS = {64: 15, 256: 3}  # Timed steps per round and size (2 s and 4 s); others: 5.
ROUNDS = 4  # Alternating rounds on the pipeline and on one cached batch; the fastest counts.
START, END = "<!-- data-scaling:start -->", "<!-- data-scaling:end -->"
KINDS = ("first", "second", "keras")
COLUMNS = ("entries", "px", "kind", "first_step_s", "peak_rss_gb", "prepare_img_s",
           "pipeline_img_s", "uncached_img_s", "train_img_s", "cached_train_img_s")


def child(kind, folder, size, cache_dir, started):
    """One measured process: prints a JSON row. `started` is the parent's
    time.time() just before it started this process."""
    import keras
    import tensorflow as tf

    import keras_vae
    from keras_vae import data

    row = {}
    if kind == "keras":
        train = keras.utils.image_dataset_from_directory(
            folder, labels=None, image_size=(size, size), batch_size=BATCH,
            crop_to_aspect_ratio=True, seed=0, verbose=False)
        train = train.map(lambda x: x / 255.0).prefetch(tf.data.AUTOTUNE)
    else:
        train, _, info = data.make_datasets(folder, size, 3, BATCH, cache_dir=cache_dir)
        index = json.loads((pathlib.Path(info.cache) / "index.json").read_text())
        if kind == "first":
            row["prepare_img_s"] = index["count"] / max(index["seconds"], 1e-3)
    model = keras_vae.build_conv_vae((size, size, 3), latent_dim=16, filters=[32, 64, 128],
                                     likelihood="gaussian_learned", precision="auto")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))

    class FirstStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            row.setdefault("first_step_s", time.time() - started)

    model.fit(train, steps_per_epoch=1, epochs=1, verbose=0, callbacks=[FirstStep()])
    if kind != "first":  # The first run's speeds equal the second's: same data, same code.
        row["pipeline_img_s"] = _pipeline_rate(train)
        if kind == "second":
            uncached, _, _ = data.make_datasets(folder, size, 3, BATCH, cache=False)
            row["uncached_img_s"] = _pipeline_rate(uncached)
        cached = tf.data.Dataset.from_tensors(next(iter(train))).repeat()
        row["train_img_s"], row["cached_train_img_s"] = _train_rates(
            model, train.repeat(), cached, TRAIN_STEPS.get(size, 5))
    row["peak_rss_gb"] = _vm_hwm_gb()
    print(json.dumps(row))


def _pipeline_rate(ds):
    """Images/s of iterating `ds` alone for PIPELINE_SECONDS after its first batch."""
    iterator = iter(ds.repeat())
    next(iterator)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < PIPELINE_SECONDS:
        count += len(next(iterator))
    return count / (time.perf_counter() - start)


def _train_rates(model, live, cached, steps):
    """Training images/s on `live` and on `cached`: the fastest of ROUNDS
    alternating rounds of `steps` steps (after one untimed step each), so
    another process's burst on the shared cores hits both alike."""
    import keras

    best = [0.0, 0.0]
    for _ in range(ROUNDS):
        for i, ds in enumerate((live, cached)):
            ends = []
            keep = keras.callbacks.LambdaCallback(
                on_train_batch_end=lambda batch, logs: ends.append(time.perf_counter()))
            model.fit(ds, steps_per_epoch=1 + steps, epochs=1, verbose=0, callbacks=[keep])
            best[i] = max(best[i], steps * BATCH / (ends[-1] - ends[0]))
    return best


def _vm_hwm_gb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 2**20


def measure(kind, folder, size, cache_dir):
    """Runs `child` in a fresh process; its row."""
    command = [sys.executable, "-m", "benchmarks.data_scaling", "--child", kind, str(folder),
               str(size), str(cache_dir), repr(time.time())]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode:
        raise SystemExit(f"{kind} run on {folder} at {size} px failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def cpu():
    """The CPU's model name and its SIMD flags that matter to TensorFlow."""
    text = pathlib.Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("model name")), "unknown CPU")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    simd = [f for f in flags if f.startswith(("avx", "amx", "fma", "sse4"))]
    return f"{model}, {os.cpu_count()} cores, flags: {' '.join(simd) or 'none listed'}"


def table(rows):
    """The Markdown table: one line per folder and size, keras-vae against Keras."""
    lines = [
        "| entries | px | keras-vae 1st run: s to step 1 | prepare img/s | 2nd run: s to "
        "step 1 | peak RSS 1st / 2nd GB | pipeline img/s (uncached) | training img/s | "
        "live / cached | Keras `image_dataset_from_directory`: s to step 1 | peak RSS GB | "
        "pipeline img/s | training img/s | live / cached |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by = {(r["entries"], r["px"], r["kind"]): r for r in rows}
    for entries, px in dict.fromkeys((r["entries"], r["px"]) for r in rows):
        first, second, keras_row = (by[(entries, px, k)] for k in KINDS)
        lines.append(
            f"| {entries:,} | {px} | {first['first_step_s']:.1f} | {first['prepare_img_s']:,.0f}"
            f" | {second['first_step_s']:.1f} | {first['peak_rss_gb']:.2f} / "
            f"{second['peak_rss_gb']:.2f} | {second['pipeline_img_s']:,.0f} "
            f"({second['uncached_img_s']:,.0f}) | {second['train_img_s']:,.1f} | "
            f"{second['train_img_s'] / second['cached_train_img_s']:.2f} | "
            f"{keras_row['first_step_s']:.1f} | {keras_row['peak_rss_gb']:.2f} | "
            f"{keras_row['pipeline_img_s']:,.0f} | {keras_row['train_img_s']:,.1f} | "
            f"{keras_row['train_img_s'] / keras_row['cached_train_img_s']:.2f} |")
    return "\n".join(lines)


def write_markdown(path, text, start=START, end=END):
    """Replaces the region between `start` and `end` of `path` (appended at
    the end if missing) with `text`; the rest of the file is left as it is."""
    path = pathlib.Path(path)
    old = path.read_text() if path.exists() else ""
    region = f"{start}\n{text.strip()}\n{end}"
    if start in old and end in old:
        new = old[: old.index(start)] + region + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + region + "\n"
    path.write_text(new)


def section(rows, machine, loads, elapsed, skipped):
    """The Markdown section: the table, the machine and how it was measured."""
    notes = "".join(f"\n- Not measured: {s}." for s in skipped)
    return f"""## Data at scale (`python -m benchmarks.data_scaling`)

{machine}; load average {loads[0]:.2f} before, {loads[1]:.2f} after; {elapsed / 60:.1f} min.

{table(rows)}

Folders from `benchmarks/data_folders.py`: links to 1,000 distinct 256×256 JPEG crops of the
embedded paintings, 1,000 per subfolder (every entry is listed, stat'ed and decoded; the pool
stays in the page cache, so reading the JPEGs costs no disk reads, while the prepared pixels,
dropped from the page cache as they are written, are read from disk). Each column is a fresh process, timed
from its start (imports included) to the end of the first training step of the default model
(latent 16, filters 32,64,128, gaussian_learned, automatic precision, batch 32). 1st run: an
empty cache, the folder prepared first (prepare img/s: decoding, resizing and writing); 2nd
run: the cache reused. Pipeline img/s: the training pipeline iterated alone for
{PIPELINE_SECONDS:.0f} s (uncached: `--cache false`, decoding every picture). Training img/s:
the fastest of {ROUNDS} rounds of {TRAIN_STEPS[64]} steps (64 px) or {TRAIN_STEPS[256]} steps
(256 px), alternating with as many on one batch repeated; live / cached: the first over the
second (1.00: not input-bound; on cores shared with other work, ±15 % is noise). Peak RSS: VmHWM, TensorFlow
and the model included.{notes}
"""


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.data_scaling",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--entries", default="1000,20000,100000")
    parser.add_argument("--sizes", default="64,256")
    parser.add_argument("--work", default="/tmp/keras-vae-data",
                        help="where the folders and the benchmark's cache go (about "
                             "20 GB free for 100,000 entries at 256 px)")
    parser.add_argument("--output-dir", default=".")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, folder, size, cache_dir, started = args.child
        return child(kind, folder, int(size), cache_dir, float(started))
    print(cpu(), flush=True)
    start, loads, rows, skipped = time.perf_counter(), [os.getloadavg()[0]], [], []
    work = pathlib.Path(args.work)
    pool = data_folders.make_pool(work)
    for entries in (int(e) for e in args.entries.split(",")):
        folder = data_folders.make_folder(work, entries, pool)
        for size in (int(s) for s in args.sizes.split(",")):
            cache_dir = work / "cache"
            need = entries * size * size * 3 * 1.1
            if shutil.disk_usage(work).free < need:
                skipped.append(f"{entries:,} entries at {size} px (needs {need / 1e9:.0f} GB "
                               "of cache, more than the disk has free)")
                continue
            shutil.rmtree(cache_dir, ignore_errors=True)
            for kind in KINDS:
                row = {"entries": entries, "px": size, "kind": kind,
                       **measure(kind, folder, size, cache_dir)}
                print(json.dumps(row), flush=True)
                rows.append(row)
            shutil.rmtree(cache_dir, ignore_errors=True)
    loads.append(os.getloadavg()[0])
    output = pathlib.Path(args.output_dir)
    with open(output / "benchmarks_data.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows({c: r.get(c, "") for c in COLUMNS} for r in rows)
    text = section(rows, cpu(), loads, time.perf_counter() - start, skipped)
    write_markdown(output / "BENCHMARKS.md", text)
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
