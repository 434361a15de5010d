"""What every number keras-vae logs means: its unit and which way is better.

`METRICS` is the one table, keyed by metric name (the last part of a
TensorBoard tag); `monitoring.VAETensorBoard` writes each entry as its tag's
description, and anything else that needs the words reads it with
`describe` (`keras_vae.monitoring` re-exports both). Plain Python: no
TensorFlow.

Example:

    >>> METRICS["rate"].unit
    'nats per image'
    >>> describe("validation/psnr").startswith("**PSNR** [dB]")
    True
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Metric:
    """What a logged number means: `title`, `unit`, which way is `better`, and `meaning`."""

    title: str
    unit: str
    better: str
    meaning: str

    def description(self):
        """Markdown, as TensorBoard shows it under the chart."""
        return f"**{self.title}** [{self.unit}] — {self.better}. {self.meaning}"


_NATS = "nats per image"
#: Every number the monitoring writes, keyed by metric name (the last part of
#: its TensorBoard tag).
METRICS = {
    "loss": Metric(
        "loss", _NATS, "lower is better, but only between runs of the same β",
        "distortion + β·rate: what gradient descent minimises. It moves with β by "
        "construction, so compare runs and epochs by `elbo`."),
    "distortion": Metric(
        "distortion −E_q[log p(x|z)]", _NATS, "lower is better",
        "The reconstruction term, summed over pixels and channels. A Gaussian likelihood is "
        "a density on continuous pixels, which can exceed 1: with σ below 1/√(2π) ≈ 0.4 a "
        "good reconstruction has a *negative* distortion; the discretised logistic mixture's "
        "is a probability of 8-bit levels, never negative. `bits_per_dim` puts it on the "
        "8-bit scale."),
    "rate": Metric(
        "rate KL(q(z|x) ‖ p(z))", _NATS,
        "neither: it is the information z carries about x; near 0 the decoder ignores z "
        "(posterior collapse)",
        "The KL term, summed over latent dimensions; β weighs it in the loss."),
    "elbo": Metric(
        "ELBO −(distortion + rate)", _NATS, "higher is better, comparable across β",
        "The evidence lower bound on log p(x) at β = 1, whatever β trains with."),
    "bits_per_dim": Metric(
        "−ELBO in bits per dimension", "bits per pixel and channel",
        "lower is better; the uniform distribution over the 256 levels of 8-bit pixels is 8",
        "D = H·W·C. Discretised logistic mixture: −elbo/(D·ln 2), exact for 8-bit data. "
        "Gaussian: (−elbo + D·ln 255)/(D·ln 2), the density dequantised to 8-bit levels, an "
        "approximation that leaves out the mass beyond 0 and 1 (a uniform density on [0, 1] "
        "scores log2 255 = 7.99, and saturated pixels score far above the exact figure): "
        "`keras-vae evaluate` reports the exact 8-bit bits/dim beside it. Bernoulli: "
        "−elbo/(D·ln 2), a cross-entropy."),
    "mse": Metric(
        "mean squared error", "pixel units², [0, 1] images", "lower is better",
        "‖x − x̂‖² per pixel value, x̂ the decoded mean at a sampled z."),
    "psnr": Metric(
        "PSNR", "dB", "higher is better",
        "10·log10(1/mse) of the epoch's mean MSE on [0, 1] pixels: 20 dB is an RMS error of "
        "0.1, 30 dB of 0.03."),
    "beta": Metric(
        "β", "unitless", "set by the schedule or controller, not learned",
        "The weight of the rate: loss = distortion + β·rate. β = 1 trains the ELBO; for a "
        "Gaussian decoder, ‖x − x̂‖² + β'·KL is the ELBO of σ² = β'/2."),
    "sigma": Metric(
        "σ of the Gaussian likelihood", "pixel units",
        "neither: it is the pixel noise the decoder assumes",
        "Fixed, learned, or (gaussian_optimal) the running mean of training-batch MSEs. It "
        "decides what β means: ‖x − x̂‖²/(2σ²) is weighed against β·rate."),
    "learning_rate": Metric("learning rate", "per step", "set by the optimizer", "Adam's step size."),
    "active_units": Metric(
        "active units", "an integer count of latent dimensions",
        "more dimensions in use; 0 is posterior collapse",
        "Dimensions d with Cov_x(E_q[z_d]) > 0.01 over fixed held-out images (Burda et al. "
        "2016). TensorBoard smooths every curve: set Smoothing to 0 to read it exactly."),
    "rate_per_active_unit": Metric(
        "rate per active dimension", "nats per active dimension",
        "higher means the active dimensions carry information; below about 0.1 they carry "
        "almost none",
        "The KL of the active dimensions over their count, on fixed held-out images; 0 when "
        "no dimension is active. `CollapseAlarm` watches it."),
    "kl_per_dim": Metric(
        "KL per latent dimension", "nats", "a spike at 0 is unused dimensions",
        "Histogram over the latent dimensions of each one's mean KL on fixed held-out "
        "images."),
    "grad_norm_distortion": Metric(
        "‖∇distortion‖", "global L2 norm over the weights", "neither",
        "The data's pull, on a fixed batch (σ as in training)."),
    "grad_norm_beta_rate": Metric(
        "‖∇(β·rate)‖", "global L2 norm over the weights", "neither",
        "The prior's pull, on the same batch: β scales it against the data's."),
    "grad_ratio": Metric(
        "‖∇(β·rate)‖ / ‖∇distortion‖", "unitless",
        "above 1 the prior's pull dominates the data's",
        "What β does to gradient descent: the loss gradient is the sum of the two vectors."),
    "reconstructions": Metric(
        "reconstructions", "pixels", "closer to the data row is better",
        "Row *data*: fixed images; row *reconstruction*: the likelihood mean at the "
        "posterior mean. Small images are enlarged nearest-neighbour."),
    "samples": Metric(
        "prior samples", "pixels", "should look like the data",
        "z ~ N(0, I) with a fixed seed, decoded to the likelihood mean."),
    "traversals": Metric(
        "latent traversals", "pixels", "a row that changes is a dimension in use",
        "One row per latent dimension, highest KL first (labelled in nats): a held-out "
        "image's code with that dimension set to the column's value, prior standard "
        "deviations."),
    "posterior_collapse": Metric(
        "posterior-collapse alarm", "text", "absent is good",
        "Written by `CollapseAlarm` at the epoch the code stops carrying information."),
}


def describe(name):
    """The description of metric `name` (a key of METRICS, or a tag ending in one)."""
    return METRICS[name.rpartition("/")[2]].description()
