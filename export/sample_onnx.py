"""Decode prior samples with ONNX Runtime alone: no TensorFlow, Keras or keras_vae.

Needs only numpy, onnxruntime and Pillow, so it runs where the model is
deployed. It reads the export's facts (latent size, prior, value range) from
`export.json`, checks `decoder.onnx` against the sha256 recorded there, draws
z ~ p(z), decodes and writes a PNG grid:

    python export/sample_onnx.py RUN_DIR/export --n 16 --seed 0 --out samples.png
    python export/sample_onnx.py RUN_DIR/export --interpolate 1 2 --steps 8 --out walk.png

`--interpolate A B` walks in a straight line from A to B, each given as a
comma list of latent_dim numbers or as an integer seed of a prior draw.
"""

import argparse
import hashlib
import json
import math
import os
import pathlib
import sys

import numpy as np
import onnxruntime
from PIL import Image

MANIFEST_FILE = "export.json"
DECODER_FILE = "decoder.onnx"


class SampleError(Exception):
    """The export cannot be sampled; the one-line message says what to do."""


def read_export(path):
    """The manifest of the export in `path` (an export folder or its run folder)."""
    folder = pathlib.Path(path)
    if not (folder / MANIFEST_FILE).is_file() and (folder / "export" / MANIFEST_FILE).is_file():
        folder = folder / "export"
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
    except FileNotFoundError:
        raise SampleError(
            f"{str(path)!r} holds no {MANIFEST_FILE}: run `keras-vae export RUN_DIR` first"
        ) from None
    except json.JSONDecodeError as error:
        raise SampleError(
            f"{str(folder / MANIFEST_FILE)!r} is not valid JSON ({error}): re-export"
        ) from None
    if DECODER_FILE not in manifest["files"]:
        raise SampleError(f"{str(folder)!r} has no {DECODER_FILE}: export with --formats onnx")
    digest = hashlib.sha256((folder / DECODER_FILE).read_bytes()).hexdigest()
    if digest != manifest["files"][DECODER_FILE]:
        raise SampleError(
            f"{DECODER_FILE} in {str(folder)!r} does not match the sha256 in {MANIFEST_FILE}: "
            "it was changed after export; re-export"
        )
    return folder, manifest


class Decoder:
    """decoder.onnx on ONNX Runtime's CPU provider, with the export's facts."""

    def __init__(self, folder, manifest):
        self.facts = manifest["model"]
        self.session = onnxruntime.InferenceSession(
            str(folder / DECODER_FILE), providers=["CPUExecutionProvider"]
        )

    @property
    def latent_dim(self):
        return self.facts["latent_dim"]

    def prior_sample(self, n, seed):
        """n draws z ~ p(z), float32 [n, latent_dim]; the prior must be a Normal."""
        prior = self.facts["prior"]
        if prior["class_name"] != "Normal":
            raise SampleError(
                f"this sampler draws from Normal priors, the model's is {prior['class_name']}: "
                "pass latent vectors with --interpolate"
            )
        loc, scale = (np.asarray(prior["parameters"][k], "float32") for k in ("loc", "scale"))
        eps = np.random.default_rng(seed).standard_normal((n, self.latent_dim))
        return (loc + scale * eps).astype("float32")

    def __call__(self, z):
        """Images [n, H, W, C] (NHWC, in the export's value range) for latents z."""
        (images,) = self.session.run(["image"], {"z": np.asarray(z, "float32")})
        return images

    def to_uint8(self, images):
        low, high = self.facts["value_range"]
        scaled = (np.asarray(images) - low) / (high - low) * 255.0
        return np.clip(np.round(scaled), 0, 255).astype("uint8")


def grid(images, columns):
    """uint8 images [n, H, W, C] tiled row by row into one [rows·H, columns·W, C] array."""
    n, height, width, channels = images.shape
    rows = math.ceil(n / columns)
    tiles = np.zeros((rows * columns, height, width, channels), "uint8")
    tiles[:n] = images
    tiles = tiles.reshape(rows, columns, height, width, channels)
    return tiles.transpose(0, 2, 1, 3, 4).reshape(rows * height, columns * width, channels)


def write_png(array, path):
    """Writes an [H, W, 1 or 3] uint8 array as PNG, via a temporary file and a rename."""
    path = pathlib.Path(path)
    partial = path.with_name(f".{path.name}.partial")
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    image.save(partial, format="PNG")
    os.replace(partial, path)


def latent_vector(text, decoder):
    """A latent vector from "a,b,c,..." (latent_dim numbers) or an integer seed."""
    try:
        return decoder.prior_sample(1, int(text))[0]
    except ValueError:
        pass
    try:
        vector = np.array([float(v) for v in text.split(",")], "float32")
    except ValueError:
        vector = None
    if vector is None or vector.shape != (decoder.latent_dim,):
        raise SampleError(
            f"--interpolate takes an integer seed or {decoder.latent_dim} comma-separated "
            f"numbers, got {text!r}"
        )
    return vector


def build_parser():
    parser = argparse.ArgumentParser(
        prog="sample_onnx", description="Decode prior samples of an exported VAE with ONNX Runtime."
    )
    parser.add_argument("export_dir", metavar="EXPORT_DIR", help="RUN_DIR/export (or RUN_DIR)")
    parser.add_argument("--n", type=int, default=16, help="number of samples (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the prior draws (default 0)")
    parser.add_argument("--columns", type=int, default=None, help="grid width (default ≈ √n)")
    parser.add_argument("--out", default="samples.png", help="PNG to write (default samples.png)")
    parser.add_argument(
        "--interpolate", nargs=2, metavar=("A", "B"),
        help="decode a straight line from A to B (seeds or comma lists) instead of samples",
    )
    parser.add_argument(
        "--steps", type=int, default=8, help="images along --interpolate (default 8)"
    )
    return parser


def main(argv=None):
    """Runs the sampler; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.n < 1 or args.steps < 2 or (args.columns is not None and args.columns < 1):
        parser.error("--n and --columns must be >= 1 and --steps >= 2")
    try:
        decoder = Decoder(*read_export(args.export_dir))
        if args.interpolate:
            a, b = (latent_vector(text, decoder) for text in args.interpolate)
            t = np.linspace(0.0, 1.0, args.steps, dtype="float32")[:, None]
            z, columns = (1 - t) * a + t * b, args.steps
        else:
            z, columns = decoder.prior_sample(args.n, args.seed), math.ceil(math.sqrt(args.n))
        images = decoder.to_uint8(decoder(z))
        write_png(grid(images, args.columns or columns), args.out)
    except (SampleError, OSError) as error:
        print(f"sample_onnx: error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {len(images)} images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
