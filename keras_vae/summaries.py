"""What the monitoring callbacks write to TensorBoard, and how.

The values of the tags (`derived_terms`: PSNR from the MSE, bits per
dimension from the ELBO; `latent_health`: active units and the rate they
carry, nats), the Custom Scalars layout that arranges them
(`custom_scalars_layout`), and the two ways of writing: `scalar`, which
attaches each tag's description from `keras_vae.glossary`, and `writes`,
which turns a failed write into one OSError naming the log folder. Shared by
`keras_vae.monitoring.VAETensorBoard` and `keras_vae.collapse.CollapseAlarm`.
"""

import functools

import numpy as np
import tensorflow as tf
from tensorboard.plugins.custom_scalar import layout_pb2

from keras_vae import evaluation
from keras_vae import files
from keras_vae.glossary import describe


def scalar(tag, value):
    """Writes `tag` = `value` with its description from `keras_vae.glossary`."""
    tf.summary.scalar(tag, float(value), description=describe(tag))


def derived_terms(model, terms):
    """`terms` (loss, distortion, rate, elbo, mse, …) plus psnr from mse and
    bits_per_dim from the ELBO (see METRICS)."""
    terms = dict(terms)
    if "mse" in terms:
        terms["psnr"] = float(evaluation.psnr(float(terms["mse"])))
    if "elbo" in terms:
        terms["bits_per_dim"] = evaluation.bits_per_dim(
            -float(terms["elbo"]), model.image_shape, evaluation.bin_width(model.likelihood))
    return terms


def latent_health(stats):
    """(active units, rate per active unit in nats) of `diagnostics.latent_statistics`."""
    active = int(stats["active_units"])
    rate = float(np.sum(np.asarray(stats["kl_per_dim"])[stats["active"]]))
    return active, rate / active if active else 0.0


def custom_scalars_layout():
    """The Custom Scalars dashboard: one screen per question, train and validation overlaid."""

    def chart(title, *regexes):
        return layout_pb2.Chart(
            title=title, multiline=layout_pb2.MultilineChartContent(tag=list(regexes)))

    def both(name):
        return rf"^(train|validation)/{name}$"

    return layout_pb2.Layout(category=[
        layout_pb2.Category(title="Rate, distortion and β (nats per image)", chart=[
            chart("rate KL(q‖p), nats — near 0: collapse", both("rate")),
            chart("distortion −E log p(x|z), nats — lower is better", both("distortion")),
            chart("β (loss = distortion + β·rate)", r"^train/beta$"),
            chart("ELBO, nats — higher is better", both("elbo")),
        ]),
        layout_pb2.Category(title="What β means: σ, MSE and PSNR", chart=[
            chart("σ of the Gaussian likelihood, pixel units", both("sigma")),
            chart("MSE, pixel units² — lower is better", both("mse")),
            chart("PSNR, dB — higher is better", both("psnr")),
        ]),
        layout_pb2.Category(title="Latent space and gradients", chart=[
            chart("active units (count)", r"^(validation|train)/active_units$"),
            chart("rate per active unit, nats", r"^(validation|train)/rate_per_active_unit$"),
            chart("gradient norms ‖∇distortion‖, ‖∇(β·rate)‖", r"^gradients/grad_norm_"),
            chart("‖∇(β·rate)‖ / ‖∇distortion‖", r"^gradients/grad_ratio$"),
        ]),
    ])


def writes(method):
    """A full disk or a missing permission while TensorBoard writes ends in
    one OSError naming `self.log_dir` (see `files.raise_write_error`)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except tf.errors.OpError as error:
            files.raise_write_error(error, self.log_dir)
            raise

    return wrapper
