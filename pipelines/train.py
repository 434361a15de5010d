"""`keras-vae train`: train a VAE from a config into a resumable run folder.

    keras-vae train --data digits --image-size 8 --channels 1 --epochs 5

The run folder (see `export.runfolder`) is written file by file,
atomically, config.toml first and metrics.json, the "finished" marker, last.

Rerunning the same command resumes: the default run name is a function of
the config, and each epoch ends with a checkpoint (`pipelines.checkpoints`).
A run interrupted at any instant resumes exactly as if it had not been; at
most the interrupted epoch is redone; a finished run returns at once.
"""

import math
import shutil

import keras

import keras_vae
from keras_vae import data as data_lib
from keras_vae import diagnostics
from keras_vae import files
from keras_vae import plotting
from keras_vae import precision as precision_lib
from keras_vae import monitoring
from export import lock
from export import runfolder
from pipelines import beta as beta_lib
from pipelines import checkpoints
from pipelines import cli
from pipelines import config as config_lib
from pipelines import datasets
from pipelines import distribution
from pipelines import flags
from pipelines import memory
from pipelines import runcallbacks
from pipelines import runchecks

#: Validation images kept for TensorBoard's latent statistics and pictures.
SUMMARY_IMAGES = memory.SUMMARY_IMAGES
#: Batches over which the final metrics count active units.
ACTIVE_UNIT_BATCHES = 32


def _datasets(config, strategy):
    """{"train": ..., "validation": ...} of (repeated dataset, steps per pass,
    one-pass dataset), and the `DataInfo`. No validation split, no "validation"."""
    train_ds, val_ds, info = datasets.from_config(config)
    steps = config_lib.steps_per_epoch(config, info.train_samples)
    sets = {"train": (distribution.distribute(train_ds, strategy), steps, train_ds)}
    if val_ds is not None:
        val_steps = math.ceil(info.val_samples / config["train"]["batch_size"])
        sets["validation"] = (distribution.distribute(val_ds, strategy), val_steps, val_ds)
    return sets, info


def _bytes_needed(model):
    """Disk space a run needs beyond its logs and images, bytes: model.keras,
    last.keras and two checkpoints, each checkpoint with Adam's two moments."""
    weights = 4 * sum(math.prod(v.shape) for v in model.weights)  # float32
    return 2 * weights + 2 * 3 * weights + 2 * 2**20


def _final_metrics(model, sets, saver):
    """metrics.json: each set evaluated with the final weights, nats per image."""
    metrics = {
        "units": "nats per image; mse in pixel units² and sigma (the Gaussian σ the model "
        "evaluates with) in pixel units, [0, 1] images; active_units: a count of latent "
        "dimensions",
        "epochs_completed": saver.epochs_completed,
        "train_seconds": round(saver.seconds, 2),
        "best": {saver.monitor: saver.best},
        "best_epoch": saver.best_epoch,  # The epoch model.keras is of.
    }
    for split, (ds, steps, one_pass) in sets.items():
        values = model.evaluate(ds, steps=steps, verbose=0, return_dict=True)
        stats = diagnostics.latent_statistics(model, one_pass, max_batches=ACTIVE_UNIT_BATCHES)
        metrics[split] = {k: float(v) for k, v in values.items()}
        metrics[split]["active_units"] = stats["active_units"]
    return metrics


def _grid_images(config, sets, info):
    """Fixed training images for the pictures: with random crops one view each
    of several pictures (`training_views` gives FIXED_VIEWS per picture),
    otherwise the first training images (no second decoding of the data)."""
    if not info.random_crops:
        return datasets.first_images(sets["train"][2], plotting.GRID_COLUMNS)
    step = data_lib.FIXED_VIEWS
    views = datasets.training_views(config)
    return datasets.first_images(views, step * plotting.GRID_COLUMNS)[::step]


def _save_images(model, images, train_images, folder, seed):
    """images/: the labelled grids of TensorBoard's last epoch, as PNGs:
    reconstructions of held-out and of training images, prior samples and
    traversals."""
    stats = diagnostics.latent_statistics(model, images)
    grids = plotting.diagnostic_images(model, images, stats["kl_per_dim"], seed=seed,
                                       train_images=train_images)
    for name, grid in grids.items():
        plotting.save_png(grid, folder / runfolder.IMAGES / f"{name}.png")


def check_likelihood(config):
    """Raises the likelihood's own one-line ValueError, naming the flag, before
    any data is read (preparing a folder can take minutes): a misspelt name,
    a mixture of 0 components, a σ below its floor."""
    try:
        keras_vae.likelihoods.get(config["model"]["likelihood"])
    except ValueError as error:
        raise ValueError(f"--likelihood (model.likelihood): {error}") from None


def _build(config, info, beta0, precision):
    """The compiled VAE of the [model] table, seeded by [train], its networks
    computing in `precision` (a resolved policy name)."""
    spec = config_lib.model_spec(config, info.image_shape, beta=beta0, precision=precision)
    return keras_vae.build_model(spec, config["train"]["learning_rate"])


def train(config, verbose=1, callbacks=()):
    """Trains (or resumes, or finds finished) the run of `config`.

    Args:
        config: a resolved config (`pipelines.config.load_config`).
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.
        callbacks: extra Keras callbacks, called after the pipeline's own.

    Returns:
        The run folder, a `pathlib.Path`.

    Raises:
        TrainingError (NaN loss), `lock.RunLockedError` (another command
        writes into the run), `keras_vae.data.DataError` or ValueError (bad
        config, a folder with another config, a damaged file of the run),
        each with a one-line message.
    """
    say = print if verbose else (lambda *a, **k: None)
    t = config["train"]
    # Collective ops need the strategy before any other TensorFlow work.
    strategy = distribution.make_strategy(t["strategy"])
    folder = config_lib.run_dir(config)
    if _finished(config, folder, say):  # Before the data: a finished run returns at once.
        lock.tidy(folder, "keras-vae train")
        return folder
    chief = distribution.is_chief(strategy)
    out = folder if chief else distribution.worker_dir(strategy, folder.name)
    model, sets, info, precision = _setup(config, strategy, out, say)
    with lock.hold(out, "keras-vae train"):
        # Again, under the lock: another command may have written the run meanwhile.
        if _finished(config, folder, say):
            return folder
        state = _resume(config, strategy, model, sets, folder, out)
        if chief:
            config_lib.dump_toml(config, folder / runfolder.CONFIG)
        saver, board = _fit(config, model, sets, info, state, out, say, verbose, callbacks)
        metrics = _final_metrics(model, sets, saver)
        metrics["precision"] = precision.as_dict()
        if chief:
            _save_images(model, board.images, board.train_images, folder, t["seed"])
            files.write_json(folder / runfolder.METRICS, metrics)
    if not chief:
        shutil.rmtree(out, ignore_errors=True)
    say(f"Finished: {folder}")
    return folder


def _setup(config, strategy, out, say):
    """(model, sets, info, precision): the memory check, the seeded data, the
    resolved precision (said) and the compiled model, then the checks that
    the run folder `out` is writable and has room for the run's models. The
    config is good once this returns: only then does the run folder appear."""
    t = config["train"]
    check_likelihood(config)
    memory.check(config)
    # Before any data: tf.data's seeded shuffles also read TensorFlow's global seed.
    keras.utils.set_random_seed(t["seed"])
    sets, info = _datasets(config, strategy)
    precision = precision_lib.resolve(t["precision"])
    say(f"Precision: {precision.policy} ({precision.reason}; CPU flags: "
        f"{', '.join(precision.cpu_flags) or 'none of note'}; GPUs: "
        f"{', '.join(precision.gpus) or 'none'})")
    _, beta0 = beta_lib.callback(config["beta"])
    with strategy.scope():
        model = _build(config, info, beta0, precision.policy)
    files.check_writable(out, "run folder")
    files.check_space(out, _bytes_needed(model), "the run's models and checkpoints",
                      "free some space or pass another --output-dir")
    return model, sets, info, precision


def _resume(config, strategy, model, sets, folder, out):
    """The state of the newest valid checkpoint in `out`, restored into
    `model` ({} for a new run), with the data fingerprint the run trains on:
    a checkpoint of another split is refused."""
    fingerprint = runchecks.data_fingerprint(config)
    with strategy.scope():
        state = checkpoints.restore_checkpoint(
            model, out / runfolder.CHECKPOINTS, sets["train"][1],
            remedy=f"delete {folder} to start over, or pass another --run-name",
            check_state=runchecks.data_check(config, fingerprint),
        )
    state["data_fingerprint"] = fingerprint
    return state


def _finished(config, folder, say):
    """True, saying so, if the run of `config` has trained its epochs;
    raises ValueError if `folder` holds another config's run."""
    config_lib.check_same_run(config)
    metrics = runfolder.read_metrics(folder)
    if metrics and metrics["epochs_completed"] >= config["train"]["epochs"]:
        say(f"Run already finished ({metrics['epochs_completed']} epochs): {folder}")
        return True
    return False


def _fit(config, model, sets, info, state, out, say, verbose, callbacks):
    """Trains `model` from the restored `state` to the config's epochs;
    returns the run's saver and TensorBoard callbacks, for the final metrics
    and pictures."""
    t = config["train"]
    beta_cb, _ = beta_lib.callback(config["beta"], state.get("controller") or None)
    initial_epoch = state.get("epochs_completed", 0)
    if initial_epoch >= t["epochs"]:
        say(f"Finishing {out}: its {initial_epoch} epochs are trained")
    elif initial_epoch:
        say(f"Resuming {out} at epoch {initial_epoch + 1} of {t['epochs']} "
            f"(checkpoint of epoch {initial_epoch})")
    else:
        say(f"Training into {out}")
    validation = sets.get("validation")
    controller = beta_cb if beta_lib.entry(config["beta"]["schedule"]).controller else None
    saver = runcallbacks.SaveRun(out, "val_elbo" if validation else "elbo", state, controller,
                                  fingerprint=state["data_fingerprint"])
    board = monitoring.VAETensorBoard(
        out / runfolder.LOGS,
        datasets.first_images((validation or sets["train"])[2], SUMMARY_IMAGES),
        update_freq=t["update_freq"], image_every=t["image_every"], seed=t["seed"],
        train_images=_grid_images(config, sets, info),
        images_split="validation" if validation else "train",
    )
    alarm = runcallbacks.CollapseAlarm(
        min_active_units=t["collapse_active_units"],
        min_rate_per_active_unit=t["collapse_rate_per_unit"], log_dir=out / runfolder.LOGS,
    )
    steps = sets["train"][1]
    try:
        # With every epoch done (killed while writing the final metrics) there
        # is no fit, whose callbacks would set β one step past the last trained.
        if initial_epoch < t["epochs"]:
            model.fit(
                # The batches the finished epochs consumed are skipped, so a
                # resumed run sees the same batches as an uninterrupted one.
                sets["train"][0].skip(initial_epoch * steps), initial_epoch=initial_epoch,
                epochs=t["epochs"], steps_per_epoch=steps,
                validation_data=validation and validation[0],
                validation_steps=validation and validation[1],
                shuffle=False,  # datasets.from_config shuffles.
                verbose=verbose,
                # The saver goes after the board, whose pictures draw from the
                # model's seed generator: the checkpoint holds the state after them.
                # The alarm reads the active units the board adds to the logs.
                callbacks=[runcallbacks.StopOnNonFinite(out, t["learning_rate"]), beta_cb, board,
                           alarm, saver, *callbacks],
            )
    finally:
        board.close()
    return saver, board


def build_parser(prog="keras-vae train", config_default=None):
    parser = flags.ArgumentParser(
        prog=prog,
        description="Train a VAE into a resumable run folder. Flags override the "
        "--config file, which overrides the defaults.",
    )
    parser.add_argument("--config", default=config_default, help="a TOML config file")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    flags.add_config_flags(parser)
    return parser


def parse_config(argv=None, prog="keras-vae train", config_default=None):
    """(config, verbose) from command-line arguments."""
    args = build_parser(prog, config_default).parse_args(argv)
    return flags.load(args), 0 if args.quiet else 1


def main(argv=None):
    return cli.run_command(lambda: train(*parse_config(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
