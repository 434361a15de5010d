"""keras-vae: variational autoencoders whose β is explicit, scheduled and measured.

Rate (KL, nats per image) and distortion (negative log-likelihood, nats per
image) are reported separately; β weights the rate in the loss.
"""

from keras_vae import callbacks, likelihoods, monitoring, precision, schedules
from keras_vae.architectures import build_conv_vae, build_decoder, build_encoder
from keras_vae.autoencoder import Autoencoder, build_autoencoder
from keras_vae.models import ModelSpec, build_model
from keras_vae.vae import VAE

__version__ = "0.1.0"

__all__ = [
    "Autoencoder",
    "ModelSpec",
    "VAE",
    "build_autoencoder",
    "build_conv_vae",
    "build_decoder",
    "build_encoder",
    "build_model",
    "callbacks",
    "likelihoods",
    "monitoring",
    "precision",
    "schedules",
]
