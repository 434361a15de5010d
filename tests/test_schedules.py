"""β schedules against the papers' formulas, and the callbacks that write β."""

import keras
import numpy as np
import pytest

import keras_vae
from keras_vae import callbacks, schedules


def test_linear_warmup_values():
    s = schedules.LinearWarmup(start=0.1, stop=1.1, warmup_steps=100, delay_steps=10)
    assert s(0) == pytest.approx(0.1)
    assert s(10) == pytest.approx(0.1)
    assert s(35) == pytest.approx(0.1 + 1.0 * 25 / 100)
    assert s(110) == pytest.approx(1.1)
    assert s(10_000) == pytest.approx(1.1)


def test_cyclical_follows_fu_et_al():
    # Fu et al. 2019: τ = (t mod T)/T; β = τ/R while τ ≤ R, then 1.
    s = schedules.Cyclical(period=100, ratio=0.5)
    steps = np.arange(400)
    tau = (steps % 100) / 100
    np.testing.assert_allclose(s(steps), np.minimum(tau / 0.5, 1.0))
    assert s(25) == pytest.approx(0.5)
    assert s(50) == pytest.approx(1.0)
    assert s(99) == pytest.approx(1.0)
    assert s(100) == pytest.approx(0.0)


def test_sigmoid_and_constant():
    s = schedules.Sigmoid(start=0.0, stop=2.0, midpoint_steps=500, width_steps=50)
    assert s(500) == pytest.approx(1.0)
    assert s(550) == pytest.approx(2.0 / (1.0 + np.exp(-1.0)))
    assert s(0) < 1e-3
    assert schedules.Constant(0.3)(12345) == pytest.approx(0.3)


def test_schedules_round_trip_and_reject_bad_arguments():
    for s in (
        schedules.Constant(0.3),
        schedules.LinearWarmup(0.0, 1.0, 50, 5),
        schedules.Cyclical(80, 0.25, 0.1, 0.9),
        schedules.Sigmoid(0.0, 1.0, 100, 10),
    ):
        again = schedules.deserialize(schedules.serialize(s))
        assert again == s
        np.testing.assert_allclose(again(np.arange(300)), s(np.arange(300)))
    with pytest.raises(ValueError, match="warmup_steps"):
        schedules.LinearWarmup(warmup_steps=0)
    with pytest.raises(ValueError, match="Unknown beta schedule"):
        schedules.get("exponential")
    with pytest.raises(ValueError, match="step must be >= 0"):
        schedules.Constant(1.0)(-1)


class _RecordBeta(keras.callbacks.Callback):
    """Records (optimizer step, β) as the train step will see them."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_begin(self, batch, logs=None):
        self.seen.append((int(self.model.optimizer.iterations.numpy()), float(self.model.beta.numpy())))


def _tiny_model(**kwargs):
    model = keras_vae.build_conv_vae((8, 8, 1), latent_dim=2, filters=(4,), seed=0, **kwargs)
    return model


@pytest.mark.parametrize("steps_per_execution", [1, 3])
def test_beta_scheduler_sets_the_schedule_of_the_optimizer_step(digits, steps_per_execution):
    model = _tiny_model()
    model.compile(optimizer="adam", steps_per_execution=steps_per_execution)
    schedule = schedules.LinearWarmup(warmup_steps=20, delay_steps=2)
    record = _RecordBeta()
    model.fit(digits[:192], batch_size=16, epochs=3, verbose=0,
              callbacks=[callbacks.BetaScheduler(schedule), record])
    steps = [s for s, _ in record.seen]
    # 12 steps per epoch, 3 epochs: the step never drifts, whatever the execution size.
    assert steps == list(range(0, 36, steps_per_execution))
    np.testing.assert_allclose([b for _, b in record.seen], schedule(np.array(steps)), rtol=1e-6)


def test_beta_scheduler_can_drive_capacity_per_epoch(digits):
    model = _tiny_model(objective="capacity")
    model.compile(optimizer="adam")
    model.fit(digits[:64], batch_size=32, epochs=3, verbose=0,
              callbacks=[callbacks.BetaScheduler(schedules.LinearWarmup(0.0, 5.0, 4), update_freq="epoch",
                                                 target="capacity")])
    assert float(model.capacity.numpy()) == pytest.approx(5.0 * 2 / 4)


def test_kl_target_controller_raises_beta_above_target_and_lowers_it_below():
    c = callbacks.KLTargetController(target_rate=10.0, kp=0.5, ki=0.01, beta_min=0.0, beta_max=1.0)
    betas = [c.update(30.0) for _ in range(20)]
    assert all(b2 >= b1 for b1, b2 in zip(betas, betas[1:]))
    assert betas[-1] > betas[0] > 0.0
    high = betas[-1]
    lows = [c.update(2.0) for _ in range(50)]
    assert lows[-1] < high
    assert all(b2 <= b1 for b1, b2 in zip(lows, lows[1:]))
    assert c.integral == pytest.approx(c.get_config()["integral"])


def test_kl_target_controller_state_round_trips():
    c = callbacks.KLTargetController(target_rate=5.0, kp=0.2, ki=0.05)
    for rate in (9.0, 8.0, 7.5):
        c.update(rate)
    d = callbacks.KLTargetController.from_config(c.get_config())
    assert d.update(6.0) == pytest.approx(c.update(6.0))


def test_geco_lowers_beta_while_distortion_exceeds_tolerance():
    g = callbacks.GECO(tolerance=50.0, alpha=0.5, step_size=0.001, beta_min=1e-3, beta_max=1.0)
    betas = [g.update(150.0) for _ in range(10)]
    assert all(b2 < b1 for b1, b2 in zip(betas, betas[1:]))
    recovering = [g.update(10.0) for _ in range(40)]
    assert recovering[-1] > betas[-1]
    again = callbacks.GECO.from_config(g.get_config())
    assert again.update(60.0) == pytest.approx(g.update(60.0))


def test_controller_writes_beta_during_fit(digits):
    model = _tiny_model()
    model.compile(optimizer="adam")
    controller = callbacks.KLTargetController(target_rate=0.0, kp=0.5, ki=0.01)
    model.fit(digits[:64], batch_size=32, epochs=2, verbose=0, callbacks=[controller])
    # A target of 0 nats is always below the measured rate: β must have risen.
    assert float(model.beta.numpy()) == pytest.approx(controller.beta)
    assert controller.beta > 0.0


def test_callbacks_round_trip_through_keras_serialization():
    cb = callbacks.BetaScheduler(schedules.Cyclical(period=40), update_freq="batch")
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cb))
    assert again.schedule == cb.schedule and again.update_freq == "batch"


def test_the_classes_are_the_registry_of_beta():
    """`pipelines.beta` restates nothing: its names, keys and required set
    points are the classes' own declarations, and the callbacks run them."""
    from keras_vae import controllers
    from pipelines import beta

    assert set(beta.REGISTRY) == set(schedules.SCHEDULES) | set(controllers.CONTROLLERS)
    for name, cls in schedules.SCHEDULES.items():
        assert cls.NAME == name and beta.REGISTRY[name].cls is cls
        assert beta.REGISTRY[name].parameters == (*cls.PARAMETERS, "update_freq")
        assert schedules.deserialize(schedules.serialize(cls())) == cls()
    for name, cls in controllers.CONTROLLERS.items():
        assert beta.REGISTRY[name].parameters == cls.PARAMETERS
        assert issubclass(callbacks.CONTROLLERS[name], cls)
        assert isinstance(callbacks.CONTROLLERS[name], type) and callbacks.CONTROLLERS[name].NAME == name
    assert beta.REGISTRY["kl_target"].required == ("target_rate",)
    controller, beta0 = beta.callback(beta.resolve({"schedule": "geco", "tolerance": 9.0}))
    assert isinstance(controller, callbacks.GECO) and beta0 == controller.beta == 1.0
    assert controllers.GECO.from_config(controller.get_config()).get_config() == \
        controller.get_config()


def test_the_controllers_examples_run():
    import doctest

    from keras_vae import controllers

    result = doctest.testmod(controllers)
    assert result.attempted > 0 and result.failed == 0
