"""Monitoring a VAE while it trains: TensorBoard that explains itself, and a
posterior-collapse alarm.

`METRICS` (from `keras_vae.glossary`, re-exported here) is the one table of
what every logged number means (what it is, its unit, which way is better),
keyed by metric name; `VAETensorBoard` writes it as each TensorBoard tag's
description, and anything else that needs the words (`describe`) reads it.

`VAETensorBoard` writes ONE TensorBoard run per training run (the folder
`log_dir`, so a sweep shows one entry per β), tags `<group>/<metric>`.
Numbers are nats per image unless stated:

    train/<m>, validation/<m>    per epoch (x axis: epoch); m in loss,
                                 distortion, rate, elbo, bits_per_dim, mse,
                                 psnr (from the epoch's mean MSE), beta, sigma
                                 (Gaussian likelihoods), train/learning_rate
    train_batch/<m>              every `update_freq` steps (x axis: optimizer
                                 step): the running means of the epoch so far,
                                 as in the progress bar
    gradients/grad_norm_distortion, gradients/grad_norm_beta_rate,
    gradients/grad_ratio         ‖∇distortion‖, ‖∇(β·rate)‖ and their ratio on
                                 a fixed batch (x axis: optimizer step)
    validation/active_units      an integer count (Burda et al. 2016)
    validation/rate_per_active_unit, validation/kl_per_dim (histogram)
                                 on the fixed `images`; `train/...` instead
                                 when they are training images
                                 (`images_split="train"`: no validation split)
    images/held_out_reconstructions, images/train_reconstructions,
    images/samples, images/traversals
                                 labelled grids every `image_every` epochs
    alarms/posterior_collapse    text, from `CollapseAlarm`

and a Custom Scalars layout (`custom_scalars_layout`) that puts rate,
distortion and β for training and validation on one screen, then σ, MSE and
PSNR, then the latent space and the gradients. All diagnostics run between
steps on fixed images, never in the train step.
"""

import functools
import warnings

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import summary as custom_scalar_summary

from keras_vae import diagnostics
from keras_vae import evaluation
from keras_vae import files
from keras_vae import plotting
from keras_vae.glossary import METRICS, Metric, describe  # noqa: F401 (public here too)

_PACKAGE = "keras_vae"
#: Images used for the gradient norms: one batch's worth.
GRADIENT_BATCH = 64


#: The per-epoch terms read from `fit`'s logs (`val_`-prefixed for validation).
_LOGGED = ("loss", "distortion", "rate", "elbo", "mse", "beta", "sigma")


def _scalar(tag, value):
    tf.summary.scalar(tag, float(value), description=describe(tag))


def derived_terms(model, terms):
    """`terms` (loss, distortion, rate, elbo, mse, …) plus psnr from mse and
    bits_per_dim from the ELBO (see METRICS)."""
    terms = dict(terms)
    if "mse" in terms:
        terms["psnr"] = float(evaluation.psnr(float(terms["mse"])))
    if "elbo" in terms:
        terms["bits_per_dim"] = evaluation.bits_per_dim(
            -float(terms["elbo"]), model.image_shape, evaluation.bin_width(model.likelihood))
    return terms


def latent_health(stats):
    """(active units, rate per active unit in nats) of `diagnostics.latent_statistics`."""
    active = int(stats["active_units"])
    rate = float(np.sum(np.asarray(stats["kl_per_dim"])[stats["active"]]))
    return active, rate / active if active else 0.0


def custom_scalars_layout():
    """The Custom Scalars dashboard: one screen per question, train and validation overlaid."""

    def chart(title, *regexes):
        return layout_pb2.Chart(
            title=title, multiline=layout_pb2.MultilineChartContent(tag=list(regexes)))

    def both(name):
        return rf"^(train|validation)/{name}$"

    return layout_pb2.Layout(category=[
        layout_pb2.Category(title="Rate, distortion and β (nats per image)", chart=[
            chart("rate KL(q‖p), nats — near 0: collapse", both("rate")),
            chart("distortion −E log p(x|z), nats — lower is better", both("distortion")),
            chart("β (loss = distortion + β·rate)", r"^train/beta$"),
            chart("ELBO, nats — higher is better", both("elbo")),
        ]),
        layout_pb2.Category(title="What β means: σ, MSE and PSNR", chart=[
            chart("σ of the Gaussian likelihood, pixel units", both("sigma")),
            chart("MSE, pixel units² — lower is better", both("mse")),
            chart("PSNR, dB — higher is better", both("psnr")),
        ]),
        layout_pb2.Category(title="Latent space and gradients", chart=[
            chart("active units (count)", r"^(validation|train)/active_units$"),
            chart("rate per active unit, nats", r"^(validation|train)/rate_per_active_unit$"),
            chart("gradient norms ‖∇distortion‖, ‖∇(β·rate)‖", r"^gradients/grad_norm_"),
            chart("‖∇(β·rate)‖ / ‖∇distortion‖", r"^gradients/grad_ratio$"),
        ]),
    ])


def _writes(method):
    """A full disk or a missing permission while TensorBoard writes ends in
    one OSError naming `self.log_dir` (see `files.raise_write_error`)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except tf.errors.OpError as error:
            files.raise_write_error(error, self.log_dir)
            raise

    return wrapper


class VAETensorBoard(keras.callbacks.Callback):
    """Writes the summaries listed in this module's docstring to `log_dir`.

    Adds `active_units` and `rate_per_active_unit` (validation images) to
    each epoch's logs, so callbacks after it (`CollapseAlarm`, `History`,
    `CSVLogger`) see them.

    Args:
        log_dir: folder of the event files: one TensorBoard run.
        images: fixed images [N, H, W, C] in [0, 1], preferably validation
            images, for the latent statistics (all N), the gradient norms (the
            first GRADIENT_BATCH) and the pictures (the first GRID_COLUMNS).
        train_images: optional fixed training images, whose reconstructions
            are shown beside the held-out ones.
        images_split: what `images` are, "validation" or "train" (a run
            without a validation split): the group of the latent statistics'
            tags (`<split>/active_units`, ...), so that no tag says
            validation of numbers computed on training images.
        update_freq: steps between per-step summaries; 0 for epoch ends only.
        image_every: epochs between pictures; 0 for none.
        seed: fixes the prior samples shown, so epochs compare.
    """

    def __init__(self, log_dir, images, update_freq=50, image_every=1, seed=0,
                 train_images=None, images_split="validation"):
        super().__init__()
        if images_split not in ("validation", "train"):
            raise ValueError(f"images_split must be 'validation' or 'train', got "
                             f"{images_split!r}.")
        self.images_split = images_split
        self.log_dir = str(log_dir)
        self.images = np.asarray(images, dtype="float32")
        self.train_images = None if train_images is None else np.asarray(train_images, "float32")
        if not len(self.images):
            raise ValueError("VAETensorBoard needs at least one image to summarise.")
        self.update_freq = int(update_freq)
        self.image_every = int(image_every)
        self.seed = seed
        self._file = None

    @property
    def _writer(self):
        if self._file is None:
            self._file = tf.summary.create_file_writer(self.log_dir)
        return self._file

    @_writes
    def close(self):
        """Flushes and closes the event file; safe to call twice."""
        if self._file is not None:
            self._file.close()
        self._file = None

    def _step(self):
        return int(self.model.optimizer.iterations.numpy())

    def _image_epoch(self, epoch):
        return bool(self.image_every) and (epoch + 1) % self.image_every == 0

    def _learning_rate(self):
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def _terms(self, group, logs, prefix=""):
        terms = {k: logs[prefix + k] for k in _LOGGED if prefix + k in logs}
        for name, value in derived_terms(self.model, terms).items():
            if not (group == "validation" and name == "beta"):  # β has no validation value.
                _scalar(f"{group}/{name}", value)

    def _gradient_norms(self, step):
        norms = diagnostics.gradient_norms(self.model, self.images[:GRADIENT_BATCH])
        with self._writer.as_default(step=step):
            for name, value in norms.items():
                _scalar(f"gradients/grad_norm_{name}", value)
            if norms["distortion"] > 0:
                _scalar("gradients/grad_ratio", norms["beta_rate"] / norms["distortion"])

    @_writes
    def on_train_begin(self, logs=None):
        with self._writer.as_default(step=0):
            tf.summary.experimental.write_raw_pb(
                custom_scalar_summary.pb(custom_scalars_layout()).SerializeToString())

    @_writes
    def on_train_batch_end(self, batch, logs=None):
        if not self.update_freq:
            return
        step = self._step()
        if step % self.update_freq:
            return
        with self._writer.as_default(step=step):
            self._terms("train_batch", logs or {})
            _scalar("train_batch/learning_rate", self._learning_rate())
        self._gradient_norms(step)

    @_writes
    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        stats = diagnostics.latent_statistics(self.model, self.images)
        active, per_unit = latent_health(stats)
        with self._writer.as_default(step=epoch):
            self._terms("train", logs)
            _scalar("train/learning_rate", self._learning_rate())
            self._terms("validation", logs, prefix="val_")
            split = self.images_split
            tf.summary.histogram(f"{split}/kl_per_dim", stats["kl_per_dim"],
                                 description=describe("kl_per_dim"))
            _scalar(f"{split}/active_units", active)
            _scalar(f"{split}/rate_per_active_unit", per_unit)
            if self._image_epoch(epoch):
                self._images(stats)
        self._gradient_norms(self._step())
        self._writer.flush()
        logs.update(active_units=active, rate_per_active_unit=per_unit)

    def _images(self, stats):
        grids = plotting.diagnostic_images(self.model, self.images, stats["kl_per_dim"],
                                           seed=self.seed, train_images=self.train_images)
        for name, grid in grids.items():
            # reconstructions_held_out -> images/held_out_reconstructions
            kind, _, split = name.partition("_")
            tag = f"images/{split}_{kind}" if split else f"images/{name}"
            tf.summary.image(tag, grid[None], description=describe(kind))

    def on_train_end(self, logs=None):
        self.close()


class PosteriorCollapseWarning(UserWarning):
    """The posterior collapsed: the decoder ignores z (`CollapseAlarm`)."""


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CollapseAlarm(keras.callbacks.Callback):
    """Warns, once, at the epoch the posterior collapses.

    Collapse: fewer than `min_active_units` latent dimensions are active, or
    the active ones carry less than `min_rate_per_active_unit` nats each on
    average (see `METRICS`). Then the decoder ignores z and reconstructs
    every image as about the same mean image, while the loss looks fine. The
    warning is a `PosteriorCollapseWarning` (`warnings.warn`; also TensorBoard
    text `alarms/posterior_collapse` when `log_dir` is given) with the measured
    numbers and the remedies the package offers, spelled as `REMEDIES` says
    (in Python; a command-line tool subclasses it with its flags and its own
    `warn`); it fires again only after the code has recovered.

    Args:
        images: fixed images [N, H, W, C] to measure on, preferably held-out.
            Without them the alarm reads `active_units` and
            `rate_per_active_unit` from the epoch logs, which `VAETensorBoard`
            (placed before it) adds.
        min_active_units: the fewest active dimensions that count as healthy.
        min_rate_per_active_unit: nats per active dimension below which the
            code counts as collapsed.
        log_dir: optional TensorBoard run folder for the text summary.

    Attributes:
        alarms: [(epoch, message)] of the alarms raised, 0-based epochs.
    """

    #: How each remedy is spelled in the warning: free bits, a KL warm-up and a
    #: calibrated σ (offered only when σ is fixed).
    REMEDIES = {
        "free_bits": "VAE(free_bits=0.1)",
        "warmup": "callbacks.BetaScheduler(schedules.LinearWarmup(1000))",
        "sigma": 'likelihoods.Gaussian(sigma="optimal") or Gaussian(sigma="learned")',
    }

    def __init__(self, images=None, min_active_units=1, min_rate_per_active_unit=0.1,
                 log_dir=None):
        super().__init__()
        if min_active_units < 0 or not min_rate_per_active_unit >= 0:
            raise ValueError(
                "CollapseAlarm thresholds must be >= 0, got min_active_units="
                f"{min_active_units}, min_rate_per_active_unit={min_rate_per_active_unit}.")
        self.images = None if images is None else np.asarray(images, dtype="float32")
        self.min_active_units = int(min_active_units)
        self.min_rate_per_active_unit = float(min_rate_per_active_unit)
        self.log_dir = None if log_dir is None else str(log_dir)
        self.alarms = []
        self._collapsed = False

    def _measure(self, logs):
        if self.images is not None:
            return latent_health(diagnostics.latent_statistics(self.model, self.images))
        if "active_units" not in logs:
            raise ValueError(
                "CollapseAlarm needs images=... or a VAETensorBoard before it in the "
                "callbacks (which logs active_units).")
        return int(logs["active_units"]), float(logs["rate_per_active_unit"])

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        active, per_unit = self._measure(logs)
        collapsed = (active < self.min_active_units
                     or (active > 0 and per_unit < self.min_rate_per_active_unit))
        if collapsed and not self._collapsed:
            self._raise(epoch, active, per_unit, logs)
        self._collapsed = collapsed

    def message(self, epoch, active, per_unit, logs):
        """The one-paragraph warning: what was measured, then the remedies."""
        model = self.model
        rate = logs.get("val_rate", logs.get("rate"))
        beta = float(keras.ops.convert_to_numpy(model.beta))
        spell = self.REMEDIES
        remedies = [
            f"free bits ({spell['free_bits']}; now {model.free_bits:g})",
            f"a KL warm-up ({spell['warmup']})",
            f"a lower β (now {beta:g})",
        ]
        sigma = getattr(model.likelihood, "sigma", None)
        if isinstance(sigma, int | float):  # A fixed σ: β's meaning hinges on it.
            remedies.append(f"a calibrated σ ({spell['sigma']}) instead of the fixed "
                            f"σ = {sigma:g}")
        measured = (f"{active} of {model.latent_dim} latent dimensions active (threshold "
                    f"{self.min_active_units}), {per_unit:.3f} nats per active dimension "
                    f"(threshold {self.min_rate_per_active_unit:g})")
        if rate is not None:
            measured += f", rate {float(rate):.3g} nats per image"
        return (f"posterior collapse at epoch {epoch + 1}: {measured}. The decoder ignores z "
                f"and reconstructs every image as about the same mean image. Remedies: "
                f"{'; '.join(remedies)}.")

    @_writes
    def _raise(self, epoch, active, per_unit, logs):
        text = self.message(epoch, active, per_unit, logs)
        self.alarms.append((epoch, text))
        self.warn(text)
        if self.log_dir is not None:
            writer = tf.summary.create_file_writer(self.log_dir)
            with writer.as_default(step=epoch):
                tf.summary.text("alarms/posterior_collapse", text,
                                description=describe("posterior_collapse"))
            writer.close()

    def warn(self, text):
        """Issues the alarm's `text` as a `PosteriorCollapseWarning`."""
        warnings.warn(text, PosteriorCollapseWarning, stacklevel=2)

    def get_config(self):
        """Thresholds and log folder; the images are data, not configuration."""
        return {
            "min_active_units": self.min_active_units,
            "min_rate_per_active_unit": self.min_rate_per_active_unit,
            "log_dir": self.log_dir,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
