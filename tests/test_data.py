import gzip
import logging
import math
import pathlib
import struct

import numpy as np
import pytest
from PIL import Image

from keras_vae import arrays
from keras_vae import data
from keras_vae import images


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Folders are prepared into the test's own cache, not the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


def _save(image, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


@pytest.fixture
def image_tree(tmp_path):
    """A nested folder with one image per mode and format, and 3 broken files."""
    _save(Image.new("L", (30, 20), 100), tmp_path / "gray.jpg")
    _save(Image.new("RGB", (24, 24), (10, 200, 30)), tmp_path / "rgb.png")
    _save(Image.new("RGB", (20, 20), (0, 0, 255)), tmp_path / "blue.BMP")
    _save(
        Image.new("RGB", (20, 30), (255, 0, 0)), tmp_path / "sub" / "red.webp"
    )
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[:, :10, 3] = 255  # Left half opaque black, right half transparent.
    _save(Image.fromarray(rgba), tmp_path / "sub" / "rgba.png")
    la = np.zeros((20, 20, 2), np.uint8)
    la[:10, :, 1] = 255  # Top half opaque black, bottom half transparent.
    _save(Image.fromarray(la, "LA"), tmp_path / "sub" / "la.png")
    frames = [Image.new("P", (20, 20), 0), Image.new("P", (20, 20), 1)]
    for frame in frames:
        frame.putpalette([0, 0, 0, 255, 255, 255])
    frames[0].save(
        tmp_path / "sub" / "anim.gif", save_all=True, append_images=frames[1:]
    )
    _save(
        Image.fromarray(np.full((20, 20), 32768, np.uint16)),
        tmp_path / "sub" / "deep" / "gray16.png",
    )
    jpeg = (tmp_path / "gray.jpg").read_bytes()
    (tmp_path / "sub" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (tmp_path / "sub" / "garbage.png").write_bytes(b"not a png" * 50)
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_load_image_folder_decodes_every_mode(image_tree, caplog):
    with caplog.at_level(logging.WARNING):
        images, sizes, files = data.load_image_folder(image_tree, image_size=16)
    assert images.shape == (8, 16, 16, 3) and images.dtype == np.uint8
    assert (sizes == 16).all()
    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "Skipped 2 " in warning.getMessage()
    assert "truncated.jpg" in warning.getMessage()
    image = {f.name: x.astype(int) for f, x in zip(files, images)}
    assert np.abs(image["gray.jpg"] - 100).max() <= 2
    assert (image["rgb.png"] == (10, 200, 30)).all()
    assert (image["blue.BMP"] == (0, 0, 255)).all()
    assert np.abs(image["red.webp"] - (255, 0, 0)).max() <= 8
    assert (image["rgba.png"][:, :5] == 0).all()
    assert (image["rgba.png"][:, -5:] == 255).all()  # Transparent → white.
    assert (image["la.png"][:5] == 0).all() and (
        image["la.png"][-5:] == 255
    ).all()
    assert (image["anim.gif"] == 0).all()  # The first frame, not the second.
    assert (image["gray16.png"] == 128).all()  # 32768 / 65535 ≈ 128 / 255.

    gray, _, _ = data.load_image_folder(image_tree, image_size=16, channels=1)
    assert gray.shape == (8, 16, 16, 1)


def test_exif_orientation_is_applied(tmp_path):
    """A phone photo stored 80 wide × 40 high with orientation 6 ("rotate 90°
    clockwise to view") is 40 wide × 80 high in every viewer."""
    stored = np.zeros((40, 80, 3), np.uint8)
    stored[:, :40] = 255  # Left half white as stored: the top half once rotated.
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation.
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    picture = data.load_image(tmp_path / "phone.jpg")
    assert picture.shape == (80, 40, 3)
    assert picture[:35].mean() > 240 and picture[45:].mean() < 15
    [whole], sizes, _ = data.load_image_folder(tmp_path, max_side=100)
    assert sizes.tolist() == [[80, 40]]


def test_hidden_files_are_skipped_and_the_warning_counts_every_skip(tmp_path, caplog):
    for name in ("a.png", ".hidden.png", "._a.png", ".thumbnails/b.png", "sub/c.png"):
        _save(Image.new("RGB", (8, 8), (0, 0, 0)), tmp_path / name)
    assert [p.relative_to(tmp_path).as_posix() for p in data.image_files(tmp_path)] == [
        "a.png", "sub/c.png"]
    for i in range(7):
        (tmp_path / f"broken{i}.jpg").write_bytes(b"not a jpeg")
    with caplog.at_level(logging.WARNING):
        images, _, _ = data.load_image_folder(tmp_path, image_size=8)
    assert len(images) == 2
    [warning] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "Skipped 7 unreadable" in warning
    assert "broken0.jpg, broken1.jpg, broken2.jpg, broken3.jpg, broken4.jpg and 2 more" in warning


def test_load_image_folder_keeps_whole_pictures_with_max_side(image_tree):
    images, sizes, files = data.load_image_folder(image_tree, max_side=15)
    size = {f.name: tuple(s) for f, s in zip(files, sizes)}
    assert size["gray.jpg"] == (10, 15) and size["red.webp"] == (15, 10)
    assert size["gray16.png"] == (15, 15)
    assert images.shape == (8, 15, 15, 3)


def test_load_image_crops_center_without_squashing(tmp_path):
    pixels = np.full((20, 40), 128, np.uint8)
    pixels[:, :10], pixels[:, 30:] = 0, 255  # Only the outer quarters differ.
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    image = data.load_image(tmp_path / "wide.png", image_size=20, channels=1)
    assert image.shape == (20, 20, 1)
    assert (image == 128).all()


@pytest.mark.parametrize("case", ["missing", "empty", "broken", "file"])
def test_unusable_folders_raise_one_line_errors(image_tree, tmp_path, case):
    if case == "empty":
        path = tmp_path / "empty"
        path.mkdir()
    elif case == "broken":
        path = image_tree / "sub"
        for name in [
            "rgba.png",
            "la.png",
            "anim.gif",
            "red.webp",
            "deep/gray16.png",
        ]:
            (path / name).unlink()
    else:
        path = {
            "missing": tmp_path / "missing",
            "file": image_tree / "rgb.png",
        }[case]
    with pytest.raises(data.DataError) as error:
        data.make_datasets(path, image_size=8, random_crops=False)
    assert "\n" not in str(error.value)
    assert "paintings, fashion-mnist, mnist5k, digits" in str(error.value)


def test_unknown_name_lists_embedded_sets():
    with pytest.raises(data.DataError, match="mnist5k, digits$"):
        data.make_datasets("no-such-set")


def test_split_indices_is_fixed_by_seed():
    train, val = data.split_indices(100, 0.1, seed=0)
    assert len(train) == 90 and len(val) == 10
    assert not set(train) & set(val)
    assert set(train) | set(val) == set(range(100))
    again, _ = data.split_indices(100, 0.1, seed=0)
    other, _ = data.split_indices(100, 0.1, seed=1)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)
    assert len(data.split_indices(5, 0.1)[1]) == 1  # Rounded up.
    with pytest.raises(data.DataError):
        data.split_indices(1, 0.1)


def test_array_sources_yield_their_pixels():
    x = np.random.default_rng(0).integers(0, 256, (50, 12, 12), np.uint8)
    train_ds, val_ds, info = data.make_datasets(
        x, image_size=12, channels=1, batch_size=16
    )
    assert (info.num_train, info.num_val, info.image_shape) == (
        45,
        5,
        (12, 12, 1),
    )
    batch = next(iter(train_ds)).numpy()
    assert batch.shape == (16, 12, 12, 1) and batch.dtype == np.float32
    _, val = data.split_indices(50, 0.1, seed=0)
    np.testing.assert_allclose(
        next(iter(val_ds)).numpy()[..., 0], x[val] / 255, atol=1e-6
    )

    _, val_ds, _ = data.make_datasets(x / 255, image_size=6, channels=3)
    batch = next(iter(val_ds)).numpy()
    assert batch.shape == (5, 6, 6, 3) and 0 <= batch.min() and batch.max() <= 1
    np.testing.assert_array_equal(batch[..., 0], batch[..., 2])


def test_non_square_arrays_are_center_cropped():
    x = np.zeros((4, 10, 30), np.uint8)
    x[:, :, 10:20] = 255
    _, val_ds, _ = data.make_datasets(
        x, image_size=5, channels=1, validation_split=0.5
    )
    assert (next(iter(val_ds)).numpy() == 1).all()


@pytest.mark.parametrize(
    "x",
    [
        np.zeros((4, 8), np.uint8),
        np.zeros((4, 8, 8, 2), np.uint8),
        np.full((4, 8, 8), 2.0),
    ],
)
def test_bad_arrays_raise_one_line_errors(x):
    with pytest.raises(data.DataError) as error:
        data.make_datasets(x, image_size=8)
    assert "\n" not in str(error.value)


def test_paintings_random_crops_are_seeded():
    train_ds, val_ds, info = data.make_datasets(
        "paintings", image_size=16, batch_size=8, crops_per_image=2, seed=3
    )
    assert info.num_train + info.num_val == 22 and info.num_val == 3
    assert (info.train_samples, info.val_samples) == (38, 15)
    epoch1 = np.concatenate(list(train_ds.as_numpy_iterator()))
    epoch2 = np.concatenate(list(train_ds.as_numpy_iterator()))
    assert epoch1.shape == (38, 16, 16, 3) and epoch1.dtype == np.float32
    assert 0 <= epoch1.min() and epoch1.max() <= 1
    assert not np.allclose(epoch1, epoch2)  # New crops every epoch.
    val1 = np.concatenate(list(val_ds.as_numpy_iterator()))
    np.testing.assert_array_equal(
        val1, np.concatenate(list(val_ds.as_numpy_iterator()))
    )

    same_ds, _, _ = data.make_datasets(
        "paintings", image_size=16, batch_size=8, crops_per_image=2, seed=3
    )
    np.testing.assert_array_equal(
        epoch1, np.concatenate(list(same_ds.as_numpy_iterator()))
    )
    other_ds, _, _ = data.make_datasets(
        "paintings", image_size=16, batch_size=8, crops_per_image=2, seed=4
    )
    assert not np.allclose(
        epoch1, np.concatenate(list(other_ds.as_numpy_iterator()))
    )


def test_random_crops_of_one_picture_change_every_epoch():
    x = np.arange(32 * 32, dtype=np.float64).reshape(1, 32, 32) / (32 * 32)
    train_ds, val_ds, info = data.make_datasets(
        x,
        image_size=8,
        channels=1,
        validation_split=0,
        random_crops=True,
        crops_per_image=4,
    )
    assert val_ds is None and info.train_samples == 4
    epoch1, epoch2 = (next(iter(train_ds)).numpy() for _ in range(2))
    assert epoch1.shape == (4, 8, 8, 1)
    assert not np.allclose(epoch1, epoch2)


def test_small_folders_default_to_random_crops(image_tree):
    train_ds, val_ds, info = data.make_datasets(
        image_tree, image_size=8, channels=1
    )
    assert (info.num_train, info.num_val) == (7, 1)
    assert info.train_samples == 7 * math.ceil(data.EPOCH_VIEWS / 7)
    assert info.val_samples == 5
    assert next(iter(val_ds)).shape == (5, 8, 8, 1)


def _write_idx(path, array, code):
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    content = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if path.suffix == ".gz" else open)(path, "wb").write(content)


@pytest.mark.parametrize("name", ["plain-idx3-ubyte", "zipped-idx3-ubyte.gz"])
def test_read_idx(tmp_path, name):
    images = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    _write_idx(tmp_path / name, images, 0x08)
    np.testing.assert_array_equal(data.read_idx(tmp_path / name), images)
    shorts = np.arange(-6, 6, dtype=np.int16).reshape(3, 4) * 1000
    _write_idx(tmp_path / name, shorts, 0x0B)
    np.testing.assert_array_equal(data.read_idx(tmp_path / name), shorts)


def test_read_idx_rejects_other_files(tmp_path):
    (tmp_path / "x").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(data.DataError, match="not an IDX file"):
        data.read_idx(tmp_path / "x")


def test_vendored_fashion_mnist(monkeypatch, tmp_path):
    images = data.read_idx(
        data.DATASETS_DIR / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"
    )
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    monkeypatch.setattr(arrays, "DEBIAN_FASHION_MNIST", tmp_path)  # Not installed.
    _, _, info = data.make_datasets("fashion-mnist", image_size=28, channels=1)
    assert (info.num_train, info.num_val) == (9000, 1000)


@pytest.mark.parametrize(
    "name, count, size", [("digits", 1797, 8), ("mnist5k", 5000, 28)]
)
def test_embedded_arrays(name, count, size):
    train_ds, val_ds, info = data.make_datasets(
        name, image_size=size, channels=1, batch_size=4096
    )
    assert info.num_train + info.num_val == count
    batch = next(iter(train_ds)).numpy()
    assert batch.shape[1:] == (size, size, 1)
    assert batch.min() == 0 and batch.max() == 1


def test_training_views_match_validation_views_of_training_pictures():
    _, val_ds, info = data.make_datasets("paintings", image_size=16, batch_size=64)
    views = np.concatenate(list(data.training_views("paintings", image_size=16, batch_size=64)))
    assert info.random_crops and len(views) == info.num_train * data.FIXED_VIEWS
    assert info.val_samples == info.num_val * data.FIXED_VIEWS
    assert views.shape[1:] == (16, 16, 3) and 0.0 <= views.min() <= views.max() <= 1.0
    _, _, digits_info = data.make_datasets("digits", image_size=8, channels=1)
    assert not digits_info.random_crops
    digit_views = np.concatenate(list(data.training_views("digits", 8, 1, batch_size=256)))
    assert len(digit_views) == digits_info.num_train


def test_symlinked_subfolders_are_followed_once_even_in_a_loop(tmp_path):
    elsewhere, root = tmp_path / "elsewhere", tmp_path / "root"
    for name in ("a/1.png", "a/2.png", "b/3.png"):
        _save(Image.new("RGB", (8, 8)), elsewhere / name)
    root.mkdir()
    (root / "a").symlink_to(elsewhere / "a", target_is_directory=True)
    (root / "b").symlink_to(elsewhere / "b", target_is_directory=True)
    (root / "a-again").symlink_to(elsewhere / "a", target_is_directory=True)
    (elsewhere / "a" / "loop").symlink_to(root, target_is_directory=True)
    (root / "dangling.png").symlink_to(tmp_path / "missing.png")
    names = [p.name for p in data.image_files(root)]
    assert sorted(names) == ["1.png", "2.png", "3.png"]  # Each folder read once.


def test_unreadable_subfolders_are_counted_and_named(tmp_path, monkeypatch, caplog):
    for name in ("ok/1.png", "locked/2.png", "deep/locked2/3.png"):
        _save(Image.new("RGB", (8, 8)), tmp_path / name)
    scandir = images.os.scandir

    def refusing(path):  # What a folder without read permission does (root may read all).
        if pathlib.Path(path).name.startswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(images.os, "scandir", refusing)
    with caplog.at_level(logging.WARNING):
        _, _, info = data.make_datasets(tmp_path, image_size=8, validation_split=0, cache=False)
        data.training_views(tmp_path, image_size=8, validation_split=0, cache=False)
    assert info.num_train == 1
    [warning] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "Could not open 2 subfolder(s)" in warning and "deep/locked2, locked" in warning


@pytest.mark.parametrize("cache", [True, False])
def test_a_small_folder_is_decoded_once_and_warned_about_once(image_tree, tmp_path, caplog,
                                                               monkeypatch, cache):
    decoded = []
    load = images.load_image

    def counting(path, *args):
        decoded.append(path)
        return load(path, *args)

    monkeypatch.setattr(images, "load_image", counting)
    with caplog.at_level(logging.WARNING):
        _, _, info = data.make_datasets(image_tree, image_size=8, cache_dir=tmp_path / "c",
                                        cache=cache)
        views = list(data.training_views(image_tree, image_size=8, cache_dir=tmp_path / "c",
                                         cache=cache))
    assert info.random_crops and len(np.concatenate(views)) == 7 * data.FIXED_VIEWS
    assert len(decoded) == len(set(decoded)) == 10  # 8 pictures and 2 broken files.
    [warning] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.startswith("Skipped 2 unreadable image file(s)")


def test_pictures_over_the_pixel_limit_are_skipped_with_their_reason(tmp_path, monkeypatch,
                                                                     caplog):
    _save(Image.new("RGB", (8, 8)), tmp_path / "small.png")
    _save(Image.new("L", (300, 200)), tmp_path / "huge.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 50_000)
    with caplog.at_level(logging.WARNING):
        pictures, _, files = data.load_image_folder(tmp_path, image_size=8)
    assert [f.name for f in files] == ["small.png"]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.endswith(": huge.png (300×200 px, over the limit of 50,000 pixels)")
