"""The β-VAE model: loss = distortion + β·rate, both in nats per image.

distortion = −E_q(z|x)[log p(x|z)]  summed over pixels and channels,
rate       = KL(q(z|x) ‖ p(z))      summed over latent dimensions,
each averaged over the batch. With β = 1 the loss is the negative ELBO
(Kingma & Welling 2014); other β trade reconstruction against the rate
(Higgins et al. 2017; Alemi et al. 2018), and `elbo` is always reported at
β = 1 so runs with different β compare.

Under mixed precision (`keras_vae.precision`) the encoder and decoder compute
in bfloat16 or float16, but their outputs are cast to float32 here, before
any likelihood, KL, ELBO, IWAE, σ or β arithmetic: the reported nats are
float32 sums over 12288 pixel values whatever the networks' precision.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import compiled
from keras_vae import likelihoods as likelihoods_lib
from keras_vae.steps import TrainingSteps

tfd = tfp.distributions

_PACKAGE = "keras_vae"
#: Soft bounds on the encoder's log-variance (see `likelihoods.soft_clip`):
#: σ_q in [e^−25, e^10]. Inside them the bound changes nothing in float32;
#: outside, rate and sampling stay finite instead of overflowing to inf/NaN.
LOG_VARIANCE_BOUNDS = (-50.0, 20.0)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class VAE(TrainingSteps):
    """A variational autoencoder with an explicit, scheduled β.

    The steps `fit`, `evaluate` and `predict` run, the guard against
    non-finite training steps included, are `steps.TrainingSteps`'s.

    Args:
        encoder: Keras model, images [B, H, W, C] -> [B, 2·latent_dim]: the
            posterior mean, then the log-variance, of a diagonal Gaussian q(z|x).
        decoder: Keras model, [B, latent_dim] -> [B, H, W, C] parameters of
            p(x|z) (logits for Bernoulli, pre-sigmoid mean for Gaussian).
        likelihood: a `keras_vae.likelihoods.Likelihood` or its name.
        prior: None for N(0, I), or a factorised TFP distribution with batch
            shape [latent_dim] (e.g. `tfd.Laplace(tf.zeros(d), tf.ones(d))`).
        beta: initial β; held in the non-trainable variable `model.beta`,
            which callbacks set during training.
        kl: "analytic" (`tfd.kl_divergence`), "mc" (single-sample Monte-Carlo
            estimate log q(z|x) − log p(z)) or "auto" (analytic where TFP has it).
        free_bits: KL floor λ per latent dimension, nats (Kingma et al. 2016):
            the loss uses Σ_d max(λ, E_batch KL_d); the reported rate does not.
        objective: "beta" for distortion + β·rate, or "capacity" for
            distortion + β·|rate − C| (Burgess et al. 2018), with C in the
            variable `model.capacity`, nats, set by a scheduler callback.
        seed: seed of the sampler of z, for reproducible training.

    Example:

    >>> import keras_vae
    >>> model = keras_vae.build_conv_vae((8, 8, 1), latent_dim=2, filters=(4, 8), beta=0.5)
    >>> model.compile(optimizer="adam")
    >>> sorted(model.compute_terms(np.zeros((4, 8, 8, 1), "float32")))
    ['distortion', 'elbo', 'loss', 'mse', 'rate']
    """

    #: The terms of `compute_terms` that fit/evaluate log (means over the
    #: epoch's images);
    #: `mse` is the mean squared error per pixel value of the likelihood mean
    #: at the sampled z (pixel units², [0, 1] images).
    metric_names = ("loss", "distortion", "rate", "elbo", "mse")

    def __init__(
        self,
        encoder,
        decoder,
        likelihood="bernoulli",
        prior=None,
        beta=1.0,
        kl="auto",
        free_bits=0.0,
        objective="beta",
        capacity=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if kl not in ("analytic", "mc", "auto"):
            raise ValueError(f"kl must be 'analytic', 'mc' or 'auto', got {kl!r}.")
        if objective not in ("beta", "capacity"):
            raise ValueError(f"objective must be 'beta' or 'capacity', got {objective!r}.")
        if free_bits < 0:
            raise ValueError(f"free_bits must be >= 0 nats, got {free_bits}.")
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihoods_lib.get(likelihood)
        self.image_shape = tuple(encoder.input_shape[1:])
        self.latent_dim = int(decoder.input_shape[-1])
        self._check_shapes()
        self.prior = prior if prior is not None else tfd.Normal(
            loc=tf.zeros(self.latent_dim), scale=tf.ones(self.latent_dim)
        )
        self._prior_is_default = prior is None
        # The estimator by name; `kl` stays the argument, as in saved configs.
        self.kl_estimator, self.free_bits, self.objective = kl, float(free_bits), objective
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.beta = likelihoods_lib.scalar_weight(self, "beta", beta)
        self.capacity = likelihoods_lib.scalar_weight(self, "capacity", capacity)
        # The last training batch's rate and distortion: what feedback
        # controllers read (the logged metrics are running epoch means).
        self.batch_rate = likelihoods_lib.scalar_weight(self, "batch_rate", aggregation="mean")
        self.batch_distortion = likelihoods_lib.scalar_weight(
            self, "batch_distortion", aggregation="mean")
        self.built = True

    def _check_shapes(self):
        enc_out = self.encoder.output_shape[-1]
        if enc_out != 2 * self.latent_dim:
            raise ValueError(
                f"The encoder outputs {enc_out} values but the decoder takes "
                f"latent_dim={self.latent_dim}: the encoder must output "
                f"2·latent_dim = {2 * self.latent_dim} (posterior mean, then log-variance)."
            )
        dec_out = tuple(self.decoder.output_shape[1:])
        needed = tuple(self.likelihood.params_shape(self.image_shape))
        if dec_out != needed:
            per_value = needed[-1] // self.image_shape[-1]
            raise ValueError(
                f"The decoder outputs shape {dec_out} but the encoder takes images "
                f"of shape {self.image_shape}: the {type(self.likelihood).__name__} "
                f"likelihood needs {'one' if per_value == 1 else per_value} decoder "
                f"output{'s' * (per_value != 1)} per pixel and channel, {needed}."
            )

    # -- Distributions ---------------------------------------------------------

    def _prior(self):
        return tfd.Independent(self.prior, reinterpreted_batch_ndims=1)

    def encode(self, x, training=False):
        """q(z|x): a diagonal Gaussian, event shape [latent_dim]."""
        return tfd.Independent(self.posterior_factors(x, training), 1)

    def posterior_params(self, x, training=False):
        """(mean, log-variance) of q(z|x), each [B, latent_dim]; the
        log-variance soft-bounded to LOG_VARIANCE_BOUNDS."""
        return split_posterior(self.encoder(x, training=training))

    def posterior_factors(self, x, training=False):
        """q(z_d|x) per latent dimension: a `tfd.Normal` of batch shape [B, latent_dim]."""
        loc, log_var = self.posterior_params(x, training)
        return tfd.Normal(loc=loc, scale=tf.exp(0.5 * log_var))

    def decoder_params(self, z, training=False):
        """The decoder's outputs at z, float32 whatever its precision, [B, H, W, C]."""
        return tf.cast(self.decoder(z, training=training), "float32")

    def decode(self, z, training=False):
        """p(x|z): the likelihood distribution, event shape [H, W, C]."""
        return self.likelihood.distribution(self.decoder_params(z, training))

    def call(self, x, training=False):
        """Reconstruction: the likelihood mean at the posterior mean, in [0, 1]."""
        loc, _ = self.posterior_params(x, training)
        return self.likelihood.mean(self.decoder_params(loc, training))

    def sample(self, n, seed=None):
        """n decoded prior samples (likelihood means), shape [n, H, W, C]."""
        # A [seed, 0] pair makes TFP sample statelessly: same seed, same z.
        z = self._prior().sample(n, seed=None if seed is None else [int(seed), 0])
        return self.likelihood.mean(self.decoder_params(z))

    def _batch_terms(self):
        return {"rate": self.batch_rate, "distortion": self.batch_distortion}

    # -- Loss ------------------------------------------------------------------

    def kl_per_dim(self, q, z):
        """KL(q ‖ p) per latent dimension, nats, shape [B, latent_dim]."""
        if self.kl_estimator != "mc":
            try:
                return tfd.kl_divergence(q, self.prior)
            except NotImplementedError:
                if self.kl_estimator == "analytic":
                    raise ValueError(
                        f"TFP has no analytic KL from Normal to {type(self.prior).__name__}: "
                        "use kl='mc' or kl='auto'."
                    ) from None
        # Single-sample Monte-Carlo estimate, unbiased: E_q[log q(z) − log p(z)].
        return q.log_prob(z) - self.prior.log_prob(z)

    def compute_terms(self, x, training=False, seed=None):
        """Per-batch loss terms, nats per image (batch means); `mse` in pixel units².

        Pure but for the sampler: z is drawn with `model.seed_generator`, or
        statelessly from `seed` (an int or a pair) when given, so diagnostics
        can call this without moving the training's random stream.
        """
        q = self.posterior_factors(x, training)
        eps = compiled.standard_normal(
            tf.shape(q.loc), self.seed_generator if seed is None else seed)
        z = q.loc + q.scale * eps  # reparameterisation (Kingma & Welling 2014)
        params = self.decoder_params(z, training)
        distortion = tf.reduce_mean(self.likelihood.nll(x, params, training=training))
        mse = tf.reduce_mean(tf.square(x - self.likelihood.mean(params)))
        kl = self.kl_per_dim(q, z)
        rate = tf.reduce_mean(tf.reduce_sum(kl, axis=-1))
        penalty = rate
        if self.free_bits > 0:
            penalty = tf.reduce_sum(tf.maximum(tf.reduce_mean(kl, axis=0), self.free_bits))
        if self.objective == "capacity":
            penalty = tf.abs(penalty - self.capacity)
        beta = tf.cast(self.beta, "float32")
        return {
            "loss": distortion + beta * penalty,
            "distortion": distortion,
            "rate": rate,
            "elbo": -(distortion + rate),
            "mse": mse,
        }

    # -- Serialization -----------------------------------------------------

    def get_config(self):
        if not self._prior_is_default:
            prior = {
                "class_name": type(self.prior).__name__,
                "parameters": {
                    k: np.asarray(v).tolist()
                    for k, v in self.prior.parameters.items()
                    if tf.is_tensor(v) or isinstance(v, np.ndarray | float | int)
                },
            }
        else:
            prior = None
        return {
            "name": self.name,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "likelihood": keras.saving.serialize_keras_object(self.likelihood),
            "prior": prior,
            "beta": float(self.beta.numpy()),
            "kl": self.kl_estimator,
            "free_bits": self.free_bits,
            "objective": self.objective,
            "capacity": float(self.capacity.numpy()),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder", "likelihood"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        prior = config.get("prior")
        if prior is not None:
            params = {k: tf.constant(v, dtype="float32") for k, v in prior["parameters"].items()}
            config["prior"] = getattr(tfd, prior["class_name"])(**params)
        return cls(**config)


def split_posterior(params):
    """The encoder's output [B, 2·latent_dim] as float32 (mean, log-variance),
    the log-variance soft-bounded to LOG_VARIANCE_BOUNDS."""
    loc, log_var = tf.split(tf.cast(params, "float32"), 2, axis=-1)
    return loc, likelihoods_lib.soft_clip(log_var, *LOG_VARIANCE_BOUNDS)
