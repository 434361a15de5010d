"""The memory a training run needs, estimated from its config before any of it
is allocated, against the memory the machine has available.

Without it, `--image-size 4096` passes every check and fills the memory with
its summary images, and `--latent-dim 3000000000` ends in a long
ResourceExhaustedError traceback. The estimate counts, in float32 bytes:

- parameters: the convolutional encoder and decoder of
  `keras_vae.build_conv_vae`, each weight held 4 times (the weight, its
  gradient, Adam's two moments);
- activations: every layer's output at the batch size, 3 times (forward
  pass, gradients, temporaries);
- the summary images: `SUMMARY_IMAGES` validation images, their
  reconstructions and the grids drawn from them (3 times the images);
- the data: a folder's pictures decoded as uint8, at the image size, or kept
  whole (up to twice the image size a side) for random crops. Embedded sets
  are held at their native size, a few MB, and not counted.

Importing this module does not import TensorFlow.

Example:

    >>> estimate(config)["parameters"] > 0
    True
"""

import os
import pathlib

from pipelines import config as config_lib

#: Validation images kept for TensorBoard's pictures (see `pipelines.train`).
SUMMARY_IMAGES = 256
FLOAT = 4  # bytes
#: The settings the estimate grows with: {config key: flag}.
FLAGS = {"data.image_size": "--image-size", "model.latent_dim": "--latent-dim",
         "train.batch_size": "--batch-size"}


def estimate(config, data_pictures=0):
    """{part: bytes} for "parameters", "activations", "summary images" and
    "data" (`data_pictures` decoded folder pictures)."""
    d, m = config["data"], config["model"]
    side, channels, latent = d["image_size"], d["channels"], m["latent_dim"]
    widths, k = [channels, *m["filters"]], m["kernel_size"]
    flat = (side / 2 ** len(m["filters"])) ** 2 * m["filters"][-1]
    convolutions = sum(k * k * a * b + b for a, b in zip(widths, widths[1:]))
    # Encoder and decoder convolutions, the dense layers flat -> 2L and L -> flat,
    # the decoder's last 3×3 convolution.
    parameters = 2 * convolutions + flat * 3 * latent + 2 * latent + flat + 9 * widths[1] * channels
    maps = sum((side / 2**i) ** 2 * w for i, w in enumerate(widths[1:], 1))
    per_image = 2 * side * side * channels + 2 * maps + 3 * latent
    # Folders of under 100 files default to random crops, pictures kept whole.
    crops = d.get("random_crops")
    crops = data_pictures < 100 if crops is None else crops
    return {
        "parameters": 4 * FLOAT * parameters,
        "activations": 3 * FLOAT * config["train"]["batch_size"] * per_image,
        "summary images": 3 * FLOAT * SUMMARY_IMAGES * side * side * channels,
        "data": data_pictures * (max(256, 2 * side) if crops else side) ** 2 * channels,
    }


def available():
    """Bytes this process may still allocate: /proc/meminfo's MemAvailable,
    lowered to a cgroup's limit; None where neither can be read."""
    values = []
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                values.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        cgroup = pathlib.Path("/sys/fs/cgroup")
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            values.append(int(limit) - int((cgroup / "memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return min(values) if values else None


def check(config, free=None):
    """Raises ValueError, one line naming the flag to lower, when the run of
    `config` would need more memory than is `free` (default: `available()`)."""
    free = available() if free is None else free
    if free is None:
        return
    parts = estimate(config, _folder_pictures(config["data"]["source"]))
    needed = sum(parts.values())
    if needed <= free:
        return
    flag, key = _flag_to_lower(config)
    largest = ", ".join(f"{name} {_gb(size)}" for name, size in
                        sorted(parts.items(), key=lambda kv: -kv[1]) if size >= 0.05 * needed)
    section, _, name = key.partition(".")
    raise ValueError(
        f"this run needs about {_gb(needed)} of memory ({largest}) but {_gb(free)} is "
        f"available: lower {flag} (now {config[section][name]})"
    )


def _flag_to_lower(config):
    """(flag, key) of the setting to lower: the one whose return to its
    default saves the most memory (the setting that made the run big), or,
    all at or below their defaults, whose halving saves the most."""
    total = sum(estimate(config).values())

    def saved(key, value):
        section, _, name = key.partition(".")
        smaller = {**config, section: {**config[section], name: value}}
        return total - sum(estimate(smaller).values())

    def default(key):
        section, _, name = key.partition(".")
        return min(config[section][name], config_lib.DEFAULTS[section][name])

    key = max(FLAGS, key=lambda k: saved(k, default(k)))
    if saved(key, default(key)) <= 0:
        key = max(FLAGS, key=lambda k: saved(k, config[k.split(".")[0]][k.split(".")[1]] / 2))
    return FLAGS[key], key


def _folder_pictures(source):
    """How many image files the folder `source` holds; 0 for an embedded set."""
    if not os.path.isdir(str(source)):
        return 0
    from keras_vae import data as data_lib  # Here: `keras_vae` imports TensorFlow.

    return len(data_lib.image_files(source))


def _gb(size):
    return f"{size / 1e9:.1f} GB" if size >= 1e8 else f"{size / 1e6:.0f} MB"
