"""`keras-vae compare`: the paintings question, answered by a run.

    keras-vae compare                       # the demo's data, networks and budget
    keras-vae compare --steps 2000 --seeds 5 --data ~/my-paintings

Trains the same networks, from the same initial weights, on the same data
stream for the same number of steps, under each objective of `OBJECTIVES`:
the two losses of the original question (‖x − x̂‖² + KL and
‖x − x̂‖² + 0.1·KL, i.e. Gaussian decoders with σ = √½ and σ = √0.05 at
β = 1), the calibrated σ-VAE (σ fitted to the data, β = 1), the same
networks as a deterministic autoencoder, and ‖x − x̂‖² + KL with a 4× larger
latent. It does so once per seed (`--seeds`, default 3): seed s sets the
initial weights, the z draws and the order of the random crops, the same for
every objective, so objectives are compared seed by seed (paired, in
`pipelines.answers`). While training, `LearningCurve` measures the PSNR of
the training and held-out views; after it, each model is measured on the
fixed views of the *training* pictures and of the *held-out* pictures
separately (`measure`), and `pipelines.report` writes results.md/.csv/.json,
the figures, report.md and a self-contained report.html to
`<output_dir>/compare/<name>/`. Finished runs are skipped when the same
command runs again.
"""

import dataclasses
import json
import math
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

import keras_vae
from keras_vae import diagnostics
from keras_vae import evaluation
from keras_vae import files
from export import lock
from export import runfolder
from pipelines import checkpoints
from pipelines import cli
from pipelines import config as config_lib
from pipelines import datasets as datasets_lib
from pipelines import flags
from pipelines import report
from pipelines import schema

DEFAULT_NAME = "paintings"
#: Views of each split the figures choose from.
FIGURE_VIEWS = 40
#: Config keys (prefixes) that compare has no flag for: each objective sets its own.
IGNORED_KEYS = ("beta.", "model.likelihood", "model.free_bits", "train.run_name",
                "train.strategy", "train.image_every", "train.update_freq")

@dataclasses.dataclass(frozen=True)
class Objective:
    """One loss to train the shared networks with.

    `likelihood` and `beta` make the loss −ELBO_β = distortion + β·rate;
    `autoencoder` drops the posterior's noise and the KL instead.
    """

    key: str
    label: str
    likelihood: str
    beta: float = 1.0
    latent_factor: int = 1
    autoencoder: bool = False


# ‖x − x̂‖² + w·KL = 2σ²·(−log p(x|z) + KL) + const with σ² = w/2 (see
# keras_vae.likelihoods): the same gradients up to a positive scale, which
# Adam divides out.
OBJECTIVES = (
    Objective("mse_kl", "‖x − x̂‖² + KL", f"gaussian:{math.sqrt(0.5)!r}"),
    Objective("mse_0.1kl", "‖x − x̂‖² + 0.1·KL", f"gaussian:{math.sqrt(0.05)!r}"),
    Objective("calibrated", "calibrated σ-VAE, β = 1", "gaussian_optimal"),
    # A plain autoencoder's loss is ‖x − x̂‖²: any fixed σ gives it (σ-optimal
    # would train on log ‖x − x̂‖² instead).
    Objective("autoencoder", "autoencoder ‖x − x̂‖² (no KL, no sampling)",
              f"gaussian:{math.sqrt(0.5)!r}", 0.0, autoencoder=True),
    Objective("mse_kl_4z", "‖x − x̂‖² + KL, 4× latent", f"gaussian:{math.sqrt(0.5)!r}",
              latent_factor=4),
)


def seeds(config):
    """The training seeds of a comparison: train.seed, train.seed + 1, …
    (compare.seeds of them)."""
    first = config["train"]["seed"]
    return [first + i for i in range(config["compare"]["seeds"])]


def build_model(objective, config, image_shape, seed=None):
    """The networks of `config` trained under `objective`; `seed` (default
    train.seed) fixes the initial weights and the z draws."""
    seed = config["train"]["seed"] if seed is None else seed
    keras.utils.set_random_seed(seed)  # The same initial weights for every objective.
    spec = config_lib.model_spec(
        config, image_shape, latent_dim=config["model"]["latent_dim"] * objective.latent_factor,
        likelihood=objective.likelihood, beta=objective.beta, autoencoder=objective.autoencoder,
        free_bits=0.0, seed=seed,  # The objective is the loss alone (IGNORED_KEYS).
    )
    return keras_vae.build_model(spec, config["train"]["learning_rate"])


def training_stream(config, seed):
    """The training batches of seed `seed`: crops and their order follow it
    (data.seed + seed − train.seed), the split stays data.seed's."""
    shuffle = config["data"]["seed"] + seed - config["train"]["seed"]
    train_ds, _, _ = datasets_lib.from_config(config, shuffle_seed=shuffle)
    return train_ds


def reconstruction_mse(model, dataset):
    """Mean squared error of the reconstructions (posterior mean) over `dataset`, per pixel."""
    total, count = 0.0, 0
    for x in dataset:
        total += float(tf.reduce_sum(tf.square(x - model(x, training=False))))
        count += int(tf.size(x))
    return total / count


def measure(model, dataset, seed=0):
    """Means over `dataset` of what the report compares, per image.

    rate, distortion, elbo: nats per image under the model's own likelihood
    (None for an autoencoder, which has no posterior to take a KL of);
    mse (pixel units²) and ssim (`tf.image.ssim`, max value 1) of the
    reconstruction at the posterior mean, and psnr = 10·log10(1 / mse), dB.
    """
    sums, count = {}, 0
    for index, x in enumerate(dataset):
        n = int(x.shape[0])
        terms = model.compute_terms(x, training=False, seed=seed + index)
        recon = model(x, training=False)
        values = {
            "mse": tf.reduce_mean(tf.square(x - recon), axis=[1, 2, 3]).numpy(),
            # SSIM's 11 px window (Wang et al. 2004), shrunk for smaller images.
            "ssim": tf.image.ssim(x, recon, max_val=1.0,
                                  filter_size=min(11, *x.shape[1:3])).numpy(),
        }
        if "rate" in terms:
            values.update({k: float(terms[k]) * n for k in runfolder.BOUND_TERMS})
        for name, value in values.items():
            sums[name] = sums.get(name, 0.0) + float(np.sum(value))
        count += n
    if not count:
        raise ValueError("compare got no images to measure: check --data and --validation-split")
    means = {k: v / count for k, v in sums.items()}
    means["psnr"] = float(evaluation.psnr(means["mse"]))
    for name in runfolder.BOUND_TERMS:
        means.setdefault(name, None)
    return means | {"images": count}


class LearningCurve(keras.callbacks.Callback):
    """PSNR (dB, `evaluation.psnr` of the mean MSE) of the training views and
    of the held-out views at step 0 and every `every` steps of a one-epoch
    `fit`, into `self.points`."""

    def __init__(self, sets, every, steps):
        super().__init__()
        self.sets, self.every, self.steps = sets, every, steps
        self.points = []

    def _measure(self, step):
        self.points.append({"step": step, **{
            split: float(evaluation.psnr(reconstruction_mse(self.model, self.sets[name])))
            for split, name in (("train", "train_views"), ("held_out", "held_out"))}})

    def on_train_begin(self, logs=None):
        self._measure(0)

    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % self.every == 0 or batch + 1 == self.steps:
            self._measure(batch + 1)


def _gradient_ratio(model, x):
    """‖∇(β·rate)‖ / ‖∇distortion‖ on one training batch; None without a rate."""
    norms = diagnostics.gradient_norms(model, x)
    return norms["beta_rate"] / norms["distortion"] if norms["beta_rate"] else None


def run_objective(objective, config, sets, steps, folder, seed, verbose=1):
    """Trains (or finds trained) one objective on one seed; returns its result dict."""
    run = folder / "runs" / objective.key / f"seed{seed}"
    every = max(1, steps // config["compare"]["curve_points"])
    key = {"objective": dataclasses.asdict(objective), "steps": steps, "seed": seed,
           "curve_every": every, "config": config_lib.flatten(config)}
    key["config"] = {k: v for k, v in key["config"].items() if not k.startswith("compare.")}
    result_path = run / "result.json"
    if result_path.is_file() and (model_path := run / runfolder.MODEL).is_file():
        result = json.loads(result_path.read_text())
        if result["key"] == json.loads(json.dumps(key)):
            return result, keras.saving.load_model(model_path)

    keras.backend.clear_session()
    model = build_model(objective, config, sets["info"].image_shape, seed)
    # A new pipeline after the seed is set: every objective sees the same crops.
    train_ds = training_stream(config, seed)
    curve = LearningCurve(sets, every, steps)
    started = time.perf_counter()
    model.fit(train_ds.repeat(), epochs=1, steps_per_epoch=steps, shuffle=False,
              verbose=verbose, callbacks=[curve])
    seconds = time.perf_counter() - started
    checkpoints.save_model(model, run / runfolder.MODEL)
    result = {
        "key": key,
        "seed": seed,
        "latent_dim": int(model.latent_dim),
        "sigma": None if objective.autoencoder else float(model.likelihood.scale()),
        "train_seconds": seconds,  # Learning-curve measurements included.
        "gradient_ratio": (None if objective.autoencoder
                           else _gradient_ratio(model, next(iter(sets["train_views"])))),
        "train": measure(model, sets["train_views"]),
        "held_out": measure(model, sets["held_out"]),
        "curve": curve.points,
    }
    files.write_json(result_path, result)
    return result, model


def compared_sets(config):
    """{"train_views": fixed views of the training pictures, "held_out": the same
    views of the held-out pictures, "info"}."""
    _, val_ds, info = datasets_lib.from_config(config)
    if val_ds is None:
        raise ValueError("compare needs held-out pictures: set --validation-split above 0")
    return {"train_views": datasets_lib.training_views(config), "held_out": val_ds, "info": info}


def compare(config, steps=None, name=DEFAULT_NAME, objectives=OBJECTIVES, verbose=1):
    """Trains and measures every objective on every seed (seed by seed, so a
    stopped comparison keeps whole seeds); writes the report; returns its folder."""
    folder = pathlib.Path(config["train"]["output_dir"]) / "compare" / name
    files.check_writable(folder, "report folder")  # Before training, not after.
    sets = compared_sets(config)  # Bad data: refused before the folder appears.
    with lock.hold(folder, "keras-vae compare"):  # Its runs and report: one writer.
        return _compare(config, sets, steps, folder, objectives, verbose)


def _compare(config, sets, steps, folder, objectives, verbose):
    """`compare` once the report folder's lock is held."""
    say = print if verbose else (lambda *a, **k: None)
    t = config["train"]
    steps = steps or t["epochs"] * config_lib.steps_per_epoch(config, sets["info"].train_samples)
    results = {o.key: {"label": o.label, "beta": o.beta, "seeds": []} for o in objectives}
    models = {}
    runs = [(seed, o) for seed in seeds(config) for o in objectives]
    for i, (seed, objective) in enumerate(runs, 1):
        say(f"run {i}/{len(runs)}: {objective.label}, seed {seed} ({steps} steps)", flush=True)
        result, model = run_objective(objective, config, sets, steps, folder, seed, verbose)
        results[objective.key]["seeds"].append(result)
        if seed == t["seed"]:  # The figures show the first seed's models.
            models[objective.key] = model
    images = {split: datasets_lib.first_images(sets[split], FIGURE_VIEWS)
              for split in ("train_views", "held_out")}
    report.write(folder, config, steps, objectives, results, models, images)
    say(f"Report: {folder / 'report.html'} (and report.md)")
    return folder


def build_parser():
    parser = flags.ArgumentParser(
        prog="keras-vae compare",
        description="Train the same networks under ‖x − x̂‖² + KL, ‖x − x̂‖² + 0.1·KL, a "
        "calibrated σ-VAE, an autoencoder and a 4× latent, then write a report comparing "
        "them on training and held-out pictures. Flags as for keras-vae train.",
    )
    parser.add_argument("--config", default=str(cli.DEFAULT_CONFIG),
                        help="a TOML config file [the demo's]")
    parser.add_argument("--steps", type=flags.positive_int, help="training steps per objective "
                        "[the config's epochs × steps per epoch]")
    parser.add_argument("--name", default=DEFAULT_NAME,
                        help=f"report folder under <output_dir>/compare/ [{DEFAULT_NAME}]")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    # The objectives set the likelihood and β; a comparison is no resumable run.
    flags.add_config_flags(parser, skip=IGNORED_KEYS, tables=(*schema.RUN_TABLES, "compare"))
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return cli.run_command(lambda: compare(
        flags.load(args), args.steps, args.name,
        verbose=0 if args.quiet else 1,
    ))


if __name__ == "__main__":
    raise SystemExit(main())
