"""Decoder likelihoods p(x|z): what "reconstruction error" means, in nats.

The decoder outputs one real number per pixel and channel; a `Likelihood` turns
that tensor into a TensorFlow Probability distribution over the image, gives its
negative log-likelihood (the *distortion*, nats per image, summed over pixels and
channels) and its mean (the reconstruction, in the data's range [0, 1]).

Why β and the likelihood are one question
-----------------------------------------
For a Gaussian decoder with a fixed scale σ on D pixel values,

    −log p(x|z) = ‖x − x̂‖² / (2σ²) + D·log(σ·√(2π)).

Multiply the β = 1 ELBO loss `−log p(x|z) + KL` by 2σ² and drop the constant:

    2σ²·(−log p(x|z) + KL) = ‖x − x̂‖² + 2σ²·KL + const.

So the popular loss `‖x − x̂‖² + β·KL` *is* the ELBO of a Gaussian decoder with
σ² = β/2, up to a positive scale (which only rescales the learning rate) and a
constant. The plain `‖x − x̂‖² + KL` (β = 1) silently assumes σ = √(1/2) ≈ 0.71
on [0, 1] pixels: it tells the model that a reconstruction off by 0.7 *on every
pixel* is typical, so the KL term wins and reconstructions blur to the mean.
With β = 0.1 the assumed σ is √0.05 ≈ 0.22, a far more honest noise level for
images, and reconstructions come back. Worked number, 64×64×3 (D = 12288) with
an error of 0.1 per pixel: ‖x − x̂‖² = 122.9; under σ = 0.71 that costs
122.9 nats of "distortion" against the KL, under σ = 0.22 it costs 1229 nats, so
the same KL is ten times cheaper relative to reconstruction. Weighting the KL is
therefore sound: it is choosing the observation noise. `Gaussian(sigma="learned")`
(σ-VAE, Rybkin et al. 2021) lets the data choose it instead.
"""

import importlib
import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import discretized

tfd = tfp.distributions

_PACKAGE = "keras_vae"
#: The lowest `min_log_sigma`: below σ = e^−20 (2e-9) ‖x − x̂‖²/2σ² leaves float32.
MIN_LOG_SIGMA_LIMIT = -20.0
#: The largest float32: a fixed σ must be below it (σ² and 1/σ² are float32).
FLOAT32_MAX = 3.4028234663852886e38


def scalar_weight(layer, name, value=0.0, trainable=False, aggregation=None):
    """A scalar variable of `layer` starting at `value`: state such as β or
    σ's running MSE that lives in the model and is saved in its .keras file.
    `aggregation`: how replicas combine it under tf.distribute (Keras's)."""
    extra = {} if aggregation is None else {"aggregation": aggregation}
    return layer.add_weight(shape=(), initializer=keras.initializers.Constant(float(value)),
                            trainable=trainable, name=name, **extra)


def soft_clip(x, low, high=None):
    """Bounds `x` below by `low` (and above by `high`) smoothly:
    low + softplus(x − low), whose gradient never vanishes past the bound,
    unlike `tf.maximum` (σ-VAE's softclip of log σ, Rybkin et al. 2021).
    It shifts x by softplus(low − x): 0.018 at 4 units from the bound,
    below float32 resolution beyond ~20."""
    x = low + tf.nn.softplus(x - low)
    if high is not None:
        x = high - tf.nn.softplus(high - x)
    return x


class Likelihood(keras.layers.Layer):
    """Base class: maps decoder outputs to p(x|z) over a batch of images.

    Subclasses implement `distribution(params)`; `nll` and `mean` follow.
    A likelihood is a layer so that learned parameters (σ) are trained and
    saved with the model.
    """

    #: Range the data must lie in, checked before training (inclusive).
    value_range = (0.0, 1.0)
    #: True if p(x|z) is a density over continuous pixel values (its NLL can
    #: be negative and converts to bits/dim of 8-bit data by dequantisation);
    #: False for a probability mass function.
    is_density = False
    #: True if `level_nll` gives the exact −log P of 8-bit data (the 256
    #: levels of each value; `keras_vae.discretized`).
    eight_bit = False

    def params_shape(self, image_shape):
        """The decoder's output shape for images of `image_shape` (H, W, C):
        one real number per pixel value unless the likelihood needs more."""
        return tuple(image_shape)

    def distribution(self, params):
        """p(x|z) as a TFP distribution with event shape [H, W, C]."""
        raise NotImplementedError

    def nll(self, x, params, training=False):
        """Negative log-likelihood, nats per image, shape [batch].

        Pure: never changes the likelihood's state. With `training=True` a
        likelihood may fit its parameters to the batch (`Gaussian(sigma="optimal")`);
        `update_state` is how training moves what evaluation uses.
        """
        return -self.distribution(params).log_prob(x)

    def level_nll(self, x, params):
        """−log P(x) of x's 8-bit levels (`discretized.quantise`), nats per
        image, [batch]: exact bits/dim of 8-bit data. Only where `eight_bit`."""
        raise ValueError(
            f"{type(self).__name__} is no distribution over 8-bit levels: use a Gaussian "
            "or discretized_logistic_mixture likelihood for bits/dim of 8-bit data."
        )

    def update_state(self, mse):
        """Called by `VAE.train_step` after each step with the batch's mean
        squared error (pixel units²); a no-op unless the likelihood tracks it."""

    def mean(self, params):
        """The reconstruction: E[x|z], in the data's range."""
        return self.distribution(params).mean()

    def log_values(self):
        """Scalars worth logging beside the loss, e.g. {"sigma": σ}."""
        return {}

    def call(self, params):
        return self.mean(params)

    def check_data(self, low, high):
        """Raises a one-line ValueError if data in [low, high] lies outside the support."""
        lo, hi = self.value_range
        if low < lo or high > hi:
            raise ValueError(
                f"{type(self).__name__} likelihood expects pixel values in "
                f"[{lo:g}, {hi:g}], got values in [{low:.4g}, {high:.4g}]: "
                "scale images to [0, 1] (e.g. divide uint8 images by 255)."
            )


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Bernoulli(Likelihood):
    """Bernoulli per pixel; the decoder outputs logits.

    The standard choice for (near-)binary images such as MNIST. On continuous
    pixel values in [0, 1] its log-likelihood is the binary cross-entropy, which
    is not a normalised density; prefer a Gaussian for photographs and paintings.
    """

    def distribution(self, params):
        return tfd.Independent(
            tfd.Bernoulli(logits=params, dtype=params.dtype),
            reinterpreted_batch_ndims=3,
        )

    def nll(self, x, params, training=False):
        # Binary cross-entropy summed over pixels; identical to −log_prob but
        # valid for fractional targets without TFP's integer cast.
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=params)
        return tf.reduce_sum(bce, axis=[1, 2, 3])

    def mean(self, params):
        return tf.sigmoid(params)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Gaussian(Likelihood):
    """Gaussian per pixel with mean sigmoid(decoder output) and one shared σ.

    Args:
        sigma: the observation noise σ in pixel units ([0, 1] images):
            - a float: fixed σ, at least e^min_log_sigma;
            - `"learned"`: one trainable log σ, from σ = 1 (σ-VAE, Rybkin et
              al. 2021);
            - `"optimal"`: while training, each batch uses its own analytic
              optimum σ*² = the batch's mean squared error (σ-VAE, eq. 5);
              outside training (validation, `evaluate`, IWAE, export) the
              model uses σ² = a running mean of those batch MSEs over the
              training data, a property of the model saved with it
              (`moving_mse`), never the last batch's σ* or a fit to the
              images being scored.
        min_log_sigma: lower bound on log σ (σ ≥ e^−6 ≈ 0.0025 by default), so
            the NLL stays finite when reconstructions become exact. A learned
            log σ is soft-clipped to it (σ-VAE's softclip, so its gradient
            never vanishes); σ* is floored (it gets no gradient of its own).
        momentum: of the running MSE for `"optimal"`: the plain mean of the
            first 1/(1 − momentum) batches, then an exponential moving average.
    """

    is_density = True
    eight_bit = True

    def __init__(self, sigma=0.1, min_log_sigma=-6.0, momentum=0.99, **kwargs):
        super().__init__(**kwargs)
        if not MIN_LOG_SIGMA_LIMIT <= min_log_sigma <= 0.0:
            raise ValueError(
                f"Gaussian min_log_sigma must be in [{MIN_LOG_SIGMA_LIMIT:g}, 0]; got "
                f"{min_log_sigma!r} (below e^{MIN_LOG_SIGMA_LIMIT:g} the squared errors "
                "/ 2σ² overflow float32)."
            )
        self.min_log_sigma = float(min_log_sigma)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Gaussian momentum must be in [0, 1), got {momentum!r}.")
        self.momentum = float(momentum)
        if isinstance(sigma, str):
            if sigma not in ("learned", "optimal"):
                raise ValueError(
                    f"Gaussian sigma must be a positive number, 'learned' or "
                    f"'optimal'; got {sigma!r}."
                )
        elif not 0 < sigma < FLOAT32_MAX:  # Also NaN and inf.
            raise ValueError(f"Gaussian sigma must be > 0 and finite in float32, got {sigma!r}.")
        elif math.log(sigma) < self.min_log_sigma:
            raise ValueError(
                f"Gaussian sigma {sigma:g} is below the floor e^{self.min_log_sigma:g} = "
                f"{math.exp(self.min_log_sigma):.3g} (min_log_sigma): use a larger sigma, "
                "or lower min_log_sigma for a smaller one."
            )
        self.sigma = sigma
        if sigma == "learned":
            self.log_sigma = scalar_weight(self, "log_sigma", 0.0, trainable=True)
        elif sigma == "optimal":
            self.moving_mse = scalar_weight(self, "moving_mse", 1.0, aggregation="mean")
            self.observed_batches = scalar_weight(
                self, "observed_batches", 0.0, aggregation="only_first_replica")

    @classmethod
    def from_mse_weight(cls, beta):
        """The fixed-σ Gaussian whose ELBO is `‖x − x̂‖² + β·KL`: σ = √(β/2)."""
        return cls(sigma=math.sqrt(beta / 2.0))

    def _floored_scale(self, mse):
        return tf.exp(tf.maximum(0.5 * tf.math.log(mse + 1e-12), self.min_log_sigma))

    def scale(self):
        """σ outside training, a float32 scalar tensor in pixel units."""
        if self.sigma == "learned":
            return tf.exp(soft_clip(self.log_sigma, self.min_log_sigma))
        if self.sigma == "optimal":
            return self._floored_scale(self.moving_mse)
        return tf.constant(self.sigma, dtype="float32")

    def _batch_scale(self, x, params):
        # σ*² = MSE over the whole batch: the maximum-likelihood shared
        # variance (Rybkin et al. 2021, eq. 5). At the optimum ∂NLL/∂σ = 0,
        # so gradients through σ* need no stop_gradient.
        return self._floored_scale(tf.reduce_mean(tf.square(x - tf.sigmoid(params))))

    def distribution(self, params, scale=None):
        return tfd.Independent(
            tfd.Normal(loc=tf.sigmoid(params), scale=self.scale() if scale is None else scale),
            reinterpreted_batch_ndims=3,
        )

    def nll(self, x, params, training=False):
        scale = self._batch_scale(x, params) if training and self.sigma == "optimal" else None
        return -self.distribution(params, scale).log_prob(x)

    def level_nll(self, x, params):
        """−log P(x) of the 8-bit levels under N(sigmoid(params), σ²)
        discretised with edge bins to ±∞ (`discretized`), σ as outside
        training; nats per image, [batch]."""
        log_mass = discretized.log_level_mass(
            x, tf.sigmoid(params), self.scale(), discretized.log_normal_cdf,
            discretized.log_normal_pdf)
        return -tf.reduce_sum(log_mass, axis=[1, 2, 3])

    def update_state(self, mse):
        if self.sigma != "optimal":
            return
        # A running mean while n < 1/(1 − momentum), then an EMA: no bias
        # towards the initial σ = 1 (the same correction as Adam's).
        n = self.observed_batches + 1.0
        decay = tf.minimum(self.momentum, 1.0 - 1.0 / n)
        self.moving_mse.assign(decay * self.moving_mse + (1.0 - decay) * tf.stop_gradient(mse))
        self.observed_batches.assign(n)

    def mean(self, params):
        return tf.sigmoid(params)

    def log_values(self):
        return {"sigma": self.scale()}

    def get_config(self):
        config = super().get_config()
        config.update(sigma=self.sigma, min_log_sigma=self.min_log_sigma, momentum=self.momentum)
        return config


_NAMES = {
    "bernoulli": lambda: Bernoulli(),
    "gaussian": lambda: Gaussian(sigma=0.1),
    "gaussian_learned": lambda: Gaussian(sigma="learned"),
    "gaussian_optimal": lambda: Gaussian(sigma="optimal"),
}


#: Families of likelihoods named by modules of their own (`register`):
#: name -> (factory of the text after ":", how a message spells the name).
_FAMILIES = {}
#: The modules that `register` a family; `get` imports them (they import
#: this module, so not at its top).
_FAMILY_MODULES = ("keras_vae.logistic_mixture",)


def register(name, factory, spelling):
    """Lets `get` read `name` and "name:<suffix>", made by `factory(suffix)`
    ("" without one); `spelling` shows the form in error messages. How
    likelihoods of other modules get names (`keras_vae.logistic_mixture`),
    as Keras's registry gives them a serialized form."""
    _FAMILIES[name] = (factory, spelling)


def get(identifier):
    """A `Likelihood` from an instance, a name or a serialized config.

    Names: "bernoulli", "gaussian" (σ = 0.1), "gaussian_learned",
    "gaussian_optimal", "gaussian:<sigma>" for a fixed σ, and those of
    `register`: "discretized_logistic_mixture" (5 components) or
    "discretized_logistic_mixture:<K>" (`keras_vae.logistic_mixture`).
    """
    for module in _FAMILY_MODULES:
        importlib.import_module(module)
    if isinstance(identifier, Likelihood):
        return identifier
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, str):
        name, _, sigma = identifier.lower().partition(":")
        name = name.replace("-", "_")
        if name in _FAMILIES:
            return _FAMILIES[name][0](sigma)
        if not sigma and name in _NAMES:
            return _NAMES[name]()
        if name == "gaussian" and sigma:
            try:
                value = float(sigma)
            except ValueError:
                value = None
            if value is not None:
                return Gaussian(sigma=value)  # Its own one-line error if out of range.
    raise ValueError(
        f"Unknown likelihood {identifier!r}: use one of {sorted(_NAMES)}, "
        f"'gaussian:<sigma>'{''.join(f' or {spelling!r}' for _, spelling in _FAMILIES.values())}."
    )
