"""Image grids, latent traversals, the rate–distortion plot and atomic PNG writes."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import keras_vae
from keras_vae import plotting


def test_image_grid_places_each_image_and_pads_with_white():
    images = np.zeros((5, 2, 3, 1), dtype="float32")
    images[4, 1, 2, 0] = 1.0  # last pixel of the 5th image
    images[1] = 0.5
    grid = plotting.image_grid(images, ncols=3, pad=1)
    # 2 rows of 2 px, 3 columns of 3 px, 1 px padding around and between.
    assert grid.shape == (2 * 3 + 1, 3 * 4 + 1, 3)
    assert grid.dtype == np.uint8
    # Image 4 is row 1, column 1: top = 1 + 3, left = 1 + 4.
    np.testing.assert_array_equal(grid[4 + 1, 5 + 2], [255, 255, 255])
    np.testing.assert_array_equal(grid[4, 5], [0, 0, 0])
    np.testing.assert_array_equal(grid[1, 5], [128, 128, 128])  # image 1, gray → RGB
    assert (grid[0] == plotting.PAD_VALUE).all() and (grid[:, 4] == plotting.PAD_VALUE).all()
    # The 6th cell (row 1, column 2) is blank padding.
    assert (grid[4:6, 9:12] == plotting.PAD_VALUE).all()


def test_image_grid_keeps_rgb_channels_and_clips():
    images = np.zeros((1, 1, 1, 3), dtype="float32")
    images[0, 0, 0] = [1.5, 0.2, -1.0]
    grid = plotting.image_grid(images, pad=0)
    np.testing.assert_array_equal(grid[0, 0], [255, 51, 0])


def test_image_grid_rejects_images_without_channel_axis():
    with pytest.raises(ValueError, match="C = 1 or 3"):
        plotting.image_grid(np.zeros((4, 8, 8)))


def test_comparison_grid_one_row_per_array_shorter_rows_padded():
    inputs = np.zeros((3, 2, 2, 1), dtype="float32")
    recons = np.ones((2, 2, 2, 3), dtype="float32")
    grid = plotting.comparison_grid([inputs, recons], pad=1)
    assert grid.shape == (2 * 3 + 1, 3 * 3 + 1, 3)
    assert (grid[1:3, 1:3] == 0).all()  # first row: inputs
    assert (grid[4:6, 1:3] == 255).all() and (grid[4:6, 4:6] == 255).all()
    assert (grid[4:6, 7:9] == plotting.PAD_VALUE).all()  # missing third reconstruction
    with pytest.raises(ValueError, match="one size"):
        plotting.comparison_grid([inputs, np.zeros((1, 4, 4, 1))])


def test_latent_traversals_shape_and_each_swept_dim_changes_the_decode():
    model = keras_vae.build_conv_vae((8, 8, 1), latent_dim=3, filters=(4,), seed=0)
    values = [-3.0, 0.0, 3.0]
    images = plotting.latent_traversals(model, np.zeros(3), dims=[0, 2], values=values)
    assert images.shape == (6, 8, 8, 1)
    assert images.min() >= 0 and images.max() <= 1
    # Same as decoding the edited vectors one at a time.
    z = np.zeros((1, 3), dtype="float32")
    z[0, 2] = 3.0
    expected = model.likelihood.mean(model.decoder(z)).numpy()[0]
    np.testing.assert_allclose(images[5], expected, atol=1e-6)
    for row in (images[:3], images[3:]):
        assert np.abs(row[0] - row[2]).max() > 1e-3
    with pytest.raises(ValueError, match="latent_dim"):
        plotting.latent_traversals(model, np.zeros(4), dims=[0], values=values)


def test_rate_distortion_plot_writes_a_png(tmp_path):
    points = [
        {"beta": 0.0, "rate": 30.0, "distortion": 40.0, "latent_dim": 8},
        {"beta": 1.0, "rate": 5.0, "distortion": 70.0, "latent_dim": 8},
        {"beta": 1.0, "rate": 6.0, "distortion": 65.0, "latent_dim": 16},
    ]
    path = plotting.rate_distortion_plot(points, tmp_path / "sub" / "rd.png", title="t")
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size[0] > 300
    assert os.listdir(tmp_path / "sub") == ["rd.png"]  # no temp file left
    with pytest.raises(ValueError, match="non-finite"):
        plotting.rate_distortion_plot(
            [{"beta": 0.0, "rate": float("nan"), "distortion": 1.0}], tmp_path / "x.png"
        )
    assert not (tmp_path / "x.png").exists()


def test_labelled_comparison_writes_one_png_and_checks_labels(tmp_path):
    rows = [np.zeros((4, 8, 8, 1)), np.ones((4, 8, 8, 3))]
    path = plotting.labelled_comparison(rows, ["input", "β=1"], tmp_path / "c.png", title="t")
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size[0] > png.size[1]
    with pytest.raises(ValueError, match="2 rows but 1 labels"):
        plotting.labelled_comparison(rows, ["input"], tmp_path / "d.png")
    assert os.listdir(tmp_path) == ["c.png"]


def test_save_png_round_trips_and_leaves_nothing_on_error(tmp_path, monkeypatch):
    image = np.arange(24, dtype="uint8").reshape(2, 4, 3)
    path = tmp_path / "a" / "grid.png"
    plotting.save_png(image, path)
    with Image.open(path) as png:
        np.testing.assert_array_equal(np.asarray(png), image)

    def fail(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        plotting.save_png(np.zeros((2, 2, 3), "uint8"), path)
    # The old file is untouched and no temporary file is left behind.
    with Image.open(path) as png:
        np.testing.assert_array_equal(np.asarray(png), image)
    assert os.listdir(path.parent) == ["grid.png"]
    with pytest.raises(ValueError, match="uint8"):
        plotting.save_png(np.zeros((2, 2, 3), "float32"), tmp_path / "b.png")


def test_labelled_grid_enlarges_small_images_and_draws_its_labels():
    data = np.zeros((3, 8, 8, 1), "float32")
    data[:, 0, 0] = 1.0  # The top-left pixel of each image is white.
    grid = plotting.labelled_grid([data, data], ["data", "reconstruction"], title="Title",
                                  column_labels=["a", "b", "c"])
    # 8 px → 64 px cells (factor 8, nearest-neighbour), 1 px padding; the grid
    # sits bottom right, labels to its left and the title above.
    height, width = 2 * 65 + 1, 3 * 65 + 1
    top, left = grid.shape[0] - height, grid.shape[1] - width
    assert top > 2 * plotting.FONT_SIZE and left > 50
    cell = grid[top + 66:top + 130, left + 131:left + 195]  # Row 2, column 3.
    assert (cell[:8, :8] == 255).all() and (cell[8:, :] == 0).all() and (cell[:, 8:] == 0).all()
    # The label margin and the title strip hold ink (text), not only padding.
    assert (grid[top:, :left] < 128).any() and (grid[:top, :] < 128).any()
    with pytest.raises(ValueError, match="2 rows but 1 labels"):
        plotting.labelled_grid([data, data], ["data"])


def test_importing_the_library_leaves_matplotlibs_backend_alone(tmp_path):
    # A notebook sets its inline backend before importing anything of ours;
    # "svg" stands in for it. The figures are still written.
    script = (
        "import matplotlib; matplotlib.use('svg')\n"
        "import keras_vae, keras_vae.plotting as p, pipelines.report\n"
        "p.rate_distortion_plot([{'beta': 1.0, 'rate': 2.0, 'distortion': 5.0}],\n"
        f"                       {str(tmp_path / 'rd.png')!r})\n"
        "print(matplotlib.get_backend())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "svg"
    assert (tmp_path / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plotting_keeps_its_public_names_after_the_split():
    """`keras_vae.plotting` stays the one name to import for pictures: the
    grids (`keras_vae.grids`) and the plot (`keras_vae.rate_distortion`)
    are importable from it as before."""
    from keras_vae import grids, plotting, rate_distortion

    for name in ("labelled_comparison", "labelled_grid", "image_grid", "comparison_grid",
                 "save_png", "GRID_COLUMNS", "PAD_VALUE", "FONT_SIZE"):
        assert getattr(plotting, name) is getattr(grids, name), name
    assert plotting.save_figure is rate_distortion.save_figure
    assert plotting.rate_distortion_plot is rate_distortion.rate_distortion_plot
    assert callable(plotting.latent_traversals) and plotting.GRID_COLUMNS == 8
