"""Pictures of a VAE: reconstructions, prior samples and latent traversals.

Built from the model's decoder and likelihood, laid out as labelled grids
(`keras_vae.grids`, re-exported here with `rate_distortion_plot` and
`save_figure` of `keras_vae.rate_distortion`, so `plotting` stays the one
name to import for pictures).
"""

import numpy as np

from keras_vae.grids import (  # noqa: F401 (public here too)
    FONT_SIZE, GRID_COLUMNS, MIN_SIDE, PAD_VALUE, comparison_grid, image_grid, labelled_comparison,
    labelled_grid, save_png, visible)
from keras_vae.rate_distortion import rate_distortion_plot, save_figure  # noqa: F401


def latent_traversals(model, z, dims, values):
    """Decodes `z` with one coordinate swept at a time.

    Args:
        model: a `keras_vae.VAE`.
        z: one latent vector [latent_dim], e.g. a posterior mean.
        dims: the latent dimensions to sweep.
        values: the values each swept dimension takes (e.g. -3..3, prior
            standard deviations).

    Returns:
        Float images [len(dims) * len(values), H, W, C] in [0, 1]: row-major,
        one row of `len(values)` images per dimension (`image_grid` with
        `ncols=len(values)` shows one dimension per row).
    """
    z = np.asarray(z, dtype="float32").reshape(-1)
    if z.shape[0] != model.latent_dim:
        raise ValueError(
            f"z has {z.shape[0]} values but the model's latent_dim is "
            f"{model.latent_dim}: pass one latent vector, e.g. a posterior mean."
        )
    bad = [d for d in dims if not 0 <= d < model.latent_dim]
    if bad:
        raise ValueError(
            f"Latent dimension {bad[0]} is out of range for latent_dim={model.latent_dim}."
        )
    values = np.asarray(values, dtype="float32")
    z_batch = np.tile(z, (len(dims) * len(values), 1))
    for i, dim in enumerate(dims):
        z_batch[i * len(values) : (i + 1) * len(values), dim] = values
    params = model.decoder(z_batch, training=False)
    return np.asarray(model.likelihood.mean(params))


#: Where traversals sweep each latent dimension, in prior standard deviations.
TRAVERSAL_VALUES = np.linspace(-2.5, 2.5, GRID_COLUMNS)


def reconstruction_grid(model, images, title=None):
    """The first GRID_COLUMNS `images` (row "data") above their reconstructions
    (row "reconstruction": the likelihood mean at the posterior mean), labelled."""
    x = np.asarray(images[:GRID_COLUMNS], dtype="float32")
    return labelled_grid([x, np.asarray(model(x))], ["data", "reconstruction"], title=title)


def diagnostic_images(model, images, kl_per_dim, num_dims=4, seed=0, train_images=None):
    """Labelled uint8 RGB grids [H', W', 3] that show what a VAE learned.

    Returns a dict:
        reconstructions_held_out: the first GRID_COLUMNS `images` (held-out)
            above their reconstructions.
        reconstructions_train: the same for `train_images`, if given.
        samples: 2·GRID_COLUMNS decoded prior samples (fixed by `seed`).
        traversals: one row per latent dimension, the `num_dims` with the
            highest KL (`kl_per_dim`, nats) first, each labelled with its KL:
            the first image's posterior mean with that dimension swept over
            TRAVERSAL_VALUES (prior standard deviations, the column labels).
    """
    x = np.asarray(images[:GRID_COLUMNS], dtype="float32")
    kl_per_dim = np.asarray(kl_per_dim)
    dims = [int(d) for d in np.argsort(-kl_per_dim)[:num_dims]]
    z = model.posterior_factors(x[:1]).loc.numpy()[0]
    samples = np.asarray(model.sample(2 * GRID_COLUMNS, seed=seed))
    traversals = _rows(latent_traversals(model, z, dims, TRAVERSAL_VALUES), len(dims))
    grids = {
        "reconstructions_held_out": reconstruction_grid(
            model, x, title="Held-out images (posterior mean)"),
        "samples": labelled_grid(
            [samples[:GRID_COLUMNS], samples[GRID_COLUMNS:]], ["samples", "samples"],
            title="Prior samples z ~ N(0, I), decoded (likelihood mean)"),
        "traversals": labelled_grid(
            traversals, [f"z{d}: {kl_per_dim[d]:.2f} nats" for d in dims],
            title="Traversals of a held-out code (columns: z_d in prior s.d.), highest KL first",
            column_labels=[f"{v:+.1f}" for v in TRAVERSAL_VALUES]),
    }
    if train_images is not None:
        grids["reconstructions_train"] = reconstruction_grid(
            model, train_images, title="Training images (posterior mean)")
    return grids


def _rows(images, num_rows):
    """[R·N, H, W, C] -> a list of R arrays [N, H, W, C] (row-major)."""
    return list(np.asarray(images).reshape(num_rows, -1, *np.shape(images)[1:]))
