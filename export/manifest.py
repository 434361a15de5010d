"""`export.json`: what was exported, from which run, by which library versions.

Consumers (e.g. `export/sample_onnx.py`) read the model's facts from here
instead of importing keras_vae; the sha256 of every file lets them check that
what they deploy is what was verified.
"""

import datetime
import importlib.metadata
import json
import pathlib
import platform

import keras
import numpy as np

import keras_vae
from keras_vae import likelihoods
from export.common import one_line
from export.runfolder import sha256

FORMAT_VERSION = 1
CHANNEL_ORDER = "NHWC"
PACKAGES = (
    "tensorflow", "keras", "tensorflow-probability", "tf2onnx", "onnx", "onnxruntime",
    "ai-edge-litert", "numpy",
)


def versions():
    """Versions of every library the export used."""
    found = {name: importlib.metadata.version(name) for name in PACKAGES}
    return {**found, "keras_vae": keras_vae.__version__, "python": platform.python_version()}


def likelihood_facts(likelihood):
    """The likelihood's class name and config; for a Gaussian also σ in pixel units."""
    layer_keys = set(keras.layers.Layer().get_config())  # name, dtype, trainable, ...
    facts = {"name": type(likelihood).__name__}
    facts.update({k: v for k, v in likelihood.get_config().items() if k not in layer_keys})
    if isinstance(likelihood, likelihoods.Gaussian):
        # For learned/optimal σ this is the trained value, which decoding with
        # noise (x ~ N(image, σ²)) needs; the exported graph returns the mean only.
        facts["sigma_value"] = float(likelihood.scale())
    return facts


def prior_facts(model):
    """The prior p(z) as {"class_name", "parameters"}; N(0, I) unless the model says otherwise."""
    d = int(model.latent_dim)
    default = {"class_name": "Normal", "parameters": {"loc": [0.0] * d, "scale": [1.0] * d}}
    return model.get_config()["prior"] or default


def model_facts(model, beta):
    """The facts a consumer needs to feed the decoder and read its images.

    `beta` is `common.beta_facts(config)`: the schedule the run was trained with.
    """
    return {
        "latent_dim": int(model.latent_dim),
        "image_shape": [int(s) for s in model.image_shape],
        "channel_order": CHANNEL_ORDER,
        "value_range": [float(v) for v in model.likelihood.value_range],
        "prior": prior_facts(model),
        "likelihood": likelihood_facts(model.likelihood),
        "beta_schedule": beta["schedule"],
        "beta_config": beta["config"],
        "beta_final": float(model.beta.numpy()),
        "objective": model.objective,
        # The networks' training precision; every exported artifact is float32
        # (or the LiteRT precision its name says) whatever it was. The run's
        # metrics.json adds what was asked for and the CPU/GPU features that chose it.
        "training_precision": {"policy": model.precision},
    }


def latent_kl(model, run_dir, images=None):
    """KL(q(z_d|x) ‖ p(z_d)) of each latent dimension, nats, and their order.

    Measured on `images(run_dir)`: a function the caller passes, returning
    (images, a phrase saying which), so that this stage needs no knowledge of
    how a run's data is loaded (`keras-vae export` passes
    `pipelines.exportcmd.latent_images`: the run's first validation images,
    as its traversals use). Highest KL first, so consumers (the web page's
    sliders) show first the dimensions the model uses. Without `images`, or
    when it raises ValueError or OSError (no config, no data), the dimensions
    keep their index order and `note` says why.
    """
    from keras_vae import diagnostics

    try:
        if images is None:
            raise ValueError("none given")
        batch, what = images(run_dir)
    except (ValueError, OSError) as error:  # keras_vae.data.DataError is a ValueError.
        return {
            "kl_per_dim": None, "order": list(range(int(model.latent_dim))),
            "note": f"no data to measure it on ({one_line(error)}): dimensions in index order",
        }
    kl = diagnostics.latent_statistics(model, batch)["kl_per_dim"]
    return {
        "kl_per_dim": [round(float(k), 6) for k in kl],
        "order": [int(d) for d in np.argsort(-np.asarray(kl))],
        "units": "nats",
        "data": what,
    }


def onnx_metadata(facts, opset):
    """`facts` flattened to the strings ONNX `metadata_props` hold."""
    return {
        "latent_dim": str(facts["latent_dim"]),
        "image_shape": ",".join(map(str, facts["image_shape"])),
        "channel_order": facts["channel_order"],
        "value_range": ",".join(f"{v:g}" for v in facts["value_range"]),
        "prior": json.dumps(facts["prior"], sort_keys=True),
        "likelihood": facts["likelihood"]["name"],
        "likelihood_config": json.dumps(facts["likelihood"], sort_keys=True),
        "beta_schedule": facts["beta_schedule"],
        "beta_final": f"{facts['beta_final']:g}",
        "opset": str(opset),
        "keras_vae_version": keras_vae.__version__,
    }


def file_hashes(folder):
    """{relative POSIX path: sha256} for every file under `folder`, sorted."""
    folder = pathlib.Path(folder)
    return {
        path.relative_to(folder).as_posix(): sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def build(facts, artifacts, opset, folder):
    """The manifest for the export being assembled in `folder`."""
    return {
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": facts,
        "onnx_opset": opset,
        "artifacts": artifacts,
        "files": file_hashes(folder),
        "versions": versions(),
    }


def write(manifest, path):
    """Writes `manifest` as JSON to `path`."""
    pathlib.Path(path).write_text(json.dumps(manifest, indent=2) + "\n")
