"""`keras-vae evaluate RUN_DIR`: how good is a trained run, in nats and bits/dim.

On the run's validation images (rebuilt from RUN_DIR/config.toml with its
seed and split, or those of `--data`), it measures the ELBO, rate and
distortion, the importance-weighted bound on log p(x) (Burda et al. 2016)
with `--k` samples, the active units and the KL of each latent dimension;
and, for comparison, a deterministic autoencoder of the same architecture
trained on the same data (β = 0, no sampling), cached in
RUN_DIR/baseline_autoencoder.keras. It writes RUN_DIR/eval.json, eval.md and
the two PNGs eval.md shows.
"""

import argparse
import json
import math
import pathlib

import keras
import numpy as np

from keras_vae import diagnostics
from keras_vae import evaluation
from keras_vae import files
from keras_vae import plotting
from pipelines import cli
from pipelines import config as config_lib
from pipelines import train as train_lib

BASELINE = "baseline_autoencoder.keras"
GRID_IMAGES = 8  # Images per row of the comparison grids.


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-vae evaluate",
        description="Evaluate a trained run: IWAE bound, ELBO, rate, distortion (nats per "
        "image and bits/dim), active units, and an autoencoder baseline. Writes "
        "RUN_DIR/eval.json and RUN_DIR/eval.md.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a run folder written by keras-vae train")
    parser.add_argument("--data", help="evaluate on the validation split of this folder or "
                        "embedded set instead of the run's")
    parser.add_argument("--k", type=_positive_int, default=1000,
                        help="importance samples per image for the IWAE bound [1000]")
    parser.add_argument("--chunk", type=_positive_int, default=100,
                        help="samples decoded at once: memory grows with batch·chunk [100]")
    parser.add_argument("--batch-size", type=_positive_int,
                        help="images per evaluation batch [the run's batch size]")
    parser.add_argument("--baseline-epochs", type=_positive_int,
                        help="retrain the autoencoder baseline for this many epochs, "
                        "replacing its cache [reuse the cache, else the run's epochs]")
    parser.add_argument("--seed", type=int, default=0, help="seed of the importance samples [0]")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return parser


def check_run_dir(run_dir):
    """Raises FileNotFoundError (one line) unless `run_dir` holds a trained run."""
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"run folder {str(run_dir)!r} does not exist: pass a folder written by "
            "`keras-vae train` (e.g. saved_models/<run>)"
        )
    for name in ("config.toml", "model.keras"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(
                f"{str(run_dir)!r} has no {name}: pass a run folder written by "
                "`keras-vae train`, or train it first"
            )


def train_baseline(config, train_ds, steps, epochs, verbose=1):
    """The autoencoder baseline of the run's architecture, trained like the run."""
    m, t = config["model"], config["train"]
    keras.utils.set_random_seed(t["seed"])
    image_shape = (config["data"]["image_size"],) * 2 + (config["data"]["channels"],)
    model = evaluation.build_autoencoder(
        image_shape, m["latent_dim"], m["likelihood"], m["filters"], m["kernel_size"]
    )
    model.compile(optimizer=keras.optimizers.Adam(t["learning_rate"]))
    model.fit(train_ds.repeat(), epochs=epochs, steps_per_epoch=steps, shuffle=False,
              verbose=verbose)
    return model


def evaluate_run(run_dir, data=None, k=1000, chunk=100, batch_size=None,
                 baseline_epochs=None, seed=0, verbose=1):
    """Evaluates a run folder; writes eval.json, eval.md and their PNGs.

    Returns the eval.json dict. Raises FileNotFoundError, ValueError or
    `keras_vae.data.DataError` with one-line messages.
    """
    check_run_dir(run_dir)
    run_dir = pathlib.Path(run_dir)
    files.check_writable(run_dir, "run folder")  # Before training the baseline.
    config = config_lib.load_config(run_dir / "config.toml")
    d, t = config["data"], config["train"]
    say = print if verbose else (lambda *a, **k: None)

    vae = keras.saving.load_model(run_dir / "model.keras")
    source = data or d["source"]
    train_ds, val_ds, info = train_lib.make_datasets(config, source, batch_size)
    split, eval_ds = ("validation", val_ds) if val_ds is not None else ("train", train_ds)
    vae.check_input(eval_ds)

    baseline_path = run_dir / BASELINE
    if baseline_path.is_file() and baseline_epochs is None:
        say(f"Reusing the autoencoder baseline {baseline_path}")
        autoencoder = keras.saving.load_model(baseline_path)
    else:
        epochs = baseline_epochs or t["epochs"]
        run_train, _, run_info = train_lib.make_datasets(config)
        steps = t["steps_per_epoch"] or math.ceil(run_info.train_samples / t["batch_size"])
        say(f"Training the autoencoder baseline for {epochs} epoch(s)")
        autoencoder = train_baseline(config, run_train, steps, epochs, verbose)
        train_lib.save_model(autoencoder, baseline_path)

    count = info.val_samples if split == "validation" else info.train_samples
    say(f"Evaluating on {count} {split} images; IWAE bound with k = {k}")
    numbers = evaluation.evaluate(vae, eval_ds, autoencoder, k=k, chunk=chunk, seed=seed,
                                  progress=bool(verbose))
    stats = diagnostics.latent_statistics(vae, eval_ds)
    report = _report(run_dir, source, split, k, vae.image_shape, numbers, stats)

    x = next(iter(eval_ds))[:GRID_IMAGES]
    _save_grids(run_dir, x, vae, autoencoder, seed)
    files.write_json(run_dir / "eval.json", report)
    files.write_text(run_dir / "eval.md", markdown(report))
    say(f"Wrote {run_dir / 'eval.json'} and {run_dir / 'eval.md'}")
    return report


def _report(run_dir, source, split, k, image_shape, numbers, stats):
    def with_bits(values):
        out = {}
        for name, value in values.items():
            out[name] = value
            if not name.endswith("mse"):
                out[f"{name}_bits_per_dim"] = evaluation.bits_per_dim(value, image_shape)
        return out

    return {
        "units": "nats per image; *_bits_per_dim = nats / (H·W·C·ln 2); mse in pixel "
        "units² ([0, 1] images)",
        "run": str(run_dir),
        "data": str(source),
        "split": split,
        "images": numbers["images"],
        "image_shape": list(image_shape),
        "k": k,
        "vae": with_bits({
            "elbo": numbers["elbo"],
            "iwae": numbers["iwae"],
            "rate": numbers["rate"],
            "distortion": numbers["distortion"],
            "reconstruction_distortion": numbers["recon_nll"],
            "reconstruction_mse": numbers["recon_mse"],
        }) | {
            "active_units": stats["active_units"],
            "kl_per_dim": [float(v) for v in stats["kl_per_dim"]],
        },
        "autoencoder": with_bits({
            "reconstruction_distortion": numbers["ae_nll"],
            "reconstruction_mse": numbers["ae_mse"],
        }),
    }


def _save_grids(run_dir, x, vae, autoencoder, seed):
    plotting.labelled_comparison(
        [np.asarray(x), np.asarray(vae(x)), np.asarray(autoencoder(x))],
        ["data", "VAE", "autoencoder"],
        run_dir / "eval_reconstructions.png",
        title="Reconstructions (posterior mean, no sampling)",
    )
    plotting.labelled_comparison(
        [np.asarray(vae.sample(GRID_IMAGES, seed=seed)),
         np.asarray(autoencoder.sample(GRID_IMAGES, seed=seed))],
        ["VAE", "autoencoder"],
        run_dir / "eval_samples.png",
        title="Decoded z ~ N(0, I)",
    )


def markdown(report):
    """eval.md: the numbers with units, and the two grids."""
    vae, ae = report["vae"], report["autoencoder"]

    def row(label, values, key):
        return f"| {label} | {values[key]:.2f} | {values[key + '_bits_per_dim']:.4f} |"

    kl = ", ".join(f"{v:.2f}" for v in vae["kl_per_dim"])
    return "\n".join([
        f"# Evaluation of {report['run']}",
        "",
        f"{report['images']} {report['split']} images of {report['data']!r}, "
        f"{'×'.join(map(str, report['image_shape']))}. Nats per image; bits per dimension "
        "= nats / (H·W·C·ln 2). Higher ELBO and IWAE are better; lower distortion is better.",
        "",
        "| VAE | nats per image | bits/dim |",
        "|---|---:|---:|",
        row(f"IWAE bound on log p(x), k = {report['k']}", vae, "iwae"),
        row("ELBO (β = 1)", vae, "elbo"),
        row("rate KL(q(z|x) ‖ p(z))", vae, "rate"),
        row("distortion −E_q log p(x|z)", vae, "distortion"),
        row("distortion at the posterior mean", vae, "reconstruction_distortion"),
        "",
        f"Active units: {vae['active_units']} of {len(vae['kl_per_dim'])} "
        f"(Burda et al. 2016). KL per dimension, nats: {kl}.",
        "",
        "| reconstruction (posterior mean) | distortion, nats per image | bits/dim | MSE |",
        "|---|---:|---:|---:|",
        f"| VAE | {vae['reconstruction_distortion']:.2f} "
        f"| {vae['reconstruction_distortion_bits_per_dim']:.4f} "
        f"| {vae['reconstruction_mse']:.5f} |",
        f"| autoencoder (same networks, β = 0) | {ae['reconstruction_distortion']:.2f} "
        f"| {ae['reconstruction_distortion_bits_per_dim']:.4f} | {ae['reconstruction_mse']:.5f} |",
        "",
        "![reconstructions: data, VAE, autoencoder](eval_reconstructions.png)",
        "",
        "Decoding z ~ N(0, I): the VAE's prior samples against the autoencoder's. The",
        "autoencoder reconstructs better but its latent space is not shaped like the",
        "prior, so its \"samples\" are what β → 0 costs.",
        "",
        "![samples: VAE, autoencoder](eval_samples.png)",
        "",
    ])


def main(argv=None):
    args = build_parser().parse_args(argv)
    return cli.run_command(lambda: evaluate_run(
        args.run_dir, data=args.data, k=args.k, chunk=args.chunk, batch_size=args.batch_size,
        baseline_epochs=args.baseline_epochs, seed=args.seed, verbose=0 if args.quiet else 1,
    ))


if __name__ == "__main__":
    raise SystemExit(main())
