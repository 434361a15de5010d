"""`keras-vae sweep`: one run per constant β (and latent size), then the curve.

    keras-vae sweep --data digits --image-size 8 --channels 1 --betas 0,0.1,0.3,1,3

Trains the runs one after another into `<output_dir>/<sweep_name>/runs/
beta-<β>[-z<d>]/` (ordinary run folders, see `pipelines.train`), then writes
to `<output_dir>/<sweep_name>/`:

    rate_distortion.png   validation distortion against rate, one point per run
    results.md, .csv      β, latent_dim, rate, distortion, elbo, active_units
    reconstructions.png   the same validation images: inputs, then one row per run
    samples.png           the same prior draws decoded by each run, one row per run

Each finished run also gets a TensorBoard HParams session in its logs/ folder
(β and latent size as hyperparameters, the final validation numbers as
metrics): `tensorboard --logdir <sweep>/runs`, HPARAMS tab. Rerunning the
same command skips finished runs and resumes an interrupted one. A run that
fails (a NaN loss) is reported as failed; the others still run, and the exit
status is 1.
"""

import csv
import dataclasses
import io
import math
import pathlib
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from keras_vae import files
from keras_vae import monitoring
from keras_vae import plotting
from export import lock
from export import runfolder
from pipelines import cli
from pipelines import config as config_lib
from pipelines import datasets
from pipelines import flags
from pipelines import markdown
from pipelines import train as train_lib

DEFAULT_BETAS = "0,0.1,0.3,1,3"
#: Config keys the sweep sets for each run: they have no flag here.
SWEPT_KEYS = ("train.run_name", "model.latent_dim")
METRICS = tuple(runfolder.METRIC_NAMES)
COLUMNS = ("beta", "latent_dim", "status", *METRICS, "run")


@dataclasses.dataclass
class RunResult:
    """One run of the sweep; numbers are validation values, nats per image."""

    beta: float
    latent_dim: int
    folder: pathlib.Path
    metrics: dict = None  # rate, distortion, elbo, active_units; None if failed
    error: str = ""

    @property
    def failed(self):
        return self.metrics is None


# -- Command line --------------------------------------------------------------


def build_parser():
    """The train command's flags, less those the sweep sets, plus the sweep's."""
    parser = flags.ArgumentParser(
        prog="keras-vae sweep",
        allow_abbrev=False,  # --latent-dim must not silently mean --latent-dims.
        description="Train one run per β with a constant β schedule (and per latent "
        "size), then plot validation distortion against rate. Other flags are those "
        "of `keras-vae train`; the beta schedule flags do not apply.",
    )
    parser.add_argument("--betas", type=flags.numbers(float, "β values >= 0 like 0,0.1,1", 0, True),
                        default=DEFAULT_BETAS,
                        help=f"comma-separated β values (default {DEFAULT_BETAS})")
    parser.add_argument("--latent-dims", type=flags.numbers(int, "sizes like 8,16", 0, True),
                        help="comma-separated latent sizes (default: the config's latent_dim)")
    parser.add_argument("--sweep-name", default="sweep",
                        help="folder of the sweep under --output-dir (default: sweep)")
    parser.add_argument("--config", help="a TOML config file")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    flags.add_config_flags(parser, skip=(*SWEPT_KEYS, "beta."))
    return parser


# -- Runs ----------------------------------------------------------------------


def run_name(beta, latent_dim=None):
    """`beta-<β>[-z<d>]`, e.g. beta-0.3-z8."""
    return f"beta-{beta:g}" + ("" if latent_dim is None else f"-z{latent_dim}")


def sweep_configs(args):
    """The sweep folder and one resolved config per run, β fastest and
    ascending: TensorBoard lists and colours runs in the order they started."""
    given = flags.overrides(args)
    base = config_lib.load_config(args.config, given, flags.FLAG_NAMES)
    if not base["data"]["validation_split"] > 0:
        raise ValueError("The sweep compares runs on validation data: set --validation-split > 0")
    folder = pathlib.Path(base["train"]["output_dir"]) / args.sweep_name
    configs = []
    for latent_dim in args.latent_dims or [None]:
        for beta in sorted(args.betas):
            configs.append(config_lib.load_config(args.config, {
                **given,
                "beta.schedule": "constant",
                "beta.value": float(beta),
                "model.latent_dim": latent_dim,
                "train.output_dir": str(folder / "runs"),
                "train.run_name": run_name(beta, latent_dim),
            }, flags.FLAG_NAMES))
    return folder, configs


def _validation_metrics(folder):
    metrics = runfolder.read_metrics(folder)["validation"]
    values = {k: metrics[k] for k in METRICS}
    if not all(v is not None and math.isfinite(v) for v in values.values()):  # null: not finite
        raise cli.TrainingError(f"non-finite validation metrics in {folder / runfolder.METRICS}")
    return values


def run_all(configs, verbose=1):
    """Trains (or finds finished) every run; returns their `RunResult`s."""
    for config in configs:
        config_lib.check_same_run(config, "pass another --sweep-name, or delete that folder")
    results = []
    for i, config in enumerate(configs, 1):
        beta, latent_dim = config["beta"]["value"], config["model"]["latent_dim"]
        print(f"run {i}/{len(configs)}: β={beta:g}, latent_dim={latent_dim}", flush=True)
        keras.backend.clear_session()  # A fresh graph per run: memory stays flat.
        result = RunResult(beta, latent_dim, config_lib.run_dir(config))
        try:
            train_lib.train(config, verbose)
            result.metrics = _validation_metrics(result.folder)
        except cli.TrainingError as err:
            result.error = " ".join(str(err).split())
            print(f"run {i}/{len(configs)} failed: {result.error}", file=sys.stderr)
        else:
            write_hparams(result)
        results.append(result)
    return results


# -- TensorBoard HParams ---------------------------------------------------------

_HPARAMS = [
    hp.HParam("beta", display_name="β"),
    hp.HParam("latent_dim", display_name="latent size"),
]
_HP_METRICS = [
    hp.Metric(name, display_name=f"validation {shown}" if name in runfolder.BOUND_TERMS
              else shown, description=monitoring.describe(name))
    for name, shown in runfolder.METRIC_NAMES.items()
]


def write_hparams(result):
    """Makes the run's logs/ folder an HParams session: β and latent size,
    and the final validation numbers (metrics.json) as its metrics.

    The experiment config goes with every session, so any subset of the
    sweep's runs shows in TensorBoard. The session shares logs/ with the
    training curves, so each run is one TensorBoard entry; its file (suffix
    `.hparams`) is replaced, not appended to, on every sweep.
    """
    logs = result.folder / runfolder.LOGS
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=logs, prefix=".hparams-") as temp:
        writer = tf.summary.create_file_writer(temp, filename_suffix=".hparams")
        with writer.as_default(step=0):
            hp.hparams_config(hparams=_HPARAMS, metrics=_HP_METRICS)
            hp.hparams({"beta": result.beta, "latent_dim": result.latent_dim},
                       trial_id=result.folder.name)
            for name, value in result.metrics.items():
                tf.summary.scalar(name, value)
        writer.close()
        for old in logs.glob("events.out.tfevents.*.hparams"):
            old.unlink()
        for new in pathlib.Path(temp).iterdir():
            new.replace(logs / new.name)


# -- Reports -------------------------------------------------------------------


def _row(result, number):
    """A table row of strings; `number` formats the float metrics."""
    row = {"beta": f"{result.beta:g}", "latent_dim": result.latent_dim,
           "status": "failed" if result.failed else "ok", "run": result.folder.name}
    for name in METRICS:
        value = None if result.failed else result.metrics[name]
        row[name] = "" if value is None else (value if name == "active_units" else number(value))
    return row


def write_tables(folder, results):
    """results.csv (full precision) and results.md: one row per run,
    validation numbers in nats per image."""
    folder.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=[*COLUMNS, "error"], lineterminator="\n")
    writer.writeheader()
    for result in results:
        writer.writerow({**_row(result, repr), "error": result.error})
    files.write_text(folder / "results.csv", text.getvalue())

    rows = [_row(r, lambda v: f"{v:.2f}") for r in results]
    lines = [
        "# β sweep",
        "",
        "Validation numbers, nats per image; elbo = −(rate + distortion) (β = 1), "
        "higher is better. active_units: latent dimensions with Cov_x(E_q[z_d]) > 0.01.",
        "",
        *markdown.table(COLUMNS, [[row[c] for c in COLUMNS] for row in rows],
                        align="r" * (len(COLUMNS) - 1) + "l"),
    ]
    failures = [f"- {r.folder.name}: {r.error}" for r in results if r.failed]
    if failures:
        lines += ["", "Failed runs:", "", *failures]
    files.write_text(folder / "results.md", "\n".join(lines) + "\n")


def validation_images(config, count=plotting.GRID_COLUMNS):
    """The first `count` validation images of `config`'s data, [N, H, W, C]."""
    _, val_ds, _ = datasets.from_config(config, batch_size=count)
    return next(iter(val_ds)).numpy()


def write_grids(folder, images, done, seed=0):
    """reconstructions.png: `images`, then their reconstructions by each
    finished run in `done`; samples.png: the same prior draws decoded by each."""
    several_sizes = len({r.latent_dim for r in done}) > 1
    labels, reconstructions, samples = [], [images], []
    for result in done:
        model = keras.saving.load_model(result.folder / runfolder.MODEL)
        reconstructions.append(np.asarray(model(images, training=False)))
        samples.append(np.asarray(model.sample(len(images), seed=seed)))
        labels.append(f"β={result.beta:g}" + (f", z={result.latent_dim}" if several_sizes else ""))
    plotting.labelled_comparison(
        reconstructions, ["input", *labels], folder / "reconstructions.png",
        title="Validation reconstructions (best model of each run)",
    )
    plotting.labelled_comparison(
        samples, labels, folder / "samples.png",
        title="Prior samples z ~ N(0, I), decoded (best model of each run)",
    )


def write_reports(folder, data_name, images, results):
    """The tables, and the pictures of the runs that finished."""
    write_tables(folder, results)
    done = [r for r in results if not r.failed]
    if not done:
        return
    plotting.rate_distortion_plot(
        [{"beta": r.beta, "latent_dim": r.latent_dim, **r.metrics} for r in done],
        folder / "rate_distortion.png",
        title=f"Rate–distortion, {data_name} (validation)",
    )
    write_grids(folder, images, done)


def sweep(args):
    """Runs the sweep of parsed `args`; returns the folder and the results."""
    folder, configs = sweep_configs(args)
    files.check_writable(folder, "sweep folder")  # Before hours of training.
    # A bad likelihood or data set is refused before the folder appears.
    train_lib.check_likelihood(configs[0])  # Every run has the same one.
    images = validation_images(configs[0])
    # Its tables and pictures have one writer; each run below has its own lock.
    with lock.hold(folder, "keras-vae sweep", subfolders=False):
        results = run_all(configs, verbose=0 if args.quiet else 1)
        write_reports(folder, configs[0]["data"]["source"], images, results)
    print(f"Sweep results: {folder / 'results.md'}\n"
          f"TensorBoard: tensorboard --logdir {folder / 'runs'}")
    return folder, results


def main(argv=None):
    args = build_parser().parse_args(argv)
    outcome = {}

    def command():
        outcome["folder"], outcome["results"] = sweep(args)

    status = cli.run_command(command)
    if status:
        return status
    results = outcome["results"]
    failed = [r.folder.name for r in results if r.failed]
    if failed:
        print(f"keras-vae: error: {len(failed)} of {len(results)} runs failed "
              f"({', '.join(failed)}): see {outcome['folder'] / 'results.md'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
