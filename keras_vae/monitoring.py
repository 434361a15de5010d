"""Monitoring a VAE while it trains: TensorBoard that explains itself.

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

and a Custom Scalars layout (`keras_vae.summaries.custom_scalars_layout`)
that puts rate, distortion and β for training and validation on one screen,
then σ, MSE and PSNR, then the latent space and the gradients. All
diagnostics run between steps on fixed images, never in the train step.

The posterior-collapse alarm lives in `keras_vae.collapse` and the glossary
in `keras_vae.glossary`; both are importable from here too.
"""

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.custom_scalar import summary as custom_scalar_summary

from keras_vae import diagnostics
from keras_vae import plotting
from keras_vae.collapse import CollapseAlarm, PosteriorCollapseWarning  # noqa: F401 (public here too)
from keras_vae.glossary import METRICS, Metric, describe  # noqa: F401 (public here too)
from keras_vae.summaries import custom_scalars_layout, derived_terms, latent_health, scalar, writes

#: Images used for the gradient norms: one batch's worth.
GRADIENT_BATCH = 64
#: The per-epoch terms read from `fit`'s logs (`val_`-prefixed for validation).
_LOGGED = ("loss", "distortion", "rate", "elbo", "mse", "beta", "sigma")


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

    @writes
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
                scalar(f"{group}/{name}", value)

    def _gradient_norms(self, step):
        norms = diagnostics.gradient_norms(self.model, self.images[:GRADIENT_BATCH])
        with self._writer.as_default(step=step):
            for name, value in norms.items():
                scalar(f"gradients/grad_norm_{name}", value)
            if norms["distortion"] > 0:
                scalar("gradients/grad_ratio", norms["beta_rate"] / norms["distortion"])

    @writes
    def on_train_begin(self, logs=None):
        with self._writer.as_default(step=0):
            tf.summary.experimental.write_raw_pb(
                custom_scalar_summary.pb(custom_scalars_layout()).SerializeToString())

    @writes
    def on_train_batch_end(self, batch, logs=None):
        if not self.update_freq:
            return
        step = self._step()
        if step % self.update_freq:
            return
        with self._writer.as_default(step=step):
            self._terms("train_batch", logs or {})
            scalar("train_batch/learning_rate", self._learning_rate())
        self._gradient_norms(step)

    @writes
    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        stats = diagnostics.latent_statistics(self.model, self.images)
        active, per_unit = latent_health(stats)
        with self._writer.as_default(step=epoch):
            self._terms("train", logs)
            scalar("train/learning_rate", self._learning_rate())
            self._terms("validation", logs, prefix="val_")
            split = self.images_split
            tf.summary.histogram(f"{split}/kl_per_dim", stats["kl_per_dim"],
                                 description=describe("kl_per_dim"))
            scalar(f"{split}/active_units", active)
            scalar(f"{split}/rate_per_active_unit", per_unit)
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
