"""Pictures of a VAE: image grids, latent traversals and rate–distortion plots.

Grids are uint8 RGB arrays [H', W', 3] (grayscale images are repeated over
three channels) separated by white padding; every file is written atomically
(to a temporary file in the same folder, then `os.replace`), so an interrupted
run never leaves a truncated PNG that looks valid.
"""

import math

import matplotlib

matplotlib.use("Agg")  # Files only: no display needed, safe in threads and CI.

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from keras_vae import files  # noqa: E402

#: Colour of the padding between grid cells, uint8.
PAD_VALUE = 255


def _to_rgb_uint8(images):
    """[N, H, W, C] floats in [0, 1], C = 1 or 3 -> uint8 [N, H, W, 3]."""
    images = np.asarray(images, dtype="float32")
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"Expected images of shape [N, H, W, C] with C = 1 or 3, got "
            f"{images.shape}: add a batch axis or a channel axis."
        )
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return np.round(np.clip(images, 0.0, 1.0) * 255).astype("uint8")


def _tile(cells, ncols, pad):
    """Lays out equally sized uint8 RGB cells row-major; None leaves a blank cell."""
    height, width = next(c for c in cells if c is not None).shape[:2]
    nrows = math.ceil(len(cells) / ncols)
    grid = np.full(
        (nrows * (height + pad) + pad, ncols * (width + pad) + pad, 3),
        PAD_VALUE,
        dtype="uint8",
    )
    for i, cell in enumerate(cells):
        if cell is None:
            continue
        top = pad + (i // ncols) * (height + pad)
        left = pad + (i % ncols) * (width + pad)
        grid[top : top + height, left : left + width] = cell
    return grid


def image_grid(images, ncols=8, pad=1):
    """Tiles images [N, H, W, C] (floats in [0, 1]) into a uint8 RGB grid.

    Images fill rows of `ncols` left to right; the grid has
    min(N, ncols) columns, `pad` px of padding between and around cells.
    """
    images = _to_rgb_uint8(images)
    if not len(images):
        raise ValueError("image_grid got no images: pass at least one.")
    return _tile(list(images), min(len(images), ncols), pad)


def comparison_grid(rows, pad=1):
    """One grid row per array in `rows` (each [N_i, H, W, C] floats in [0, 1]).

    For side-by-side comparisons: inputs, then reconstructions; or one row per
    β. Rows may mix grayscale and RGB and hold different counts (shorter rows
    end in blank cells), but all images must share H and W.
    """
    rows = [_to_rgb_uint8(r) for r in rows]
    shapes = {r.shape[1:3] for r in rows if len(r)}
    if len(shapes) != 1:
        raise ValueError(
            f"comparison_grid needs images of one size (H, W) in every row, got "
            f"{sorted(shapes)}."
        )
    ncols = max(len(r) for r in rows)
    cells = [cell for r in rows for cell in list(r) + [None] * (ncols - len(r))]
    return _tile(cells, ncols, pad)


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


def save_png(image, path):
    """Writes a uint8 array [H, W] or [H, W, 3] to `path` as PNG, atomically."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(
            f"save_png takes a uint8 array [H, W] or [H, W, 3], got {image.dtype} "
            f"{image.shape}: build it with image_grid or comparison_grid."
        )
    picture = Image.fromarray(image)
    return files.write_atomically(path, lambda temp: picture.save(temp, format="PNG"))


def save_figure(figure, path, dpi=150):
    """Saves a matplotlib figure as PNG atomically, then closes it.

    The saved area grows to fit every label and title (`bbox_inches="tight"`).
    """
    try:
        return files.write_atomically(path, lambda temp: figure.savefig(
            temp, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05))
    finally:
        plt.close(figure)


def labelled_comparison(rows, labels, path, title=None, pad=1):
    """Saves a `comparison_grid` of `rows` with one text label left of each row.

    Pixels stay crisp (nearest-neighbour) however small the images are.
    """
    if len(labels) != len(rows):
        raise ValueError(f"Got {len(rows)} rows but {len(labels)} labels.")
    grid = comparison_grid(rows, pad=pad)
    cell = (grid.shape[0] - pad) / len(rows)
    # About 0.45 inch per row; `save_figure` adds room for labels and title.
    height = 0.45 * len(rows)
    figure, axes = plt.subplots(figsize=(height * grid.shape[1] / grid.shape[0], height))
    axes.set_position((0, 0, 1, 1))
    axes.imshow(grid, interpolation="nearest")
    axes.set_xticks([])
    axes.set_yticks([pad / 2 + cell * (i + 0.5) for i in range(len(rows))], labels)
    axes.tick_params(axis="y", length=0)
    for spine in axes.spines.values():
        spine.set_visible(False)
    if title:
        axes.set_title(title, fontsize=10)
    return save_figure(figure, path)


#: Label offsets (points) of the β labels, one per latent size, so labels
#: of runs with equal β but different latent sizes do not overlap.
_LABEL_OFFSETS = ((6, 6), (6, -14), (-34, 6), (-34, -14))
#: Points closer than this fraction of both axis ranges share one label.
_LABEL_MERGE = 0.03


def _labels(group, x_range, y_range):
    """[(label, point)]: consecutive near-coincident points share a label,
    e.g. "β=1, 3" where large β all collapse to rate ≈ 0."""
    labels = []
    for p in group:
        if labels:
            _, q = labels[-1]
            if (abs(p["rate"] - q["rate"]) < _LABEL_MERGE * x_range
                    and abs(p["distortion"] - q["distortion"]) < _LABEL_MERGE * y_range):
                labels[-1] = (f"{labels[-1][0]}, {p['beta']:.3g}", q)
                continue
        labels.append((f"β={p['beta']:.3g}", p))
    return labels


def _limits(values):
    """Axis limits: the data plus a 10 % margin, at least 1 nat wide."""
    low, high = float(np.min(values)), float(np.max(values))
    margin = 0.1 * max(high - low, 1.0)
    return low - margin, high + margin


def rate_distortion_plot(points, path, title=None):
    """Plots distortion against rate, one labelled point per trained model.

    Args:
        points: dicts with "beta", "rate" and "distortion" (nats per image),
            optionally "latent_dim" (points of one latent size are joined in
            β order, one colour per size).
        path: where to write the PNG.
        title: optional figure title.

    Every point lies on a dashed line rate + distortion = −ELBO (slope −1):
    moving along such a line trades distortion for rate at a constant ELBO,
    and lower-left lines are better ELBOs (Alemi et al. 2018, "Fixing a
    Broken ELBO").
    """
    points = list(points)
    if not points:
        raise ValueError("rate_distortion_plot got no points: train at least one model.")
    for p in points:
        if not (math.isfinite(p["rate"]) and math.isfinite(p["distortion"])):
            raise ValueError(
                f"The point at β={p['beta']} has a non-finite rate or distortion: "
                "leave failed runs out of the plot."
            )
    x_lim = _limits([p["rate"] for p in points])
    y_lim = _limits([p["distortion"] for p in points])

    figure, axes = plt.subplots(figsize=(6.4, 4.8), layout="constrained")
    xs = np.array(x_lim)
    for i, neg_elbo in enumerate(sorted({p["rate"] + p["distortion"] for p in points})):
        axes.plot(
            xs, neg_elbo - xs, linestyle="--", linewidth=0.8, color="0.6", zorder=1,
            label="rate + distortion = −ELBO" if i == 0 else None,
        )

    groups = {}
    for p in points:
        groups.setdefault(p.get("latent_dim"), []).append(p)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, latent_dim in enumerate(sorted(groups, key=lambda d: -1 if d is None else d)):
        color = colors[i % len(colors)]
        group = sorted(groups[latent_dim], key=lambda p: p["beta"])
        axes.plot(
            [p["rate"] for p in group], [p["distortion"] for p in group],
            marker="o", color=color, zorder=3,
            label=None if latent_dim is None else f"latent_dim = {latent_dim}",
        )
        for label, p in _labels(group, x_lim[1] - x_lim[0], y_lim[1] - y_lim[0]):
            axes.annotate(
                label, (p["rate"], p["distortion"]), xytext=_LABEL_OFFSETS[i % 4],
                textcoords="offset points", fontsize=9, color=color,
            )

    axes.set_xlim(*x_lim)
    axes.set_ylim(*y_lim)
    axes.set_xlabel("rate  KL(q(z|x) ‖ p(z))  [nats per image]")
    axes.set_ylabel("distortion  −E log p(x|z)  [nats per image]")
    axes.set_title(title or "Rate–distortion (validation)")
    axes.grid(True, linewidth=0.3, alpha=0.5)
    axes.legend(loc="best", fontsize=8, framealpha=0.9)
    return save_figure(figure, path)
