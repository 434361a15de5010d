"""`keras-vae train`: train a VAE from a config into a resumable run folder.

    keras-vae train --data digits --image-size 8 --channels 1 --epochs 5

The run folder `<output_dir>/<run_name>/` holds config.toml (written first),
model.keras (best validation ELBO), last.keras (last epoch), checkpoints/
(resume state), logs/ (TensorBoard), images/ and, written last as the
"finished" marker, metrics.json. Every file is written atomically.

Rerunning the same command resumes: the default run name is a function of
the config, and each epoch ends with a checkpoint folder
checkpoints/epoch-<N>/ (weights, the optimizer and hence the step that β
schedules read, and the pipeline's own state: best ELBO, β controller, wall
time), written whole and renamed into place, the previous one kept as a
fallback. A run interrupted at any instant resumes exactly as if it had not
been; at most the interrupted epoch is redone; a finished run returns at once.
"""

import argparse
import hashlib
import json
import math
import pathlib
import re
import shutil
import tempfile
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

import keras_vae
from keras_vae import callbacks as callbacks_lib
from keras_vae import data as data_lib
from keras_vae import diagnostics
from keras_vae import files
from keras_vae import plotting
from keras_vae import precision as precision_lib
from keras_vae import schedules
from keras_vae import tensorboard
from pipelines import config as config_lib

#: Feedback controllers: (class, required [beta] key, optional [beta] keys).
CONTROLLERS = {
    "kl_target": (callbacks_lib.KLTargetController, "target_rate",
                  ("kp", "ki", "beta_min", "beta_max")),
    "geco": (callbacks_lib.GECO, "tolerance", ("alpha", "step_size", "beta_min", "beta_max")),
}
STRATEGIES = ("default", "mirrored", "multiworker")
#: Validation images kept for TensorBoard's latent statistics and pictures.
SUMMARY_IMAGES = 256
#: Batches over which the final metrics count active units.
ACTIVE_UNIT_BATCHES = 32


class TrainingError(RuntimeError):
    """Training could not go on; the one-line message says what to do."""


# -- Names and folders ---------------------------------------------------------


def run_name(config):
    """`config["train"]["run_name"]`, or `<data>-<likelihood>-<schedule>-z<d>-s<seed>-<hash>`.

    The hash covers every key but `config_lib.RUN_INDEPENDENT_KEYS`: the same
    command always names the same run (so it resumes), another config another.
    """
    if config["train"]["run_name"]:
        return config["train"]["run_name"]
    key = {k: v for k, v in config_lib.flatten(config).items()
           if k not in config_lib.RUN_INDEPENDENT_KEYS}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:6]
    name = "-".join([
        pathlib.Path(str(config["data"]["source"])).name or "data",
        config["model"]["likelihood"],
        config["beta"]["schedule"],
        f"z{config['model']['latent_dim']}",
        f"s{config['train']['seed']}",
        digest,
    ])
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def run_dir(config):
    """Where the run of `config` is written: `<output_dir>/<run_name>`."""
    return pathlib.Path(config["train"]["output_dir"]) / run_name(config)


def _read_json(path):
    return json.loads(path.read_text()) if path.exists() else None


def check_same_run(config, remedy="pass another --run-name, or delete the folder to start over"):
    """Raises TrainingError if the run folder of `config` holds another config's run."""
    folder = run_dir(config)
    path = folder / "config.toml"
    if not path.exists():
        return
    changed = config_lib.differences(config_lib.load_config(path), config)
    if changed:
        raise TrainingError(
            f"{folder} holds a run with a different config ({', '.join(changed)} "
            f"changed): {remedy}"
        )


# -- Distribution --------------------------------------------------------------


def make_strategy(name):
    """A `tf.distribute` strategy by name; "multiworker" reads TF_CONFIG."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        _reduce_scalar_logs_across_workers()
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}")


def _reduce_scalar_logs_across_workers():
    """Works around tensorflow/tensorflow#72388 in Keras 3's TF trainer.

    Under MultiWorkerMirroredStrategy, Keras reduces `fit`'s logs with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on the scalar logs
    that every model returns ("Invalid reduction dimension 0 for input with 0
    dimensions"). Scalars are reduced across replicas only (axis=None); all
    other values go through Keras's reduction unchanged.
    """
    from keras.src.backend.tensorflow import trainer  # The function to wrap.

    keras_reduce = trainer.reduce_per_replica
    if getattr(keras_reduce, "_reduces_scalars", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tf.nest.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None)
                if v.shape.rank == 0 else keras_reduce(v, strategy, reduction),
                values,
            )
        return keras_reduce(values, strategy, reduction)

    reduce_per_replica._reduces_scalars = True
    trainer.reduce_per_replica = reduce_per_replica


def _is_chief(strategy):
    """True unless this process is a non-chief worker of a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def _worker_dir(strategy, name):
    """A non-chief worker's private folder: the same one on every restart, so
    the worker resumes too, and outside the run folder the chief owns."""
    resolver = strategy.cluster_resolver
    worker = f"keras-vae-{resolver.task_type}-{resolver.task_id}"
    return pathlib.Path(tempfile.gettempdir()) / worker / name


# -- β -------------------------------------------------------------------------


def beta_callback(beta, state=None):
    """The callback that sets β from the [beta] table, and β at step 0.

    `state`: a controller's saved `get_config()`, to resume it.
    """
    name = beta["schedule"]
    if name in CONTROLLERS:
        cls, required, optional = CONTROLLERS[name]
        if beta[required] is None:
            flag = "--" + required.replace("_", "-")
            raise ValueError(f"The {name} controller needs beta.{required} ({flag}), nats per image")
        kwargs = {k: beta[k] for k in optional if beta[k] is not None}
        controller = cls.from_config(state) if state else cls(beta[required], **kwargs)
        return controller, controller.beta
    if name not in schedules.NAMES:
        raise ValueError(
            f"Unknown beta schedule {name!r}: use one of "
            f"{', '.join([*schedules.NAMES, *CONTROLLERS])}"
        )
    schedule = schedules.get(name, **{k: beta[k] for k in schedules.parameter_names(name)})
    return callbacks_lib.BetaScheduler(schedule, update=beta["update"]), schedule(0)


# -- Callbacks -----------------------------------------------------------------


class _StopOnNaN(callbacks_lib.TerminateOnNonFinite):
    """`VAE.fit`'s NaN stop, whose one-line error also says where the last good model is."""

    def __init__(self, folder, learning_rate):
        super().__init__()
        self.folder, self.learning_rate = folder, learning_rate

    def error(self, key, value, step):
        last = self.folder / "last.keras"
        kept = (
            f"the last good model is {last} and rerunning resumes from it"
            if last.exists() else "no epoch had finished, so no model was saved"
        )
        return TrainingError(
            f"training stopped at epoch {self.epoch + 1}, step {step}: {key} became {value}; "
            f"{kept}; lower the learning rate (now {self.learning_rate:g}) or β"
        )


class _SaveRun(keras.callbacks.Callback):
    """At each epoch end: last.keras, model.keras if the monitored ELBO is the
    best so far, then the resume checkpoint (see `save_checkpoint`).

    The monitor is `val_elbo` (or `elbo` without validation): the bound at
    β = 1, comparable across epochs while a schedule moves β; `val_loss` =
    D + β·R would favour warm-up epochs by (1 − β)·R nats.

    Every file is written under a temporary name and renamed, so an
    interrupted save never leaves a truncated model.keras.
    """

    def __init__(self, folder, monitor, state, controller=None):
        super().__init__()
        self.folder, self.monitor, self.controller = folder, monitor, controller
        same = state.get("monitor") == monitor
        self.best = state.get("best", -math.inf) if same else -math.inf
        self.seconds = state.get("train_seconds", 0.0)
        self.epochs_completed = state.get("epochs_completed", 0)

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds += time.perf_counter() - self._started
        self.epochs_completed = epoch + 1
        self._save("last.keras")
        value = float(logs[self.monitor])
        if value > self.best:
            self.best = value
            self._save("model.keras")
        state = {
            "epochs_completed": self.epochs_completed,
            "best": self.best,
            "monitor": self.monitor,
            "train_seconds": self.seconds,
            "controller": self.controller.get_config() if self.controller else None,
        }
        save_checkpoint(self.model, self.folder / CHECKPOINTS, state)

    def _save(self, name):
        save_model(self.model, self.folder / name)


def save_model(model, path):
    """`model.save(path)` through a temporary file and a rename, so an
    interrupted save never leaves a truncated .keras file."""
    files.write_atomically(path, model.save)


# -- Resume checkpoints ----------------------------------------------------------

CHECKPOINTS = "checkpoints"
#: A checkpoint is a folder `epoch-<N>` holding both files, renamed into
#: place only once complete, so weights and state always belong together.
#: Model and optimizer variables. A .keras file, not .weights.h5: Keras builds
#: its HDF5 part in memory and writes it with Python's zipfile, so a full disk
#: raises an OSError; h5py writing to disk spews errors and can segfault.
CHECKPOINT_WEIGHTS = "checkpoint.keras"
CHECKPOINT_STATE = "state.json"  # The pipeline's state, JSON.
KEEP_CHECKPOINTS = 2  # The newest, and the one before as a fallback.


def save_checkpoint(model, folder, state):
    """Writes `folder/epoch-<N>/` (N = state["epochs_completed"]) atomically:
    the model's and the optimizer's variables (Adam's moments and step, which
    β schedules read) and `state` (strict JSON: ±inf is written null);
    then deletes all but the newest `KEEP_CHECKPOINTS` checkpoints."""
    state = {**state, "random_state": [v.numpy().tolist() for v in _unsaved_variables(model)]}

    def write(temp):
        model.save(pathlib.Path(temp) / CHECKPOINT_WEIGHTS)
        (pathlib.Path(temp) / CHECKPOINT_STATE).write_text(files.to_json(state))

    files.write_folder(folder / f"epoch-{state['epochs_completed']:05d}", write)
    for old in _checkpoints(folder)[KEEP_CHECKPOINTS:]:
        shutil.rmtree(old, ignore_errors=True)


def _unsaved_variables(model):
    """Variables that Keras's saving leaves out: the seed generators' states,
    which draw z's noise. Restored too, a resumed run draws the same noise."""
    saved = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in saved]


def _checkpoints(folder):
    """The checkpoint folders under `folder`, newest first."""
    return sorted(folder.glob("epoch-[0-9]*"), reverse=True)


def restore_checkpoint(model, folder, remedy):
    """Loads the newest checkpoint under `folder` that loads completely into
    the compiled `model` (weights and optimizer) and returns its state; {}
    when there is none. Raises TrainingError when checkpoints exist but none
    restores exactly: resuming from a partial state would train silently
    with a reset optimizer or β step."""
    found = _checkpoints(folder)
    if not found:
        if (folder / "backup").exists() or (folder / CHECKPOINT_STATE).exists():
            raise TrainingError(
                f"{folder} holds checkpoints of an older keras-vae that cannot resume "
                f"exactly: {remedy}"
            )
        return {}
    # The optimizer's variables must exist for load_weights to fill them;
    # fit builds it lazily, too late.
    model.optimizer.build(model.trainable_variables)
    problems = []
    for path in found:
        try:
            state = json.loads((path / CHECKPOINT_STATE).read_text())
            with warnings.catch_warnings():
                # Keras only warns when variables do not match; that is a failure here.
                warnings.simplefilter("error")
                model.load_weights(path / CHECKPOINT_WEIGHTS)
            random_state, unsaved = state.pop("random_state"), _unsaved_variables(model)
            if len(random_state) != len(unsaved):
                raise ValueError(f"{len(random_state)} random states for {len(unsaved)} generators")
            for variable, value in zip(unsaved, random_state):
                variable.assign(np.asarray(value, variable.dtype))
        except Exception as error:  # h5py, json and Keras raise their own types.
            problems.append(f"{path.name}: {' '.join(str(error).split())[:200]}")
            continue
        state["best"] = -math.inf if state.get("best") is None else state["best"]
        return state
    raise TrainingError(
        f"no checkpoint in {folder} can be restored ({'; '.join(problems)}): {remedy}"
    )


# -- Training ------------------------------------------------------------------


def _distribute(ds, strategy):
    """Repeats `ds` (steps are counted explicitly) and, across workers, shards
    its batches: in-memory data has no files to shard."""
    ds = ds.repeat()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        ds = ds.with_options(options)
    return ds


def _images(ds, limit):
    batches, count = [], 0
    for batch in ds:
        batches.append(batch.numpy())
        count += len(batches[-1])
        if count >= limit:
            break
    return np.concatenate(batches)[:limit]


def make_datasets(config, source=None, batch_size=None):
    """`keras_vae.data.make_datasets` for the [data] table of `config`:
    (train_ds, val_ds, info). `source` and `batch_size` override the config's."""
    d = config["data"]
    return data_lib.make_datasets(
        source or d["source"], image_size=d["image_size"], channels=d["channels"],
        batch_size=batch_size or config["train"]["batch_size"],
        validation_split=d["validation_split"], seed=d["seed"],
        random_crops=d["random_crops"], crops_per_image=d["crops_per_image"],
    )


def _datasets(config, strategy):
    """{"train": ..., "validation": ...} of (repeated dataset, steps per pass,
    one-pass dataset), and the `DataInfo`. No validation split, no "validation"."""
    batch_size = config["train"]["batch_size"]
    train_ds, val_ds, info = make_datasets(config)
    steps = config["train"]["steps_per_epoch"] or math.ceil(info.train_samples / batch_size)
    sets = {"train": (_distribute(train_ds, strategy), steps, train_ds)}
    if val_ds is not None:
        val_steps = math.ceil(info.val_samples / batch_size)
        sets["validation"] = (_distribute(val_ds, strategy), val_steps, val_ds)
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
    }
    for split, (ds, steps, one_pass) in sets.items():
        values = model.evaluate(ds, steps=steps, verbose=0, return_dict=True)
        stats = diagnostics.latent_statistics(model, one_pass, max_batches=ACTIVE_UNIT_BATCHES)
        metrics[split] = {k: float(v) for k, v in values.items()}
        metrics[split]["active_units"] = stats["active_units"]
    return metrics


def training_views(config):
    """`keras_vae.data.training_views` for the [data] table of `config`: the
    training pictures seen as validation sees the held-out ones."""
    d = config["data"]
    return data_lib.training_views(
        d["source"], d["image_size"], d["channels"], config["train"]["batch_size"],
        d["validation_split"], d["seed"], d["random_crops"],
    )


def _grid_images(config, sets, info):
    """Fixed training images for the pictures: with random crops one view each
    of several pictures (`training_views` gives FIXED_VIEWS per picture),
    otherwise the first training images (no second decoding of the data)."""
    if not info.random_crops:
        return _images(sets["train"][2], tensorboard.GRID_COLUMNS)
    step = data_lib.FIXED_VIEWS
    return _images(training_views(config), step * tensorboard.GRID_COLUMNS)[::step]


def _save_images(model, images, train_images, folder, seed):
    """images/: reconstructions of held-out and of training images, labelled,
    then the prior samples and traversals."""
    stats = diagnostics.latent_statistics(model, images)
    grids = tensorboard.diagnostic_images(model, images, stats["kl_per_dim"], seed=seed)
    for split, x in (("held_out", images), ("train", train_images)):
        x = x[:tensorboard.GRID_COLUMNS]
        plotting.labelled_comparison(
            [x, np.asarray(model(x))], ["data", "reconstruction"],
            folder / "images" / f"reconstructions_{split}.png",
            title=f"{'Held-out' if split == 'held_out' else 'Training'} images "
            "(posterior mean)",
        )
    for name in ("samples", "traversals"):
        plotting.save_png(grids[name], folder / "images" / f"{name}.png")


def train(config, verbose=1, callbacks=()):
    """Trains (or resumes, or finds finished) the run of `config`.

    Args:
        config: a resolved config (`pipelines.config.load_config`).
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.
        callbacks: extra Keras callbacks, called after the pipeline's own.

    Returns:
        The run folder, a `pathlib.Path`.

    Raises:
        TrainingError (NaN loss, a folder with another config),
        `keras_vae.data.DataError` or ValueError (bad config), each with a
        one-line message.
    """
    say = print if verbose else (lambda *a, **k: None)
    t, m = config["train"], config["model"]
    # Collective ops need the strategy before any other TensorFlow work.
    strategy = make_strategy(t["strategy"])
    folder = run_dir(config)
    check_same_run(config)
    metrics = _read_json(folder / "metrics.json")
    if metrics and metrics["epochs_completed"] >= t["epochs"]:
        say(f"Run already finished ({metrics['epochs_completed']} epochs): {folder}")
        return folder
    chief = _is_chief(strategy)
    out = folder if chief else _worker_dir(strategy, folder.name)
    # Before any data: tf.data's seeded shuffles also read TensorFlow's global seed.
    keras.utils.set_random_seed(t["seed"])
    sets, info = _datasets(config, strategy)
    beta_cb, beta0 = beta_callback(config["beta"])  # Also checks the [beta] table.
    precision = precision_lib.resolve(t["precision"])
    say(f"Precision: {precision.policy} ({precision.reason}; CPU flags: "
        f"{', '.join(precision.cpu_flags) or 'none of note'}; GPUs: "
        f"{', '.join(precision.gpus) or 'none'})")
    with strategy.scope():
        model = keras_vae.build_conv_vae(
            info.image_shape, latent_dim=m["latent_dim"], likelihood=m["likelihood"],
            filters=m["filters"], kernel_size=m["kernel_size"], kl=m["kl"],
            free_bits=m["free_bits"], beta=beta0, seed=t["seed"],
            precision=precision.policy,
        )
        model.compile(optimizer=keras.optimizers.Adam(t["learning_rate"]))
        state = restore_checkpoint(
            model, out / CHECKPOINTS,
            remedy=f"delete {folder} to start over, or pass another --run-name",
        )
    if state.get("controller"):
        beta_cb, beta0 = beta_callback(config["beta"], state["controller"])
    # The config is good: only now does the run folder appear, once it is
    # known to be writable and to have room for the run's models.
    files.check_writable(out, "run folder")
    files.check_space(out, _bytes_needed(model), "the run's models and checkpoints")
    for where in (out, out / CHECKPOINTS, out / "images"):  # What kill -9 left mid-write.
        files.remove_leftovers(where)
    if chief:
        config_lib.dump_toml(config, folder / "config.toml")

    initial_epoch = state.get("epochs_completed", 0)
    if initial_epoch >= t["epochs"]:
        say(f"Finishing {folder}: its {initial_epoch} epochs are trained")
    elif initial_epoch:
        say(f"Resuming {folder} at epoch {initial_epoch + 1} of {t['epochs']} "
            f"(checkpoint of epoch {initial_epoch})")
    else:
        say(f"Training into {folder}")
    validation = sets.get("validation")
    controller = beta_cb if config["beta"]["schedule"] in CONTROLLERS else None
    saver = _SaveRun(out, "val_elbo" if validation else "elbo", state, controller)
    board = tensorboard.VAETensorBoard(
        out / "logs", _images((validation or sets["train"])[2], SUMMARY_IMAGES),
        update_freq=t["update_freq"], image_every=t["image_every"], seed=t["seed"],
        train_images=_grid_images(config, sets, info),
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
                shuffle=False,  # make_datasets shuffles.
                verbose=verbose,
                # The saver goes after the board, whose pictures draw from the
                # model's seed generator: the checkpoint holds the state after them.
                callbacks=[_StopOnNaN(out, t["learning_rate"]), beta_cb, board, saver,
                           *callbacks],
            )
    finally:
        board.close()

    metrics = _final_metrics(model, sets, saver)
    metrics["precision"] = precision.as_dict()
    if chief:
        _save_images(model, board.images, board.train_images, folder, t["seed"])
        files.write_json(folder / "metrics.json", metrics)
    else:
        shutil.rmtree(out, ignore_errors=True)
    say(f"Finished: {folder}")
    return folder


# -- Command line --------------------------------------------------------------

#: (flag, dotted config key, type, help). Every config key has a flag.
FLAGS = (
    ("--data", "data.source", str, "a folder of images or an embedded set: "
     + ", ".join(data_lib.EMBEDDED)),
    ("--image-size", "data.image_size", int, "side of the square images, px"),
    ("--channels", "data.channels", int, "1 (grayscale) or 3 (RGB)"),
    ("--validation-split", "data.validation_split", float, "fraction held out"),
    ("--data-seed", "data.seed", int, "seed of the split, shuffling and crops"),
    ("--random-crops", "data.random_crops", "bool", "train on random crops (true/false)"),
    ("--crops-per-image", "data.crops_per_image", int, "random crops per picture per epoch"),
    ("--latent-dim", "model.latent_dim", int, "size of z"),
    ("--filters", "model.filters", "ints", "convolution widths, e.g. 32,64,128"),
    ("--kernel-size", "model.kernel_size", int, "convolution kernel size"),
    ("--likelihood", "model.likelihood", str, "bernoulli, gaussian, gaussian_learned, "
     "gaussian_optimal or gaussian:<sigma>"),
    ("--kl", "model.kl", str, "analytic, mc or auto"),
    ("--free-bits", "model.free_bits", float, "KL floor per latent dimension, nats"),
    ("--beta-schedule", "beta.schedule", str, "constant, linear, cyclical, sigmoid, "
     "kl_target or geco"),
    ("--beta", "beta.value", float, "β of the constant schedule"),
    ("--beta-start", "beta.start", float, "β at step 0 (linear, cyclical, sigmoid)"),
    ("--beta-stop", "beta.stop", float, "final β (linear, cyclical, sigmoid)"),
    ("--warmup-steps", "beta.warmup_steps", int, "linear ramp length, steps"),
    ("--delay-steps", "beta.delay_steps", int, "steps at the start value before the ramp"),
    ("--period", "beta.period", int, "cyclical period, steps"),
    ("--ratio", "beta.ratio", float, "cyclical: fraction of the period spent rising"),
    ("--midpoint-steps", "beta.midpoint_steps", int, "sigmoid: step where β is half-way"),
    ("--width-steps", "beta.width_steps", int, "sigmoid: steepness, steps"),
    ("--beta-update", "beta.update", str, "schedules: per batch or per epoch"),
    ("--target-rate", "beta.target_rate", float, "kl_target: rate set point, nats"),
    ("--kp", "beta.kp", float, "kl_target: proportional gain"),
    ("--ki", "beta.ki", float, "kl_target: integral gain"),
    ("--tolerance", "beta.tolerance", float, "geco: distortion bound, nats"),
    ("--alpha", "beta.alpha", float, "geco: moving-average factor"),
    ("--step-size", "beta.step_size", float, "geco: multiplier step size"),
    ("--beta-min", "beta.beta_min", float, "controllers: lowest β"),
    ("--beta-max", "beta.beta_max", float, "controllers: highest β"),
    ("--epochs", "train.epochs", int, "epochs to train (raise it to train a run further)"),
    ("--batch-size", "train.batch_size", int, "global batch size"),
    ("--learning-rate", "train.learning_rate", float, "Adam's learning rate"),
    ("--seed", "train.seed", int, "seed of the weights and of z"),
    ("--steps-per-epoch", "train.steps_per_epoch", int, "default: one pass over the data"),
    ("--run-name", "train.run_name", str, "default: derived from the config"),
    ("--output-dir", "train.output_dir", str, "folder of the run folders"),
    ("--strategy", "train.strategy", str, ", ".join(STRATEGIES)),
    ("--precision", "train.precision", str, "auto, float32, mixed_bfloat16 or mixed_float16"),
    ("--image-every", "train.image_every", int, "epochs between TensorBoard images (0: none)"),
    ("--update-freq", "train.update_freq", int, "steps between per-step summaries (0: none)"),
)
#: {dotted config key: flag}, for the config's error messages.
FLAG_NAMES = {key: flag for flag, key, _, _ in FLAGS}


def _ints(text):
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 32,64,128, got {text!r}") from None


def _bool(text):
    if text.lower() in ("true", "yes", "1"):
        return True
    if text.lower() in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser(prog="keras-vae train", config_default=None):
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train a VAE into a resumable run folder. Flags override the "
        "--config file, which overrides the defaults.",
    )
    parser.add_argument("--config", default=config_default, help="a TOML config file")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_config_flags(parser)
    return parser


def add_config_flags(parser, skip=()):
    """Adds a flag for every config key in FLAGS, but those starting with a `skip` prefix."""
    types = {"bool": _bool, "ints": _ints}
    for flag, key, type_, help_ in FLAGS:
        if not key.startswith(tuple(skip)):
            parser.add_argument(
                flag, dest=key, metavar=key.partition(".")[2].upper(),
                type=types.get(type_, type_), help=f"{help_} [{key}]",
            )


def parse_config(argv=None, prog="keras-vae train", config_default=None):
    """(config, verbose) from command-line arguments."""
    args = build_parser(prog, config_default).parse_args(argv)
    overrides = {key: getattr(args, key) for _, key, _, _ in FLAGS}
    return config_lib.load_config(args.config, overrides, FLAG_NAMES), 0 if args.quiet else 1


def main(argv=None):
    from pipelines import cli

    return cli.run_command(lambda: train(*parse_config(argv)))


if __name__ == "__main__":
    # Run the importable module's main, whose TrainingError the CLI catches
    # (under `python -m`, this file's classes belong to `__main__`).
    from pipelines.train import main as _main

    raise SystemExit(_main())
