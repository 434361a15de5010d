"""Decoder speed in each runtime: `python -m export.benchmark RUN_DIR [--repeats N]`.

Times the same exported decoder (z -> image, the likelihood mean) four or five ways,
in one process, after warm-up runs:

    Keras predict   `decoder.predict(z)`, then the likelihood mean
    Keras call      `likelihood.mean(decoder(z))`, eager
    SavedModel      the exported `serving_default` signature (tf.saved_model.load)
    ONNX Runtime    decoder.onnx on the CPU provider, default session options
    LiteRT          decoder.tflite (float32) in the ai-edge-litert interpreter, if exported

It reports the median latency at batch 1 (ms) and the median throughput at
batch 256 (images/s), each also as a ratio to ONNX Runtime, prints a Markdown
table and writes it to RUN_DIR/export/benchmark.md and .csv (or --out). Timings
depend on the machine and its load: they are measured here, never asserted.
"""

import argparse
import csv
import io
import os
import pathlib
import statistics
import sys
import time

import numpy as np

from export import common

LATENCY_BATCH = 1
THROUGHPUT_BATCH = 256
WARMUP = 3
REFERENCE = "ONNX Runtime"


def load_runtimes(model_path, export_dir):
    """(model, {runtime name: fn(z) -> images as numpy}) for an exported run."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    import keras_vae
    from export import litert
    from export import onnx_export
    from export import savedmodel

    model = keras.saving.load_model(model_path, compile=False)
    if not isinstance(model, keras_vae.VAE):
        raise common.ExportError(f"{str(model_path)!r} holds no keras_vae.VAE")
    decoder, likelihood = model.decoder, model.likelihood
    signature = savedmodel.load(export_dir / "decoder_savedmodel")
    onnx_runtime = onnx_export.load(export_dir / "decoder.onnx")

    def keras_predict(z):
        return likelihood.mean(decoder.predict(z, batch_size=len(z), verbose=0)).numpy()

    def keras_call(z):
        return likelihood.mean(decoder(tf.constant(z), training=False)).numpy()

    runtimes = {
        "Keras predict": keras_predict,
        "Keras call": keras_call,
        "SavedModel": lambda z: signature({"z": z})["image"],
        REFERENCE: lambda z: onnx_runtime({"z": z})["image"],
    }
    if (export_dir / "decoder.tflite").is_file():
        lite = litert.load(export_dir / "decoder.tflite")
        runtimes["LiteRT"] = lambda z: lite({"z": z})["image"]
    return model, runtimes


def median_seconds(fn, z, repeats):
    """Median wall time of `fn(z)` over `repeats` runs, after `WARMUP` runs."""
    for _ in range(WARMUP):
        fn(z)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(z)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(runtimes, latent_dim, repeats, seed=0):
    """[(runtime, batch-1 latency in ms, batch-256 throughput in images/s)]."""
    rng = np.random.default_rng(seed)
    z1 = rng.standard_normal((LATENCY_BATCH, latent_dim)).astype("float32")
    z256 = rng.standard_normal((THROUGHPUT_BATCH, latent_dim)).astype("float32")
    rows = []
    for name, fn in runtimes.items():
        print(f"timing {name} ...", end="", flush=True)
        latency = median_seconds(fn, z1, repeats) * 1e3
        throughput = THROUGHPUT_BATCH / median_seconds(fn, z256, repeats)
        print(f" {latency:.2f} ms, {throughput:.0f} images/s", flush=True)
        rows.append((name, latency, throughput))
    return rows


def tables(rows, title):
    """The rows as (Markdown, CSV) text, with ratios to ONNX Runtime."""
    _, ref_latency, ref_throughput = next(row for row in rows if row[0] == REFERENCE)
    header = [
        "runtime", "latency batch 1 (ms, median)", "× ORT latency",
        "throughput batch 256 (images/s, median)", "× ORT throughput",
    ]
    body = [
        [name, f"{latency:.2f}", f"{latency / ref_latency:.2f}",
         f"{throughput:.0f}", f"{throughput / ref_throughput:.2f}"]
        for name, latency, throughput in rows
    ]
    lines = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    markdown = "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body]) + "\n"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *body])
    return markdown, buffer.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m export.benchmark", description=__doc__.splitlines()[0]
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="an exported run folder")
    parser.add_argument(
        "--repeats", type=int, default=30, help="timed runs per measurement (default 30)"
    )
    parser.add_argument(
        "--out", default=None,
        help="where to write PATH.md and PATH.csv (default RUN_DIR/export/benchmark)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    export_dir = pathlib.Path(args.run_dir) / common.EXPORT_DIR
    out = pathlib.Path(args.out) if args.out else export_dir / "benchmark"
    try:
        model_path = common.model_path(args.run_dir)
        needed = ("decoder_savedmodel", "decoder.onnx")
        missing = [name for name in needed if not (export_dir / name).exists()]
        if missing:
            raise common.ExportError(
                f"{str(export_dir)!r} lacks {' and '.join(missing)}: "
                f"run keras-vae export {args.run_dir} first"
            )
        model, runtimes = load_runtimes(model_path, export_dir)
        rows = measure(runtimes, model.latent_dim, args.repeats)
        title = (
            f"Decoder z[{model.latent_dim}] -> {'×'.join(map(str, model.image_shape))}, "
            f"{os.cpu_count()} CPU cores, median of {args.repeats} runs after {WARMUP} warm-up."
        )
        markdown, table = tables(rows, title)
        from keras_vae import files  # TensorFlow is loaded by now.

        files.write_text(out.with_suffix(".md"), markdown)
        files.write_text(out.with_suffix(".csv"), table)
    except (common.ExportError, OSError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    print(markdown)
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
