"""Pictures of a VAE: labelled image grids, latent traversals and rate–distortion plots.

Grids are uint8 RGB arrays [H', W', 3] (grayscale images are repeated over
three channels) separated by white padding. Labelled grids enlarge small
images nearest-neighbour and carry their labels as pixels, so a grid reads
alike as a PNG and as a TensorBoard image. Every file is written atomically
(to a temporary file in the same folder, then `os.replace`), so an interrupted
run never leaves a truncated PNG that looks valid.
"""

import math

import matplotlib
# Figures are built without pyplot, so the library never picks or switches
# matplotlib's backend (a notebook's inline plots stay as they were).
from matplotlib.figure import Figure
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
    """Saves a matplotlib figure as PNG atomically.

    The saved area grows to fit every label and title (`bbox_inches="tight"`).
    """
    return files.write_atomically(path, lambda temp: figure.savefig(
        temp, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05))


#: Pictures smaller than this (px) are enlarged, nearest-neighbour, to be seen.
MIN_SIDE = 64
#: Size of the labels drawn into labelled grids, px.
FONT_SIZE = 13
_INK = (0, 0, 0)


def visible(images, min_side=MIN_SIDE):
    """`images` [N, H, W, C] repeated nearest-neighbour to at least `min_side` px.

    An integer factor, so every pixel stays a crisp square: an 8×8 digit
    becomes 64×64 instead of a blur or a speck.
    """
    images = np.asarray(images, dtype="float32")
    factor = max(1, -(-min_side // images.shape[1]))
    return images.repeat(factor, axis=1).repeat(factor, axis=2)


def _font():
    """DejaVu Sans, which matplotlib ships: Pillow's default font (Aileron)
    has no ‖, −, σ, β, ², × or →, and draws boxes for the labels of the report."""
    from matplotlib import font_manager
    from PIL import ImageFont

    path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))
    return ImageFont.truetype(path, FONT_SIZE)


def labelled_grid(rows, labels, title=None, column_labels=None, pad=1, min_side=MIN_SIDE):
    """A `comparison_grid` of `rows` with a text label left of each row, uint8 RGB.

    Images are enlarged nearest-neighbour to at least `min_side` px (see
    `visible`); `title` goes above the grid and `column_labels` (one per
    column) between the title and the first row. The labels are pixels, so
    the same array reads alike as a PNG and as a TensorBoard image.
    """
    from PIL import Image, ImageDraw

    if len(labels) != len(rows):
        raise ValueError(f"Got {len(rows)} rows but {len(labels)} labels.")
    grid = comparison_grid([visible(r, min_side) for r in rows], pad=pad)
    font = _font()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def width(text):
        return int(measure.textlength(str(text), font=font))

    line = FONT_SIZE + 6
    margin = 8 + max([width(label) for label in labels] + [0])
    top = (line if title else 0) + (line if column_labels is not None else 0)
    total_width = max(margin + grid.shape[1], width(title or "") + 8)
    canvas = Image.new("RGB", (total_width, top + grid.shape[0]), (PAD_VALUE,) * 3)
    canvas.paste(Image.fromarray(grid), (margin, top))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((4, 3), title, fill=_INK, font=font)
    cell_height = (grid.shape[0] - pad) / len(rows)
    for i, label in enumerate(labels):
        middle = top + pad / 2 + cell_height * (i + 0.5)
        draw.text((margin - 4, middle), str(label), fill=_INK, font=font, anchor="rm")
    if column_labels is not None:
        ncols = max(len(r) for r in rows)
        cell_width = (grid.shape[1] - pad) / ncols
        for j, label in enumerate(column_labels[:ncols]):
            centre = margin + pad / 2 + cell_width * (j + 0.5)
            draw.text((centre, top - 3), str(label), fill=_INK, font=font, anchor="ms")
    return np.asarray(canvas)


def labelled_comparison(rows, labels, path, title=None, pad=1):
    """Saves a `labelled_grid` of `rows` (one text label left of each row) as PNG.

    Pixels stay crisp (nearest-neighbour) however small the images are.
    """
    return save_png(labelled_grid(rows, labels, title=title, pad=pad), path)


#: Images per row of the reconstruction and sample grids.
GRID_COLUMNS = 8
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

    figure = Figure(figsize=(6.4, 4.8), layout="constrained")
    axes = figure.subplots()
    xs = np.array(x_lim)
    for i, neg_elbo in enumerate(sorted({p["rate"] + p["distortion"] for p in points})):
        axes.plot(
            xs, neg_elbo - xs, linestyle="--", linewidth=0.8, color="0.6", zorder=1,
            label="rate + distortion = −ELBO" if i == 0 else None,
        )

    groups = {}
    for p in points:
        groups.setdefault(p.get("latent_dim"), []).append(p)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
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
