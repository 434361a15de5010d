"""The posterior-collapse alarm: a warning, once, at the epoch the decoder
starts ignoring z.

`CollapseAlarm` measures the active latent dimensions and the rate they
carry (nats) on fixed images, or reads them from the epoch logs that
`keras_vae.monitoring.VAETensorBoard` fills, and warns a
`PosteriorCollapseWarning` naming the library's remedies in Python.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_vae import diagnostics
from keras_vae.glossary import describe
from keras_vae.summaries import latent_health, writes

_PACKAGE = "keras_vae"


class PosteriorCollapseWarning(UserWarning):
    """The posterior collapsed: the decoder ignores z (`CollapseAlarm`)."""


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CollapseAlarm(keras.callbacks.Callback):
    """Warns, once, at the epoch the posterior collapses.

    Collapse: fewer than `min_active_units` latent dimensions are active, or
    the active ones carry less than `min_rate_per_active_unit` nats each on
    average (see `METRICS`). Then the decoder ignores z and reconstructs
    every image as about the same mean image, while the loss looks fine. The
    warning is a `PosteriorCollapseWarning` (`warnings.warn`; also TensorBoard
    text `alarms/posterior_collapse` when `log_dir` is given) with the measured
    numbers and the remedies the package offers, spelled as `REMEDIES` says
    (in Python; a command-line tool subclasses it with its flags and its own
    `warn`); it fires again only after the code has recovered.

    Args:
        images: fixed images [N, H, W, C] to measure on, preferably held-out.
            Without them the alarm reads `active_units` and
            `rate_per_active_unit` from the epoch logs, which `VAETensorBoard`
            (placed before it) adds.
        min_active_units: the fewest active dimensions that count as healthy.
        min_rate_per_active_unit: nats per active dimension below which the
            code counts as collapsed.
        log_dir: optional TensorBoard run folder for the text summary.

    Attributes:
        alarms: [(epoch, message)] of the alarms raised, 0-based epochs.
    """

    #: How each remedy is spelled in the warning: free bits, a KL warm-up and a
    #: calibrated σ (offered only when σ is fixed).
    REMEDIES = {
        "free_bits": "VAE(free_bits=0.1)",
        "warmup": "callbacks.BetaScheduler(schedules.LinearWarmup(1000))",
        "sigma": 'likelihoods.Gaussian(sigma="optimal") or Gaussian(sigma="learned")',
    }

    def __init__(self, images=None, min_active_units=1, min_rate_per_active_unit=0.1,
                 log_dir=None):
        super().__init__()
        if min_active_units < 0 or not min_rate_per_active_unit >= 0:
            raise ValueError(
                "CollapseAlarm thresholds must be >= 0, got min_active_units="
                f"{min_active_units}, min_rate_per_active_unit={min_rate_per_active_unit}.")
        self.images = None if images is None else np.asarray(images, dtype="float32")
        self.min_active_units = int(min_active_units)
        self.min_rate_per_active_unit = float(min_rate_per_active_unit)
        self.log_dir = None if log_dir is None else str(log_dir)
        self.alarms = []
        self._collapsed = False

    def _measure(self, logs):
        if self.images is not None:
            return latent_health(diagnostics.latent_statistics(self.model, self.images))
        if "active_units" not in logs:
            raise ValueError(
                "CollapseAlarm needs images=... or a VAETensorBoard before it in the "
                "callbacks (which logs active_units).")
        return int(logs["active_units"]), float(logs["rate_per_active_unit"])

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        active, per_unit = self._measure(logs)
        collapsed = (active < self.min_active_units
                     or (active > 0 and per_unit < self.min_rate_per_active_unit))
        if collapsed and not self._collapsed:
            self._raise(epoch, active, per_unit, logs)
        self._collapsed = collapsed

    def message(self, epoch, active, per_unit, logs):
        """The one-paragraph warning: what was measured, then the remedies."""
        model = self.model
        rate = logs.get("val_rate", logs.get("rate"))
        beta = float(keras.ops.convert_to_numpy(model.beta))
        spell = self.REMEDIES
        remedies = [
            f"free bits ({spell['free_bits']}; now {model.free_bits:g})",
            f"a KL warm-up ({spell['warmup']})",
            f"a lower β (now {beta:g})",
        ]
        sigma = getattr(model.likelihood, "sigma", None)
        if isinstance(sigma, int | float):  # A fixed σ: β's meaning hinges on it.
            remedies.append(f"a calibrated σ ({spell['sigma']}) instead of the fixed "
                            f"σ = {sigma:g}")
        measured = (f"{active} of {model.latent_dim} latent dimensions active (threshold "
                    f"{self.min_active_units}), {per_unit:.3f} nats per active dimension "
                    f"(threshold {self.min_rate_per_active_unit:g})")
        if rate is not None:
            measured += f", rate {float(rate):.3g} nats per image"
        return (f"posterior collapse at epoch {epoch + 1}: {measured}. The decoder ignores z "
                f"and reconstructs every image as about the same mean image. Remedies: "
                f"{'; '.join(remedies)}.")

    @writes
    def _raise(self, epoch, active, per_unit, logs):
        text = self.message(epoch, active, per_unit, logs)
        self.alarms.append((epoch, text))
        self.warn(text)
        if self.log_dir is not None:
            writer = tf.summary.create_file_writer(self.log_dir)
            with writer.as_default(step=epoch):
                tf.summary.text("alarms/posterior_collapse", text,
                                description=describe("posterior_collapse"))
            writer.close()

    def warn(self, text):
        """Issues the alarm's `text` as a `PosteriorCollapseWarning`."""
        warnings.warn(text, PosteriorCollapseWarning, stacklevel=2)

    def get_config(self):
        """Thresholds and log folder; the images are data, not configuration."""
        return {
            "min_active_units": self.min_active_units,
            "min_rate_per_active_unit": self.min_rate_per_active_unit,
            "log_dir": self.log_dir,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
