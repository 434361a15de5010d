"""`keras-vae evaluate RUN_DIR`: how good is a trained run, in nats and bits/dim.

On the run's validation images (rebuilt from RUN_DIR/config.toml with its
seed and split, or those of `--data`), it measures the ELBO, rate and
distortion, the importance-weighted bound on log p(x) (Burda et al. 2016)
with `--k` samples, the active units and the KL of each latent dimension;
and, for comparison, a deterministic autoencoder of the same architecture
trained on the same data (β = 0, no sampling), cached in
RUN_DIR/baseline_autoencoder-<epochs>x<steps>.keras (its training budget is
its cache key) and scored under the VAE's likelihood (the same σ), by MSE and
by PSNR. It writes RUN_DIR/eval.json, eval.md and the two PNGs eval.md shows.

bits/dim, as published (Salimans et al. 2017; Kingma et al. 2016): −log2 P
of the images quantised to 8 bits, round(x·255)/255, per dimension, under a
probability mass function over the 256 levels: the Gaussian discretised with
edge bins to ±∞, or the discretised logistic mixture itself
(`keras_vae.evaluation`). Exact for 8-bit data; for images off the 8-bit
grid (resized crops) exact for the image as an 8-bit file stores it. For a
Gaussian the dequantised-density figure, (nll + D·ln 255) / (D·ln 2), stays
beside it, labelled: it leaves out the mass outside [0, 1], so on saturated
pixels it is far above the exact one. For a Bernoulli likelihood, no
distribution over 8-bit values, bits/dim are a cross-entropy,
nll / (D·ln 2), comparable only with other Bernoulli runs.
"""


import keras
import numpy as np

import keras_vae
from keras_vae import diagnostics
from keras_vae import evaluation
from keras_vae import files
from keras_vae import plotting
from export import runfolder
from export import lock
from pipelines import checkpoints
from pipelines import cli
from pipelines import config as config_lib
from pipelines import datasets
from pipelines import markdown as markdown_lib
from pipelines import flags
from pipelines.flags import positive_int

BASELINE = "baseline_autoencoder-{epochs}x{steps}.keras"


def build_parser():
    parser = flags.ArgumentParser(
        prog="keras-vae evaluate",
        description="Evaluate a trained run: IWAE bound, ELBO, rate, distortion (nats per "
        "image and bits/dim), active units, and an autoencoder baseline. Writes "
        "RUN_DIR/eval.json and RUN_DIR/eval.md.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a run folder written by keras-vae train")
    parser.add_argument("--data", help="evaluate on the validation split of this folder or "
                        "embedded set instead of the run's")
    parser.add_argument("--k", type=positive_int, default=1000,
                        help="importance samples per image for the IWAE bound [1000]")
    parser.add_argument("--chunk", type=positive_int, default=100,
                        help="samples decoded at once: memory grows with batch·chunk [100]")
    parser.add_argument("--batch-size", type=positive_int,
                        help="images per evaluation batch [the run's batch size]")
    parser.add_argument("--baseline-epochs", type=positive_int,
                        help="epochs of the autoencoder baseline, cached per budget "
                        "[the run's epochs]")
    parser.add_argument("--seed", type=flags.seed, default=0,
                        help="seed of the importance samples [0]")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return parser


def train_baseline(config, train_ds, steps, epochs, precision="float32", verbose=1):
    """The autoencoder baseline of the run's architecture, trained like the run:
    its networks computing in `precision` (the run's policy, e.g. the VAE's
    `precision`)."""
    keras.utils.set_random_seed(config["train"]["seed"])
    image_shape = (config["data"]["image_size"],) * 2 + (config["data"]["channels"],)
    spec = config_lib.model_spec(config, image_shape, autoencoder=True, precision=precision)
    model = keras_vae.build_model(spec, config["train"]["learning_rate"])
    model.fit(train_ds.repeat(), epochs=epochs, steps_per_epoch=steps, shuffle=False,
              verbose=verbose)
    return model


def evaluate_run(run_dir, data=None, k=1000, chunk=100, batch_size=None,
                 baseline_epochs=None, seed=0, verbose=1):
    """Evaluates a run folder; writes eval.json, eval.md and their PNGs.

    Holds the run's lock (`export.lock`): a run that another command
    writes into, training for one, is refused. Returns the eval.json dict.
    Raises FileNotFoundError, ValueError (a damaged file of the run too) or
    `keras_vae.data.DataError` with one-line messages.
    """
    run_dir = runfolder.check(run_dir)
    files.check_writable(run_dir, "run folder")  # Before training the baseline.
    with lock.hold(run_dir, "keras-vae evaluate"):
        return _evaluate(run_dir, data, k, chunk, batch_size, baseline_epochs, seed, verbose)


def _evaluate(run_dir, data, k, chunk, batch_size, baseline_epochs, seed, verbose):
    """`evaluate_run` once the run's lock is held."""
    config = config_lib.load_config(run_dir / runfolder.CONFIG)
    d, t = config["data"], config["train"]
    say = print if verbose else (lambda *a, **k: None)

    model = runfolder.model_record(run_dir)  # Which epoch's model.keras: said, and in eval.json.
    say(f"Evaluating {runfolder.describe_source(model)}")
    vae = runfolder.load_model(run_dir / runfolder.MODEL)
    runfolder.check_model(config, vae, run_dir / runfolder.MODEL)
    source = data or d["source"]
    train_ds, val_ds, info = datasets.from_config(config, source, batch_size)
    split, eval_ds = ("validation", val_ds) if val_ds is not None else ("train", train_ds)
    vae.check_input(eval_ds)

    run_train, _, run_info = datasets.from_config(config)
    budget = {
        "epochs": baseline_epochs or t["epochs"],
        "steps_per_epoch": config_lib.steps_per_epoch(config, run_info.train_samples),
    }
    baseline_path = run_dir / BASELINE.format(epochs=budget["epochs"],
                                              steps=budget["steps_per_epoch"])
    if baseline_path.is_file():
        say(f"Reusing the autoencoder baseline {baseline_path}")
        autoencoder = runfolder.load_model(baseline_path, keras_vae.Autoencoder)
    else:
        say(f"Training the autoencoder baseline for {budget['epochs']} epoch(s) of "
            f"{budget['steps_per_epoch']} steps")
        autoencoder = train_baseline(config, run_train, budget["steps_per_epoch"],
                                     budget["epochs"], vae.precision, verbose)
        checkpoints.save_model(autoencoder, baseline_path)

    count = info.val_samples if split == "validation" else info.train_samples
    say(f"Evaluating on {count} {split} images; IWAE bound with k = {k}")
    numbers = evaluation.evaluate(vae, eval_ds, autoencoder, k=k, chunk=chunk, seed=seed,
                                  progress=bool(verbose))
    stats = diagnostics.latent_statistics(vae, eval_ds)
    report = _report(run_dir, source, split, k, vae, numbers, stats,
                     budget | {"file": baseline_path.name})
    report["model"] = model

    x = next(iter(eval_ds))[:plotting.GRID_COLUMNS]
    _save_grids(run_dir, x, vae, autoencoder, seed)
    files.write_json(run_dir / "eval.json", report)
    files.write_text(run_dir / "eval.md", markdown(report))
    say(f"Wrote {run_dir / 'eval.json'} and {run_dir / 'eval.md'}")
    return report


#: eval.json's "bits_per_dim", what the bits/dim are, per kind of likelihood.
BITS_MEANING = {
    "eight_bit": "exact 8-bit bits/dim, as published: −log2 P(x quantised to 8 bits, "
    "round(x·255)/255) / D, D = H·W·C, under a pmf over the 256 levels (a Gaussian "
    "discretised with edge bins to ±∞, or the logistic mixture itself)",
    "dequantised": "the density's, dequantised: (nll + D·ln 255) / (D·ln 2); it leaves out "
    "the mass outside [0, 1], so it is above the exact figure, far above on saturated pixels",
    "cross_entropy": "a cross-entropy, nll / (D·ln 2), D = H·W·C: the Bernoulli likelihood is "
    "no distribution over 8-bit values, so these are not comparable with published "
    "likelihoods",
}


def _bits(numbers, likelihood, shape):
    """eval.json's vae.bits_per_dim: the bounds' bits/dim (exact for 8-bit
    likelihoods, else a cross-entropy), and for a density the dequantised ones."""
    def bits(nll, bin_width=None):
        return evaluation.bits_per_dim(nll, shape, bin_width)

    rate = bits(numbers["rate"])
    if not likelihood.eight_bit:
        return {"negative_iwae": bits(-numbers["iwae"]), "negative_elbo": bits(-numbers["elbo"]),
                "distortion": bits(numbers["distortion"]), "rate": rate}
    result = {"negative_iwae": numbers["bits_per_dim_iwae"],
              "negative_elbo": numbers["bits_per_dim_elbo"],
              "distortion": numbers["bits_per_dim_elbo"] - rate, "rate": rate}
    if likelihood.is_density:
        result["dequantised"] = {
            "negative_iwae": bits(-numbers["iwae"], evaluation.EIGHT_BIT_BIN),
            "negative_elbo": bits(-numbers["elbo"], evaluation.EIGHT_BIT_BIN),
        }
    return result


def _report(run_dir, source, split, k, vae, numbers, stats, baseline):
    """eval.json: the numbers, their units, and how bits/dim were computed."""
    shape, likelihood = vae.image_shape, vae.likelihood
    sigma = likelihood.log_values().get("sigma")
    kind = "eight_bit" if likelihood.eight_bit else "cross_entropy"
    meaning = BITS_MEANING[kind] + (
        "; bits_per_dim.dequantised: " + BITS_MEANING["dequantised"]
        if likelihood.is_density else "")
    eight_bit = {key: numbers[key] for key in ("elbo_8bit", "iwae_8bit") if key in numbers}
    return {
        "units": "nats per image; mse in pixel units² ([0, 1] images), the mean over images; "
        "psnr in dB, 10·log10(1 / mse) of that mean; sigma in pixel units; bits_per_dim in "
        "bits per pixel and channel",
        "bits_per_dim": meaning,
        "run": str(run_dir),
        "data": str(source),
        "split": split,
        "images": numbers["images"],
        "image_shape": list(shape),
        "k": k,
        "likelihood": type(likelihood).__name__,
        "sigma": None if sigma is None else float(sigma),
        "vae": {
            "elbo": numbers["elbo"],
            "iwae": numbers["iwae"],
            **eight_bit,
            "rate": numbers["rate"],
            "distortion": numbers["distortion"],
            "reconstruction_distortion": numbers["recon_nll"],
            "reconstruction_mse": numbers["recon_mse"],
            "reconstruction_psnr": numbers["recon_psnr"],
            "bits_per_dim": _bits(numbers, likelihood, shape),
            "active_units": stats["active_units"],
            "kl_per_dim": [float(v) for v in stats["kl_per_dim"]],
        },
        "autoencoder": {
            "reconstruction_distortion": numbers["ae_nll"],
            "reconstruction_mse": numbers["ae_mse"],
            "reconstruction_psnr": numbers["ae_psnr"],
            "training": baseline,
        },
    }


def _save_grids(run_dir, x, vae, autoencoder, seed):
    plotting.labelled_comparison(
        [np.asarray(x), np.asarray(vae(x)), np.asarray(autoencoder(x))],
        ["data", "VAE", "autoencoder"],
        run_dir / "eval_reconstructions.png",
        title="Reconstructions (posterior mean, no sampling)",
    )
    plotting.labelled_comparison(
        [np.asarray(vae.sample(plotting.GRID_COLUMNS, seed=seed)),
         np.asarray(autoencoder.sample(plotting.GRID_COLUMNS, seed=seed))],
        ["VAE", "autoencoder"],
        run_dir / "eval_samples.png",
        title="Decoded z ~ N(0, I)",
    )


def _comparison(vae, ae):
    """The sentence that reads the reconstruction table, from its own numbers."""
    gap = ae["reconstruction_psnr"] - vae["reconstruction_psnr"]
    if abs(gap) < 0.1:
        return (f"The VAE and the autoencoder reconstruct equally well here "
                f"(PSNR {vae['reconstruction_psnr']:.2f} dB against {ae['reconstruction_psnr']:.2f} dB).")
    better, worse = ("autoencoder", "VAE") if gap > 0 else ("VAE", "autoencoder")
    return (f"The {better} reconstructs better than the {worse} by {abs(gap):.2f} dB of PSNR "
            f"(MSE {min(vae['reconstruction_mse'], ae['reconstruction_mse']):.5f} against "
            f"{max(vae['reconstruction_mse'], ae['reconstruction_mse']):.5f}).")


def _bound_rows(report):
    """The rows of eval.md's bounds table: on 8-bit levels where the likelihood
    has them (and, for a density, its dequantised bounds, labelled)."""
    vae, k = report["vae"], report["k"]
    bits = vae["bits_per_dim"]
    rate = ["rate KL(q(z|x) ‖ p(z))", f"{vae['rate']:.2f}", f"{bits['rate']:.4f}"]
    if "elbo_8bit" not in vae:
        return [
            [f"IWAE bound on log p(x), k = {k}", f"{vae['iwae']:.2f}",
             f"{bits['negative_iwae']:.4f}"],
            ["ELBO (β = 1)", f"{vae['elbo']:.2f}", f"{bits['negative_elbo']:.4f}"], rate,
            ["distortion −E_q log p(x|z)", f"{vae['distortion']:.2f}",
             f"{bits['distortion']:.4f}"],
        ]
    rows = [
        [f"IWAE bound on log P(x, 8-bit), k = {k}", f"{vae['iwae_8bit']:.2f}",
         f"{bits['negative_iwae']:.4f}"],
        ["ELBO on log P(x, 8-bit) (β = 1)", f"{vae['elbo_8bit']:.2f}",
         f"{bits['negative_elbo']:.4f}"], rate,
        ["distortion −E_q log P(x, 8-bit | z)", f"{-vae['elbo_8bit'] - vae['rate']:.2f}",
         f"{bits['distortion']:.4f}"],
    ]
    if "dequantised" in bits:
        dequantised = bits["dequantised"]
        rows += [
            [f"IWAE bound on the density log p(x), k = {k}", f"{vae['iwae']:.2f}",
             f"{dequantised['negative_iwae']:.4f} (dequantised)"],
            ["ELBO of the density (β = 1)", f"{vae['elbo']:.2f}",
             f"{dequantised['negative_elbo']:.4f} (dequantised)"],
        ]
    return rows


def markdown(report):
    """eval.md: the numbers with units, sentences read off them, and the two grids."""
    vae, ae = report["vae"], report["autoencoder"]
    kl = ", ".join(f"{v:.2f}" for v in vae["kl_per_dim"])
    sigma = "" if report["sigma"] is None else f" σ = {report['sigma']:.4g} (pixel units)."
    budget = ae["training"]

    def recon_row(label, values):
        return [label, f"{values['reconstruction_distortion']:.2f}",
                f"{values['reconstruction_mse']:.5f}", f"{values['reconstruction_psnr']:.2f}"]

    return "\n".join([
        f"# Evaluation of {report['run']}",
        "",
        f"{report['images']} {report['split']} images of {report['data']!r}, "
        f"{'×'.join(map(str, report['image_shape']))}, {report['likelihood']} likelihood."
        f"{sigma} Nats per image. Higher ELBO and IWAE are better; lower distortion, "
        "bits/dim and MSE are better.",
        "",
        *markdown_lib.table(["VAE", "nats per image", "bits/dim"], _bound_rows(report)),
        "",
        f"bits/dim: {report['bits_per_dim']}. The bits/dim of the bounds are of −IWAE and "
        "−ELBO, upper bounds on −log p(x).",
        "",
        f"Active units: {vae['active_units']} of {len(vae['kl_per_dim'])} "
        f"(Burda et al. 2016). KL per dimension, nats: {kl}.",
        "",
        "Reconstructions at the posterior mean, both scored under the VAE's likelihood "
        "(the same σ):",
        "",
        *markdown_lib.table(["reconstruction", "distortion, nats per image", "MSE", "PSNR, dB"], [
            recon_row("VAE", vae),
            recon_row(f"autoencoder (same networks, β = 0; {budget['epochs']} "
                      f"epoch{'s' * (budget['epochs'] != 1)} of {budget['steps_per_epoch']} "
                      "steps)", ae),
        ]),
        "",
        _comparison(vae, ae),
        "",
        "![reconstructions: data, VAE, autoencoder](eval_reconstructions.png)",
        "",
        "Decoding z ~ N(0, I): the VAE's prior samples against the autoencoder's, whose",
        "latent space was never pulled towards the prior: what β → 0 costs.",
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
