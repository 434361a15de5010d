"""Folders of many image files made from the embedded paintings, for `benchmarks.data_scaling`.

    python -m benchmarks.data_folders /tmp/keras-vae-data --entries 1000,20000,100000

Makes `DISTINCT` JPEGs of 256×256 px (random squares of the 22 embedded
paintings, resized) in `<out>/pool/`, and for each count a folder
`<out>/<count>/` of that many entries in subfolders of 1,000: symbolic links
to the pool's files, so 100,000 entries take 100,000 inodes, not 3 GB. Every
entry is a file the loaders list, stat and decode in full; only the disk
reads are fewer (the pool stays in the page cache), which favours no loader.
Existing folders are kept: a second call costs nothing.
"""

import argparse
import os
import pathlib

import numpy as np
from PIL import Image

from keras_vae import arrays
from keras_vae import images

DISTINCT = 1000  # Distinct JPEG files behind the links.
SIDE = 256  # px of each JPEG.
PER_FOLDER = 1000  # Entries per subfolder, as a photo collection would have.


def make_pool(out, seed=0):
    """`DISTINCT` random 256-px squares of the embedded paintings as JPEGs in
    `out/pool`; returns their paths."""
    pool = pathlib.Path(out) / "pool"
    paths = [pool / f"crop{i:04d}.jpg" for i in range(DISTINCT)]
    if all(p.exists() for p in paths):
        return paths
    pool.mkdir(parents=True, exist_ok=True)
    paintings = [images.load_image(f)
                 for f in images.image_files(arrays.DATASETS_DIR / "paintings")]
    rng = np.random.default_rng(seed)
    for path in paths:
        picture = paintings[rng.integers(len(paintings))]
        height, width = picture.shape[:2]
        side = int(rng.uniform(0.3, 1.0) * min(height, width))
        top, left = rng.integers(height - side + 1), rng.integers(width - side + 1)
        square = Image.fromarray(picture[top : top + side, left : left + side])
        square.resize((SIDE, SIDE), Image.LANCZOS).save(path, quality=90)
    return paths


def make_folder(out, count, pool):
    """`out/<count>/`: `count` links to the pool's files, PER_FOLDER a subfolder."""
    folder = pathlib.Path(out) / str(count)
    if folder.is_dir() and len(images.image_files(folder)) == count:
        return folder
    for i in range(count):
        link = folder / f"part{i // PER_FOLDER:03d}" / f"img{i:06d}.jpg"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not os.path.lexists(link):
            link.symlink_to(pool[i % len(pool)])
    return folder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder to write the pool and the folders in")
    parser.add_argument("--entries", default="1000,20000,100000",
                        help="comma-separated entry counts, one folder each")
    args = parser.parse_args(argv)
    pool = make_pool(args.out)
    for count in (int(c) for c in args.entries.split(",")):
        print(make_folder(args.out, count, pool))


if __name__ == "__main__":
    main()
