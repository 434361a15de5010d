"""The steps Keras runs for a model whose loss terms come from `compute_terms`.

`TrainingSteps` is the part of `VAE` (and so of `Autoencoder`) that `fit`,
`evaluate` and `predict` drive: the training step and its guard against
non-finite steps, the logged means over images, loss scaling under float16
networks, and one-line input checks before TensorFlow sees bad data. A
subclass provides `compute_terms(x, training)` (a dict of float32 scalars
holding at least "loss" and "mse", nats per image and pixel units²),
`likelihood`, `image_shape`, the β variable `beta` (logged) and the class
attribute `metric_names`.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_vae import callbacks as callbacks_lib
from keras_vae import compiled
from keras_vae import precision as precision_lib


class TrainingSteps(keras.Model):
    """`train_step`, `test_step` and `predict_step` of a model with `compute_terms`.

    A training step whose loss or gradients are not finite (or so large that
    their squares overflow float32: `compiled.finite_step`) changes no
    variable (outside tf.distribute), compiled or not; `fit` then stops with
    `callbacks.NonFiniteLossError` (`callbacks.TerminateOnNonFinite`).
    """

    #: The terms of `compute_terms` that fit/evaluate log (means over the
    #: epoch's images).
    metric_names = ("loss",)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.trackers = {n: keras.metrics.Mean(name=n) for n in self.metric_names}
        # The optimizer step (1-based) of the first step of this `fit` whose
        # loss or gradients were not finite, 0 while none was; reset by
        # `TerminateOnNonFinite`. Session state, so not a weight saved with
        # the model: a plain `tf.Variable`, which Keras does not track.
        self.non_finite_step = tf.Variable(0, dtype="int64", trainable=False,
                                           name="non_finite_step")

    def train_step(self, data):
        x = _images(data)
        with tf.GradientTape() as tape:
            terms = self.compute_terms(x, training=True)
            # Replicas' gradients are summed: scale so the sum is the
            # gradient of the global batch mean, as Keras's own losses do.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            loss = terms["loss"] / replicas if replicas > 1 else terms["loss"]
            # × the loss scale under mixed_float16 (a `LossScaleOptimizer`,
            # whose `apply` divides it out again); the identity otherwise.
            loss = self.optimizer.scale_loss(loss)
        grads = tape.gradient(loss, self.trainable_weights)
        # Set while tracing, read by `TerminateOnNonFinite` for its message.
        self.skips_non_finite_steps = not tf.distribute.has_strategy()
        if not self.skips_non_finite_steps:
            # Replicas synchronise inside `apply`: the step is applied and
            # `fit` stops right after it (`callbacks.TerminateOnNonFinite`).
            self._update(grads, terms)
        else:
            # A step whose loss or gradients are not finite leaves every
            # variable as it was (the weights, Adam's moments and step, σ's
            # running estimate, the batch terms); `fit` then stops with
            # `callbacks.NonFiniteLossError`.
            self._guarded_update(grads, terms)
        return self._log(terms, x)

    def _guarded_update(self, grads, terms):
        # Sticky: after one non-finite step every later step of the same
        # `fit` is skipped too, so with steps_per_execution > 1 the model
        # still holds the weights from before the first bad step when
        # `TerminateOnNonFinite` sees it.
        finite = compiled.finite_step(terms["loss"], [] if self._scales_loss else grads)
        apply = tf.logical_and(finite, tf.equal(self.non_finite_step, 0))
        step = self.optimizer.iterations + 1
        compiled.apply_if(apply, lambda: self._update(grads, terms), self._step_state(),
                          self.jit_compile is True)
        first_bad = tf.logical_and(tf.logical_not(finite), tf.equal(self.non_finite_step, 0))
        self.non_finite_step.assign(
            tf.where(first_bad, tf.cast(step, "int64"), self.non_finite_step))

    @property
    def _scales_loss(self):
        # A `LossScaleOptimizer` skips steps whose scaled gradients overflow
        # and lowers its scale: that is how it finds the scale, not an error.
        return isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)

    def _step_state(self):
        """Every variable a training step writes, but a loss scale's own."""
        optimizer = self.optimizer.inner_optimizer if self._scales_loss else self.optimizer
        return [*self.trainable_variables, *optimizer.variables,
                *self.likelihood.non_trainable_variables, *self._batch_terms().values()]

    def _batch_terms(self):
        """{term: the variable holding its last training batch's value}:
        what feedback controllers read; none here."""
        return {}

    def _update(self, grads, terms):
        self.optimizer.apply(grads, self.trainable_weights)
        self.likelihood.update_state(terms["mse"])
        for name, variable in self._batch_terms().items():
            if name in terms:  # An `Autoencoder` has no rate.
                variable.assign(terms[name])

    def test_step(self, data):
        x = _images(data)
        return self._log(self.compute_terms(x, training=False), x)

    def predict_step(self, data):
        return self(_images(data), training=False)

    def _log(self, terms, x):
        # Each batch mean weighted by its images, as Keras's own loss tracker
        # does: the epoch's numbers are means over images, partial last
        # batch included, not means of batch means. The trackers' total and
        # count are written directly: the same two additions as
        # `Mean.update_state(value, sample_weight=images)` on a scalar, without
        # its casts, broadcasting and reductions (the traced training step of
        # the 28×28×1 network: 565 graph ops outside the update instead of 635).
        images = tf.cast(tf.shape(x)[0], "float32")
        for name, tracker in self.trackers.items():
            tracker.total.assign_add(terms[name] * images)
            tracker.count.assign_add(images)
        logs = {name: t.result() for name, t in self.trackers.items()}
        logs["beta"] = tf.identity(self.beta)
        logs.update(self.likelihood.log_values())
        return logs

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def precision(self):
        """The networks' dtype policy name: "float32", "mixed_bfloat16" or "mixed_float16"."""
        return precision_lib.policy_name(self)

    def compile(self, optimizer="rmsprop", *args, **kwargs):
        """`keras.Model.compile`; under float16 networks the optimizer is
        wrapped in a `keras.optimizers.LossScaleOptimizer` (dynamic loss
        scaling keeps small float16 gradients from flushing to zero)."""
        super().compile(optimizer, *args, **kwargs)
        if self.precision == "mixed_float16" and not isinstance(
            self.optimizer, keras.optimizers.LossScaleOptimizer
        ):
            self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)

    def compile_from_config(self, config):
        """What `keras.saving.load_model` calls: `compile` (this one, so a
        float16 model gets its loss scaling back), then builds the optimizer."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # -- Input checks: one-line errors before TensorFlow sees bad data ------

    def check_input(self, x):
        """Raises a one-line ValueError if `x` cannot be this model's data."""
        if isinstance(x, tf.data.Dataset):
            spec = x.element_spec
            spec = spec[0] if isinstance(spec, tuple) else spec
            self._check_shape(tuple(spec.shape[1:]))
        elif isinstance(x, np.ndarray | tf.Tensor):
            self._check_shape(tuple(x.shape[1:]))
            if x.size:
                self.likelihood.check_data(float(np.min(x)), float(np.max(x)))

    def _check_shape(self, shape):
        if tuple(shape) != self.image_shape:
            raise ValueError(
                f"This VAE takes images of shape {self.image_shape} (H, W, C), got "
                f"{tuple(shape)}: resize the images or build the model for this shape."
            )

    def fit(self, x=None, *args, callbacks=None, **kwargs):
        """`keras.Model.fit`, checking `x` first and stopping at the first
        non-finite loss with a one-line `callbacks.NonFiniteLossError` (a
        `TerminateOnNonFinite` callback is added unless one is given)."""
        self.check_input(x)
        callbacks = list(callbacks or [])
        if not any(isinstance(cb, callbacks_lib.TerminateOnNonFinite) for cb in callbacks):
            callbacks.insert(0, callbacks_lib.TerminateOnNonFinite())
        return super().fit(x, *args, callbacks=callbacks, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        self.check_input(x)
        return super().evaluate(x, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self.check_input(x)
        return super().predict(x, *args, **kwargs)


def _images(data):
    x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    return x
