"""Compiled (XLA) training, evaluation and prediction: the same numbers as
uncompiled, and a non-finite step that changes nothing under both."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from keras_vae import compiled
from keras_vae import diagnostics
from keras_vae import evaluation


def _trained(digits, jit_compile, likelihood="gaussian_optimal", steps=4, optimizer="adam"):
    keras.utils.set_random_seed(0)
    model = keras_vae.build_conv_vae((8, 8, 1), 3, likelihood, filters=(8, 16), seed=0)
    model.compile(optimizer=optimizer, jit_compile=jit_compile)
    history = model.fit(digits[: 32 * steps], batch_size=32, epochs=1, shuffle=False, verbose=0)
    return model, history.history


def _state(model):
    """Every variable's value, by position (layer names differ between models)."""
    return {f"{i} {v.path}": v.numpy().copy()
            for i, v in enumerate(model.variables + model.optimizer.variables)}


@pytest.mark.parametrize("likelihood", ["gaussian_optimal", "bernoulli"])
def test_compiled_train_evaluate_predict_match_uncompiled(digits, likelihood):
    # SGD: Adam's first steps divide gradients by their own size, which
    # turns float32 round-off between XLA and oneDNN kernels into updates.
    eager, eager_logs = _trained(digits, False, likelihood, optimizer="sgd")
    xla, xla_logs = _trained(digits, True, likelihood, optimizer="sgd")
    assert xla.jit_compile and not eager.jit_compile
    for name, values in eager_logs.items():
        np.testing.assert_allclose(xla_logs[name], values, rtol=1e-4, atol=1e-4, err_msg=name)
    state, xla_state = _state(eager), _state(xla)
    assert len(state) == len(xla_state)
    for (path, value), xla_value in zip(state.items(), xla_state.values()):
        np.testing.assert_allclose(xla_value, value, rtol=1e-4, atol=1e-5, err_msg=path)
    # Scored on the same weights.
    xla.set_weights(eager.get_weights())
    x = digits[-64:]
    scores = xla.evaluate(x, batch_size=32, return_dict=True, verbose=0)
    for name, value in eager.evaluate(x, batch_size=32, return_dict=True, verbose=0).items():
        assert scores[name] == pytest.approx(value, rel=1e-4, abs=1e-4), name
    np.testing.assert_allclose(xla.predict(x, verbose=0), eager.predict(x, verbose=0), atol=1e-5)
    # The per-epoch diagnostics and the IWAE bound run with the model's jit_compile.
    np.testing.assert_allclose(evaluation.iwae_bound(xla, x, k=8, chunk=4),
                               evaluation.iwae_bound(eager, x, k=8, chunk=4), rtol=1e-4)
    for name, value in diagnostics.gradient_norms(eager, x).items():
        assert diagnostics.gradient_norms(xla, x)[name] == pytest.approx(value, rel=1e-3)
    np.testing.assert_allclose(diagnostics.latent_statistics(xla, x)["kl_per_dim"],
                               diagnostics.latent_statistics(eager, x)["kl_per_dim"], rtol=1e-4)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_a_nan_batch_leaves_every_variable_as_it_was(digits, jit_compile):
    model, _ = _trained(digits, jit_compile, steps=2)
    before = _state(model)
    bad = digits[:32].copy()
    bad[5, 2, 2, 0] = np.nan
    with pytest.raises(keras_vae.callbacks.NonFiniteLossError, match="step 3: loss became NaN"):
        model.fit(bad, batch_size=32, epochs=1, shuffle=False, verbose=0)
    after = _state(model)
    changed = [path for path, value in before.items()
               if not np.array_equal(value, after[path], equal_nan=True)]
    # Only the seed generator's counter moves: z was drawn before the loss was known.
    assert [path.split()[1] for path in changed] == [
        v.path for v in model.variables if "seed_generator" in v.path]


class _InfiniteGradient(keras.layers.Layer):
    """The identity, whose gradient is infinite: a finite loss, non-finite gradients."""

    def call(self, x):
        @tf.custom_gradient
        def identity(x):
            return tf.identity(x), lambda dy: dy * np.inf
        return identity(x)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_non_finite_gradients_of_a_finite_loss_skip_the_step_and_stop(digits, jit_compile):
    base = keras_vae.build_conv_vae((8, 8, 1), 3, "bernoulli", filters=(8, 16), seed=0)
    decoder = keras.Sequential([base.decoder, _InfiniteGradient()])
    model = keras_vae.VAE(base.encoder, decoder, "bernoulli", seed=0)
    model.compile(optimizer="adam", jit_compile=jit_compile)
    model.optimizer.build(model.trainable_variables)
    before = _state(model)
    with pytest.raises(keras_vae.callbacks.NonFiniteLossError,
                       match="step 1: the gradient became non-finite"):
        model.fit(digits[:64], batch_size=32, epochs=1, shuffle=False, verbose=0)
    after = _state(model)
    assert [p.split()[1] for p in before if not np.array_equal(before[p], after[p])] == [
        v.path for v in model.variables if "seed_generator" in v.path]


def test_steps_per_execution_stops_with_the_weights_before_the_first_bad_step(digits):
    model, _ = _trained(digits, True, steps=2)
    model.compile(optimizer=model.optimizer, jit_compile=True, steps_per_execution=4)
    x = digits[:128].copy()
    x[40, 1, 1, 0] = np.nan  # Step 2 of 4 in one execution: steps 3 and 4 are skipped too.
    with pytest.raises(keras_vae.callbacks.NonFiniteLossError, match="step 4: loss became NaN"):
        model.fit(x, batch_size=32, epochs=1, shuffle=False, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 3  # 2 before, then 1 of the execution.
    assert all(np.isfinite(w.numpy()).all() for w in model.trainable_variables)


def test_epoch_metrics_are_means_over_images_with_a_partial_last_batch(digits):
    model = keras_vae.build_conv_vae((8, 8, 1), 3, "gaussian", filters=(8, 16), seed=0)
    model.compile(optimizer="adam")
    x = np.concatenate([digits[:32], np.zeros_like(digits[:8])])  # Batches of 32 and 8 blanks.
    logs = model.evaluate(x, batch_size=32, return_dict=True, verbose=0)
    # The same z as evaluate drew: its seed generator, rewound, batch by batch.
    model.seed_generator.state.assign([0, 0])
    terms = [model.compute_terms(x[:32]), model.compute_terms(x[32:])]
    for name in ("distortion", "elbo", "mse"):
        per_image = (32 * float(terms[0][name]) + 8 * float(terms[1][name])) / 40
        batch_means = (float(terms[0][name]) + float(terms[1][name])) / 2
        assert logs[name] == pytest.approx(per_image, rel=1e-5), name
        assert abs(per_image - batch_means) > 1e-3 * abs(per_image), name


@pytest.mark.parametrize("bad, expected", [
    (None, True), (np.nan, False), (np.inf, False), (-np.inf, False),
    (1e19, True),   # its square, 1e38, is a float32
    (2e19, False),  # its square overflows: Adam's second moment could not hold it
])
def test_finite_step_is_false_for_any_non_finite_gradient_value(bad, expected):
    grads = [tf.ones((3, 4)), None, tf.zeros((5,))]
    if bad is not None:
        grads[0] = tf.tensor_scatter_nd_update(grads[0], [[2, 1]], [bad])
    assert bool(compiled.finite_step(tf.constant(1.0), grads)) is expected
    # The loss is checked by value: a huge finite loss is a finite step.
    assert bool(compiled.finite_step(tf.constant(1e30), grads[2:])) is True
    assert bool(compiled.finite_step(tf.constant(np.nan, "float32"), grads[2:])) is False
