"""TensorBoard summaries of a VAE: the losses, β, the latent space and pictures.

`VAETensorBoard` writes to `log_dir/train` and `log_dir/validation`, with the
tag names of Keras's own TensorBoard callback where they overlap (`epoch_*`,
`batch_*`), so both read alike. Numbers are nats per image. Tags:

log_dir/train
    batch_loss, batch_distortion, batch_rate, batch_elbo, batch_beta,
    batch_learning_rate   every `update_freq` steps (x axis: optimizer step);
                          the running means of the epoch so far, as in the
                          progress bar (β and the learning rate: current).
    grad_norm/distortion, grad_norm/beta_rate
                          global L2 norms of ∇distortion and ∇(β·rate) on a
                          fixed batch, every `update_freq` steps and at each
                          epoch end (x axis: optimizer step).
    epoch_loss, epoch_distortion, epoch_rate, epoch_elbo, epoch_beta,
    epoch_learning_rate   per epoch (x axis: epoch).
log_dir/validation      (x axis: epoch)
    epoch_loss, epoch_distortion, epoch_rate, epoch_elbo, epoch_beta
    kl_per_dim            histogram over the latent dimensions of each one's
                          mean KL, nats.
    active_units          latent dimensions with Cov_x(E_q[z_d]) > 0.01
                          (Burda et al. 2016).
    reconstructions, samples, traversals
                          images every `image_every` epochs (see
                          `diagnostic_images`) of the held-out images.
log_dir/train           (x axis: epoch)
    reconstructions       the same grid for fixed *training* images, so a
                          code that cannot describe an unseen picture is not
                          mistaken for a model that cannot reconstruct.

All diagnostics run between steps on a fixed set of images, never in the
train step.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_vae import diagnostics
from keras_vae import plotting

_TERMS = ("loss", "distortion", "rate", "elbo", "beta")
#: Images per row of the reconstruction and sample grids.
GRID_COLUMNS = 8
#: Where traversals sweep each latent dimension, in prior standard deviations.
TRAVERSAL_VALUES = np.linspace(-2.5, 2.5, GRID_COLUMNS)
#: Images used for the gradient norms: one batch's worth.
GRADIENT_BATCH = 64
#: Pictures smaller than this (px) are enlarged, nearest-neighbour, to be seen.
MIN_SIDE = 64


def _visible(images):
    """`images` [N, H, W, C] repeated nearest-neighbour to at least MIN_SIDE px."""
    images = np.asarray(images, dtype="float32")
    factor = max(1, -(-MIN_SIDE // images.shape[1]))
    return images.repeat(factor, axis=1).repeat(factor, axis=2)


def reconstruction_grid(model, images):
    """The first GRID_COLUMNS `images` above their reconstructions, uint8 RGB."""
    x = np.asarray(images[:GRID_COLUMNS], dtype="float32")
    return plotting.comparison_grid([_visible(x), _visible(model(x))])


def diagnostic_images(model, images, kl_per_dim, num_dims=4, seed=0):
    """Three uint8 RGB grids [H', W', 3] that show what a VAE learned.

    Returns a dict:
        reconstructions: the first GRID_COLUMNS `images` above their
            reconstructions.
        samples: 2·GRID_COLUMNS decoded prior samples (fixed by `seed`).
        traversals: one row per latent dimension, the `num_dims` with the
            highest KL (`kl_per_dim`, nats) first: the first image's
            posterior mean with that dimension swept over TRAVERSAL_VALUES.
    """
    x = np.asarray(images[:GRID_COLUMNS], dtype="float32")
    dims = [int(d) for d in np.argsort(-np.asarray(kl_per_dim))[:num_dims]]
    z = model.posterior_factors(x[:1]).loc.numpy()[0]
    return {
        "reconstructions": reconstruction_grid(model, x),
        "samples": plotting.image_grid(
            _visible(model.sample(2 * GRID_COLUMNS, seed=seed)), ncols=GRID_COLUMNS
        ),
        "traversals": plotting.image_grid(
            _visible(plotting.latent_traversals(model, z, dims, TRAVERSAL_VALUES)),
            ncols=len(TRAVERSAL_VALUES),
        ),
    }


class VAETensorBoard(keras.callbacks.Callback):
    """Writes the summaries listed in this module's docstring.

    Args:
        log_dir: folder of the event files (sub-folders train/, validation/).
        images: fixed images [N, H, W, C] in [0, 1], preferably validation
            images, for the latent statistics (all N), the gradient norms (the
            first GRADIENT_BATCH) and the pictures (the first GRID_COLUMNS).
        train_images: optional fixed training images, whose reconstructions
            go to log_dir/train beside the held-out ones.
        update_freq: steps between per-step summaries; 0 for epoch ends only.
        image_every: epochs between pictures; 0 for none.
        seed: fixes the prior samples shown, so epochs compare.
    """

    def __init__(self, log_dir, images, update_freq=50, image_every=1, seed=0,
                 train_images=None):
        super().__init__()
        self.log_dir = str(log_dir)
        self.images = np.asarray(images, dtype="float32")
        self.train_images = None if train_images is None else np.asarray(train_images, "float32")
        if not len(self.images):
            raise ValueError("VAETensorBoard needs at least one image to summarise.")
        self.update_freq = int(update_freq)
        self.image_every = int(image_every)
        self.seed = seed
        self._writers = {}

    def _writer(self, name):
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(f"{self.log_dir}/{name}")
        return self._writers[name]

    def close(self):
        """Flushes and closes the event files; safe to call twice."""
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def _step(self):
        return int(self.model.optimizer.iterations.numpy())

    def _image_epoch(self, epoch):
        return bool(self.image_every) and (epoch + 1) % self.image_every == 0

    def _learning_rate(self):
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def _scalars(self, writer, prefix, logs, step, log_prefix=""):
        with self._writer(writer).as_default(step=step):
            for term in _TERMS:
                if log_prefix + term in logs:
                    tf.summary.scalar(f"{prefix}_{term}", float(logs[log_prefix + term]))

    def _gradient_norms(self, step):
        norms = diagnostics.gradient_norms(self.model, self.images[:GRADIENT_BATCH])
        with self._writer("train").as_default(step=step):
            for name, value in norms.items():
                tf.summary.scalar(f"grad_norm/{name}", value)

    def on_train_batch_end(self, batch, logs=None):
        if not self.update_freq:
            return
        step = self._step()
        if step % self.update_freq:
            return
        self._scalars("train", "batch", logs or {}, step)
        with self._writer("train").as_default(step=step):
            tf.summary.scalar("batch_learning_rate", self._learning_rate())
        self._gradient_norms(step)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self._scalars("train", "epoch", logs, epoch)
        with self._writer("train").as_default(step=epoch):
            tf.summary.scalar("epoch_learning_rate", self._learning_rate())
        self._scalars("validation", "epoch", logs, epoch, log_prefix="val_")
        self._gradient_norms(self._step())

        stats = diagnostics.latent_statistics(self.model, self.images)
        with self._writer("validation").as_default(step=epoch):
            tf.summary.histogram("kl_per_dim", stats["kl_per_dim"])
            tf.summary.scalar("active_units", stats["active_units"])
            if self._image_epoch(epoch):
                pictures = diagnostic_images(
                    self.model, self.images, stats["kl_per_dim"], seed=self.seed
                )
                for name, grid in pictures.items():
                    tf.summary.image(name, grid[None])
        if self._image_epoch(epoch) and self.train_images is not None:
            with self._writer("train").as_default(step=epoch):
                grid = reconstruction_grid(self.model, self.train_images)
                tf.summary.image("reconstructions", grid[None])
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        self.close()

