"""Conv against resnet, Gaussian against logistic mixture, at equal wall-clock budget.

    python -m benchmarks.architectures [--minutes 4] [--output-dir docs/architectures]

On the default config (pipelines/configs/default.toml: the paintings, 32×32×3
random crops, filters 64,128, latent 128, batch 32, automatic precision, the
β warm-up) it trains each (architecture, likelihood) of `VARIANTS`, one after
another, for the same wall-clock minutes (tracing and compiling included),
then measures: PSNR of the deterministic reconstructions on the training
views and on the held-out views, 10·log10(1/mean MSE) over all their pixels
(the project's one PSNR), dB; the ELBO, nats per image, and the exact 8-bit
bits/dim from the ELBO and from the IWAE bound (k = `IWAE_K`) on the held-out
views (`keras_vae.evaluation.evaluate`); training images per second after
the first step. It prints the CPU and the load, a table, and writes
architectures.json, samples.png and reconstructions.png into --output-dir, and
its section of BENCHMARKS.md (between its own markers; other sections are
left as they are).
"""

import argparse
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import time
import tomllib

import keras
import numpy as np

import keras_vae
from benchmarks import data_scaling
from keras_vae import data as data_lib
from keras_vae import evaluation
from keras_vae import plotting

#: (architecture, likelihood) pairs, trained in this order.
VARIANTS = (("conv", "gaussian_optimal"), ("resnet", "gaussian_optimal"),
            ("conv", "discretized_logistic_mixture"),
            ("resnet", "discretized_logistic_mixture"))
IWAE_K = 100
#: Short names of the likelihoods, for the pictures' rows.
#: (ASCII: the pictures' font has no σ.)
SHORT = {"gaussian_optimal": "calibrated Gaussian",
         "discretized_logistic_mixture": "logistic mixture"}
ROOT = pathlib.Path(__file__).resolve().parents[1]
START, END = "<!-- architectures:start -->", "<!-- architectures:end -->"


class TimeBudget(keras.callbacks.Callback):
    """Stops `fit` after `seconds` of wall-clock time; counts steps and the
    time from the end of the first step (img/s without tracing)."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds, self.steps, self.start, self.first = seconds, 0, None, None

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        now = time.perf_counter()
        self.first = self.first or now
        self.model.stop_training = now - self.start >= self.seconds


@dataclasses.dataclass(frozen=True)
class Setup:
    """What the default config (pipelines/configs/default.toml, read as a
    file: the benchmarks import the library alone) says of data and training."""

    data: dict
    model: dict
    warmup: dict
    train: dict

    @classmethod
    def read(cls, path=ROOT / "pipelines" / "configs" / "default.toml"):
        with open(path, "rb") as f:
            config = tomllib.load(f)
        return cls(config["data"], config["model"], config["beta"]["linear"], config["train"])

    def spec(self, architecture, likelihood):
        m, d = self.model, self.data
        return keras_vae.ModelSpec(
            (d["image_size"], d["image_size"], d["channels"]), m["latent_dim"], likelihood,
            tuple(m["filters"]), m["kernel_size"], architecture, self.train["precision"],
            beta=self.warmup["start"], kl=m["kl"], free_bits=m["free_bits"],
            seed=self.train["seed"])


def train(setup, architecture, likelihood, seconds, sets):
    """The default config's model with `architecture` and `likelihood`,
    trained for `seconds` with its β warm-up; (model, its TimeBudget)."""
    keras.utils.set_random_seed(setup.train["seed"])
    model = keras_vae.build_model(setup.spec(architecture, likelihood),
                                  setup.train["learning_rate"])
    beta = keras_vae.callbacks.BetaScheduler(keras_vae.schedules.LinearWarmup(**setup.warmup))
    budget = TimeBudget(seconds)
    model.fit(sets["train"].repeat(), epochs=10_000, steps_per_epoch=100, verbose=0,
              callbacks=[beta, budget])
    return model, budget


def psnr(model, images):
    """10·log10(1/mean MSE) of the reconstructions of `images`, dB."""
    return float(evaluation.psnr(np.mean((np.asarray(model(images)) - images) ** 2)))


def measure(model, budget, sets):
    """The row of one trained model."""
    numbers = evaluation.evaluate(model, sets["held_out"], k=IWAE_K, progress=False)
    batch = int(next(iter(sets["train"])).shape[0])
    return {
        "steps": budget.steps,
        "img_per_s": (budget.steps - 1) * batch / (time.perf_counter() - budget.first),
        "train_psnr": psnr(model, sets["train_views"]),
        "held_out_psnr": psnr(model, sets["held_out_images"]),
        "elbo": numbers["elbo"],
        "rate": numbers["rate"],
        "bits_per_dim_elbo": numbers["bits_per_dim_elbo"],
        "bits_per_dim_iwae": numbers["bits_per_dim_iwae"],
        "precision": model.precision,
    }


def data(setup):
    """The training set, the training views and the held-out views."""
    d = setup.data
    args = (d["source"], d["image_size"], d["channels"], setup.train["batch_size"],
            d["validation_split"], d["seed"])
    train_ds, val_ds, _ = data_lib.make_datasets(*args)
    return {
        "train": train_ds,
        "held_out": val_ds,
        "held_out_images": first_images(val_ds),
        "train_views": first_images(data_lib.training_views(*args)),
    }


def first_images(ds):
    """Every image of a finite batched dataset, one numpy array."""
    return np.concatenate([batch.numpy() for batch in ds])


def table(rows):
    """The Markdown table, one line per variant."""
    lines = ["| architecture | likelihood | load before | steps | img/s | training-view PSNR, dB | "
             "held-out PSNR, dB | held-out ELBO, nats/image | bits/dim (−ELBO) | "
             f"bits/dim (−IWAE, k = {IWAE_K}) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['architecture']} | {r['likelihood']} | {r['load_average'][0]:.1f} | "
            f"{r['steps']} | {r['img_per_s']:.0f} | "
            f"{r['train_psnr']:.2f} | {r['held_out_psnr']:.2f} | {r['elbo']:.1f} | "
            f"{r['bits_per_dim_elbo']:.3f} | {r['bits_per_dim_iwae']:.3f} |")
    return "\n".join(lines)


def section(rows, header, minutes, folder, uptime):
    return f"""## Architectures and likelihoods (`python -m benchmarks.architectures`)

{header}. Each model trained {minutes:g} min of wall-clock time (tracing included), one
after another, on cores shared with other work: the budgets are equal in wall-clock, not in
CPU time. Load before: the 1-minute load average when the model started (2 cores: above 2,
other work was waiting for them); `uptime` after the last model: {uptime}.

{table(rows)}

Default config otherwise (paintings, 32×32×3 random crops, filters 64,128, latent 128,
batch 32, β warm-up 0 → 1 over 200 steps; gaussian_optimal is the calibrated σ-VAE, the
logistic mixture has 5 components). PSNR = 10·log10(1/mean MSE) of the deterministic
reconstructions (posterior mean, likelihood mean) on the five fixed views per training
picture and per held-out picture. ELBO and bits/dim on the held-out views. The ELBO column
is of each model's own likelihood, a density for the Gaussian (positive nats: densities
exceed 1) and a probability of 8-bit levels for the mixture, so compare the models by
bits/dim: those are exact for 8-bit data (the images quantised to 256 levels; the Gaussian
discretised with edge bins to ±∞), the same quantity for every row; the uniform
distribution over the 256 levels scores 8. img/s: training images per second after the
first step.
Samples: `{folder}/samples.png`; held-out reconstructions: `{folder}/reconstructions.png`.
"""


def pictures(models, sets, folder):
    """The samples and held-out reconstructions of every model, one row each."""
    labels = [name for name, _ in models]
    samples = [np.asarray(m.sample(plotting.GRID_COLUMNS, seed=0)) for _, m in models]
    plotting.labelled_comparison(samples, labels, folder / "samples.png",
                                 title="Decoded z ~ N(0, I) (likelihood mean)")
    x = sets["held_out_images"][:plotting.GRID_COLUMNS]
    recons = [x] + [np.asarray(m(x)) for _, m in models]
    plotting.labelled_comparison(recons, ["held-out data"] + labels,
                                 folder / "reconstructions.png",
                                 title="Held-out reconstructions (posterior mean)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.architectures",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="budget per model [4]")
    parser.add_argument("--output-dir", default="docs/architectures",
                        help="where the JSON and the pictures go [docs/architectures]")
    parser.add_argument("--benchmarks-md", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--from-json", action="store_true",
                        help="only rewrite the BENCHMARKS.md section from --output-dir's JSON")
    args = parser.parse_args(argv)
    folder = pathlib.Path(args.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if args.from_json:
        saved = json.loads((folder / "architectures.json").read_text())
        text = section(saved["rows"], saved["machine"], saved["minutes_per_model"], folder,
                       saved["uptime"])
        data_scaling.write_markdown(args.benchmarks_md, text, START, END)
        return 0
    setup = Setup.read()
    header = f"{data_scaling.cpu()}; precision auto"
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(header, flush=True)
    sets, rows, models = data(setup), [], []
    for architecture, likelihood in VARIANTS:
        load = os.getloadavg()
        print(f"{architecture} / {likelihood}: load average {load[0]:.2f} {load[1]:.2f} "
              f"{load[2]:.2f}", flush=True)
        model, budget = train(setup, architecture, likelihood, args.minutes * 60, sets)
        row = {"architecture": architecture, "likelihood": likelihood, "load_average": load,
               **measure(model, budget, sets)}
        print(json.dumps(row), flush=True)
        rows.append(row)
        models.append((f"{architecture}, {SHORT[likelihood]}", model))
    pictures(models, sets, folder)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    (folder / "architectures.json").write_text(json.dumps(
        {"machine": header, "minutes_per_model": args.minutes, "uptime": uptime, "rows": rows},
        indent=1) + "\n")
    text = section(rows, header, args.minutes, folder, uptime)
    data_scaling.write_markdown(args.benchmarks_md, text, START, END)
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
