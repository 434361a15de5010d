"""Picture grids of image arrays: plain, compared row by row, and labelled.

Grids are uint8 RGB arrays [H', W', 3] (grayscale images are repeated over
three channels) separated by white padding. Labelled grids enlarge small
images nearest-neighbour and carry their labels as pixels, so a grid reads
alike as a PNG and as a TensorBoard image. PNGs are written atomically
(`keras_vae.files`), so an interrupted run never leaves a truncated PNG that
looks valid. NumPy and Pillow only: no TensorFlow, no model.
"""

import math

import numpy as np
from PIL import Image

from keras_vae import files

#: Images per row of the reconstruction and sample grids (and of
#: `image_grid` by default): the one grid size of the package.
GRID_COLUMNS = 8
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


def image_grid(images, ncols=GRID_COLUMNS, pad=1):
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
    """DejaVu Sans from matplotlib's data folder (found, not imported):
    Pillow's default font (Aileron) has no ‖, −, σ, β, ², × or → and draws a
    box for each in the labels of the compare report and TensorBoard."""
    import importlib.util
    import pathlib

    from PIL import ImageFont

    spec = importlib.util.find_spec("matplotlib")
    path = pathlib.Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    return ImageFont.truetype(str(path), FONT_SIZE)


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
