"""The functions that get exported: a VAE's decoder (and encoder) with named tensors.

Each endpoint is one `tf.function` with a fixed input signature (dynamic batch)
returning a dict, so every format names its tensors the same way:

    decoder:  z      [batch, latent_dim] float32 -> image [batch, H, W, C] in [0, 1]
    encoder:  image  [batch, H, W, C]    float32 -> posterior_mean,
                                                    posterior_log_variance [batch, latent_dim]

The decoder returns the likelihood mean E[x|z] (e.g. sigmoid of the Bernoulli
logits), not the raw likelihood parameters, so consumers get images directly and
the graph holds no random ops.

Endpoints compute in float32 whatever precision the model trained in: a
mixed-precision network is cloned with float32 layers and the same (float32)
weights (`keras_vae.precision.as_float32`).
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from keras_vae import precision, vae

IMAGE = "image"
LATENT = "z"
POSTERIOR_MEAN = "posterior_mean"
POSTERIOR_LOG_VARIANCE = "posterior_log_variance"


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One exported function.

    Attributes:
        part: "decoder" or "encoder", also the stem of the artifacts' names.
        function: the `tf.function` (with `input_signature`) that is exported.
        layer: the Keras model holding every variable `function` reads.
        input_name: name of the single input tensor.
        output_names: names of the output tensors, in order.
    """

    part: str
    function: tf.types.experimental.PolymorphicFunction
    layer: keras.Model
    input_name: str
    output_names: tuple

    def __call__(self, inputs):
        """Runs the function eagerly: the Keras reference, numpy in and out."""
        outputs = self.function.python_function(tf.constant(inputs[self.input_name]))
        return {name: np.asarray(outputs[name]) for name in self.output_names}


def decoder(model):
    """z -> image: the likelihood mean of the decoder's output."""
    net, likelihood = precision.as_float32(model.decoder), model.likelihood
    spec = tf.TensorSpec([None, model.latent_dim], tf.float32, name=LATENT)

    @tf.function(input_signature=[spec])
    def decode(z):
        return {IMAGE: likelihood.mean(net(z, training=False))}

    return Endpoint("decoder", decode, net, LATENT, (IMAGE,))


def encoder(model):
    """image -> the posterior's mean and log-variance, as `VAE.posterior_params`
    gives them (the log-variance soft-bounded as in training)."""
    net = precision.as_float32(model.encoder)
    spec = tf.TensorSpec([None, *model.image_shape], tf.float32, name=IMAGE)

    @tf.function(input_signature=[spec])
    def encode(image):
        mean, log_variance = vae.split_posterior(net(image, training=False))
        return {POSTERIOR_MEAN: mean, POSTERIOR_LOG_VARIANCE: log_variance}

    return Endpoint("encoder", encode, net, IMAGE, (POSTERIOR_MEAN, POSTERIOR_LOG_VARIANCE))
