"""A folder prepared once (`keras_vae.cache`) and streamed (`keras_vae.data`):
the same images as decoding the folder into memory, a changed file prepared
again, nothing trusted after an interrupted or failed preparation, and
workers reading disjoint parts."""

import logging
import os
import socket

import numpy as np
import pytest
from PIL import Image

from keras_vae import cache
from keras_vae import data
from keras_vae import images

SIDE = 8


@pytest.fixture
def folder(tmp_path):
    """24 lossless pictures of random pixels and sizes, in two subfolders."""
    rng = np.random.default_rng(0)
    root = tmp_path / "pictures"
    for i in range(24):
        path = root / f"part{i % 2}" / f"p{i:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        height, width = rng.integers(SIDE, 3 * SIDE, 2)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8)).save(path)
    return root


def _epoch(ds):
    return np.concatenate(list(ds.as_numpy_iterator()))


def _make(source, **kwargs):
    kwargs = {"image_size": SIDE, "batch_size": 5, "seed": 3, **kwargs}
    return data.make_datasets(source, **kwargs)


@pytest.mark.parametrize("random_crops", [False, True])
def test_a_cached_or_streamed_folder_gives_the_images_of_the_folder_in_memory(
        folder, tmp_path, monkeypatch, random_crops):
    """The pipelines over the decoded array (the loader before the cache) and
    over the prepared folder, or the folder streamed uncached, yield the
    same pixels in the same order for one seed, epoch after epoch."""
    monkeypatch.setattr(cache, "SYNC_BYTES", 1000)  # Synced and dropped as big folders are.
    if random_crops:  # Pictures decoded whole into memory, as before the cache.
        expected = _make(folder, random_crops=True, crops_per_image=2, cache=False)
    else:  # The pipeline over the array of the decoded squares.
        squares, _, _ = images.load_image_folder(folder, SIDE)
        expected = _make(squares, random_crops=False)
    cached = _make(folder, random_crops=random_crops, crops_per_image=2,
                   cache_dir=tmp_path / "cache")
    streamed = _make(folder, random_crops=random_crops, crops_per_image=2, cache=False)
    assert cached[2].cache and streamed[2].cache is None
    first = [_epoch(expected[0]), _epoch(expected[1])]  # Each pipeline's first pass.
    for other in (cached, streamed):
        for ds in (0, 1):
            np.testing.assert_array_equal(first[ds], _epoch(other[ds]))
    second = _epoch(expected[0])  # Reshuffled, or new crops, every epoch:
    assert len(second) == cached[2].train_samples and not np.array_equal(second, first[0])
    np.testing.assert_array_equal(second, _epoch(cached[0]))  # in the same sequence.


def test_the_cache_is_reused_and_a_changed_file_prepares_it_again(folder, tmp_path):
    root = tmp_path / "cache"
    _, val_ds, info = _make(folder, random_crops=False, cache_dir=root, validation_split=0.5)
    before = _epoch(val_ds)
    assert [p.name for p in root.iterdir()] == [os.path.basename(info.cache)]
    calls = []
    spy = images.try_load

    def counting(*args):
        calls.append(args[0])
        return spy(*args)

    images.try_load = counting
    try:
        _, again, info_again = _make(folder, random_crops=False, cache_dir=root,
                                     validation_split=0.5)
        np.testing.assert_array_equal(_epoch(again), before)
        assert info_again.cache == info.cache and calls == []  # Nothing decoded again.
        changed = sorted(folder.rglob("*.png"))[0]
        Image.new("RGB", (SIDE, SIDE), (255, 0, 0)).save(changed)
        _, after_ds, info_after = _make(folder, random_crops=False, cache_dir=root,
                                        validation_split=0.5)
    finally:
        images.try_load = spy
    assert info_after.cache != info.cache and len(calls) == 24  # Prepared again, once,
    assert [p.name for p in root.iterdir()] == [os.path.basename(info_after.cache)]  # replaced.
    after = _epoch(after_ds)
    assert after.shape == before.shape and not np.array_equal(after, before)


def test_an_interrupted_preparation_leaves_nothing_trusted(folder, tmp_path, monkeypatch):
    root = tmp_path / "cache"
    decode = images.try_load
    seen = []

    def interrupted(*args):
        seen.append(args)
        if len(seen) == 10:
            raise KeyboardInterrupt
        return decode(*args)

    monkeypatch.setattr(images, "try_load", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _make(folder, random_crops=False, cache_dir=root)
    assert list(root.iterdir()) == []  # The temporary folder is gone.
    monkeypatch.setattr(images, "try_load", decode)

    # What a killed process (kill -9) leaves: its temporary folder, never read,
    # deleted by the next preparation on this host.
    listing = images.scan(folder)
    spec = cache.Spec(SIDE, data.MAX_SIDE, 3)
    key = spec.key(listing)
    leftover = root / f".{key}.{socket.gethostname()}.999999999.tmp"
    leftover.mkdir()
    (leftover / cache.PIXELS).write_bytes(b"\0" * 100)
    # A prepared folder whose pixels were cut short (a disk error, a hand edit).
    _, _, info = _make(folder, random_crops=False, cache_dir=root)
    assert not leftover.exists()
    pixels = os.path.join(info.cache, cache.PIXELS)
    os.truncate(pixels, os.path.getsize(pixels) - 1)
    assert cache._open(root / key, key) is None and not (root / key).exists()
    _, val_ds, info = _make(folder, random_crops=False, cache_dir=root)
    assert os.path.getsize(pixels) == 24 * SIDE * SIDE * 3 and len(_epoch(val_ds)) == 3


@pytest.mark.parametrize("when", ["before", "while"])
def test_a_full_disk_streams_uncached_after_one_line(folder, small_disk, monkeypatch,
                                                     caplog, when):
    disk = small_disk(1)
    if when == "while":  # The estimate passes; 24 × 256² × 3 bytes fill 1 MB.
        monkeypatch.setattr(cache, "MARGIN_BYTES", -(2**30))
    with caplog.at_level(logging.WARNING):
        train_ds, _, info = _make(folder, image_size=256, random_crops=False,
                                  cache_dir=disk / "cache", batch_size=4)
    assert info.cache is None and next(iter(train_ds)).shape == (4, 256, 256, 3)
    [warning] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "\n" not in warning and "streaming the folder uncached" in warning
    assert "space" in warning or "No space" in warning
    assert [p.name for p in (disk / "cache").iterdir()] == []  # Nothing half-written.


def test_two_workers_read_disjoint_parts_that_cover_the_training_pictures(folder, tmp_path):
    def pictures(ds):
        return {bytes(x) for x in _epoch(ds)}

    common = {"random_crops": False, "cache_dir": tmp_path / "cache"}
    everything, _, info = _make(folder, **common)
    parts = [_make(folder, num_workers=2, worker_index=w, **common) for w in (0, 1)]
    first, second = (pictures(train_ds) for train_ds, _, _ in parts)
    assert len(first) + len(second) == info.num_train == len(pictures(everything))
    assert not first & second and first | second == pictures(everything)
    assert all(part[2].train_samples == info.train_samples for part in parts)
    with pytest.raises(data.DataError, match="worker_index"):
        _make(folder, num_workers=2, worker_index=2, **common)


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.default_dir() == tmp_path / "keras-vae"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # Ignored, as the spec says.
    assert cache.default_dir().parent.name == ".cache"


def test_where_pictures_are_cached_does_not_make_another_run():
    from pipelines import config as config_lib

    default = config_lib.load_config(overrides={"data.source": "digits"})
    other = config_lib.load_config(overrides={"data.source": "digits", "data.cache": False,
                                              "data.cache_dir": "/elsewhere"})
    assert config_lib.run_name(default) == config_lib.run_name(other)
    assert config_lib.differences(default, other) == []


def test_an_unreadable_file_met_while_streaming_is_dropped_with_one_warning(folder, caplog):
    broken = folder / "part0" / "broken.png"
    broken.write_bytes(b"not a png")
    train_ds, _, info = _make(folder, random_crops=False, cache=False, validation_split=0)
    with caplog.at_level(logging.WARNING):
        epochs = [_epoch(train_ds), _epoch(train_ds)]
    assert info.num_train == 25 and [len(e) for e in epochs] == [24, 24]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert str(broken) in warning and "\n" not in warning
