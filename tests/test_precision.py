"""Mixed precision: how `auto` resolves, float32 loss terms, float32 exports."""

import json

import keras
import numpy as np
import onnxruntime
import pytest
import tensorflow as tf

import keras_vae
from keras_vae import evaluation, precision
from export import export_run

SHAPE = (8, 8, 1)
#: How far bfloat16 networks may move the reported nats from float32 on the
#: same weights: relative, of the ELBO and distortion (bfloat16 keeps 8
#: mantissa bits, a relative rounding of 2^-9 ≈ 0.2 % per value, and the sums
#: over pixels average much of it out).
BF16_RELATIVE_TOLERANCE = 0.01


def build(digits, precision_name, weights=None):
    model = keras_vae.build_conv_vae(
        SHAPE, latent_dim=4, likelihood="bernoulli", filters=(8, 16), seed=0,
        precision=precision_name,
    )
    if weights is not None:
        model.set_weights(weights)
    return model


@pytest.mark.parametrize(
    "flags, gpus, onednn, expected",
    [
        (("avx512f", "amx_bf16", "amx_tile"), [], "1", "mixed_bfloat16"),
        (("avx512f", "avx512_bf16"), [], "1", "mixed_bfloat16"),
        (("avx512f", "avx512_bf16"), [], "0", "float32"),  # No oneDNN, no fast bf16.
        (("avx2",), [], "1", "float32"),
        ((), [("A100", (8, 0))], "1", "mixed_bfloat16"),
        ((), [("T4", (7, 5))], "1", "mixed_float16"),
        ((), [("A100", (8, 0)), ("T4", (7, 5))], "1", "mixed_float16"),
    ],
)
def test_auto_resolves_from_cpu_flags_and_gpus(monkeypatch, flags, gpus, onednn, expected):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", onednn)
    resolved = precision.resolve("auto", flags=flags, gpus=gpus)
    assert resolved.policy == expected
    assert resolved.loss_scaling == (expected == "mixed_float16")
    facts = resolved.as_dict()
    assert json.loads(json.dumps(facts)) == facts  # Goes into config and export.json.
    assert facts["requested"] == "auto" and facts["reason"].startswith("auto: ")
    # An explicit setting is taken as it is.
    assert precision.resolve("float32", flags=flags, gpus=gpus).policy == "float32"


def test_unknown_precision_is_one_line():
    with pytest.raises(ValueError, match=r"^Unknown precision 'bf16': use one of auto, float32"):
        keras_vae.build_conv_vae(SHAPE, 4, filters=(8, 16), precision="bf16")


def test_mixed_model_leaves_global_policy_and_keeps_float32(digits):
    model = build(digits, "mixed_bfloat16")
    assert keras.config.dtype_policy().name == "float32"  # Nothing global changed.
    assert keras_vae.build_encoder(SHAPE, 4, (8, 16)).layers[1].compute_dtype == "float32"
    assert model.precision == "mixed_bfloat16"
    assert {layer.compute_dtype for layer in model.decoder.layers[1:]} == {"bfloat16"}
    assert {v.dtype for v in model.weights} == {"float32"}
    terms = model.compute_terms(tf.constant(digits[:16]), training=True)
    assert {name: t.dtype for name, t in terms.items()} == {n: tf.float32 for n in terms}
    assert model.decoder(tf.zeros((1, 4))).dtype == tf.bfloat16  # The networks are mixed...
    assert model.decode(tf.zeros((1, 4))).mean().dtype == tf.float32  # ...p(x|z) is not.


def test_bfloat16_metrics_match_float32_on_the_same_weights(digits):
    reference = build(digits, "float32")
    reference.compile(optimizer=keras.optimizers.Adam(1e-2))
    reference.fit(digits[:512], epochs=2, batch_size=64, verbose=0)
    mixed = build(digits, "mixed_bfloat16", reference.get_weights())
    x = tf.constant(digits[:256])
    for name in ("elbo", "distortion"):
        want = float(reference.compute_terms(x, seed=1)[name])
        got = float(mixed.compute_terms(x, seed=1)[name])
        assert got == pytest.approx(want, rel=BF16_RELATIVE_TOLERANCE), name
    # The rate depends on the encoder only: bfloat16 moves it by far less than a nat.
    rates = [float(m.compute_terms(x, seed=1)["rate"]) for m in (reference, mixed)]
    assert rates[1] == pytest.approx(rates[0], abs=0.05 * rates[0] + 0.1)
    iwae = [evaluation.iwae_bound(m, digits[:32], k=20, chunk=10).mean() for m in (reference, mixed)]
    assert iwae[1] == pytest.approx(iwae[0], rel=BF16_RELATIVE_TOLERANCE)


def test_float16_training_uses_loss_scaling(digits, tmp_path):
    model = build(digits, "mixed_float16")
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(digits[:128], epochs=1, batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    model.save(tmp_path / "model.keras")  # Loading compiles it again, loss scaling included.
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.optimizer, keras.optimizers.LossScaleOptimizer)
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) > 0
    # float32 models keep the optimizer they were given.
    plain = build(digits, "float32")
    plain.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert isinstance(plain.optimizer, keras.optimizers.Adam)


def test_export_of_a_bfloat16_model_is_float32(digits, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model = build(digits, "mixed_bfloat16")
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(digits[:128], epochs=1, batch_size=32, verbose=0)
    model.save(run_dir / "model.keras")
    manifest = export_run(run_dir, formats=("onnx",), verbose=False)
    assert manifest["model"]["training_precision"] == {"policy": "mixed_bfloat16"}
    session = onnxruntime.InferenceSession(str(run_dir / "export" / "decoder.onnx"))
    (output,) = session.get_outputs()
    assert output.type == "tensor(float)"
    # Against the same weights in float32 networks, not the bfloat16 ones.
    reference = build(digits, "float32", model.get_weights())
    z = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    want = reference.likelihood.mean(reference.decoder(z)).numpy()
    (got,) = session.run(None, {"z": z})
    assert np.max(np.abs(got - want)) <= 1e-4
    for diffs in manifest["artifacts"]["decoder.onnx"]["parity"].values():
        if isinstance(diffs, dict):
            assert max(diffs.values()) <= 1e-4


def test_train_resolves_logs_and_records_the_precision(tmp_path, capsys):
    from pipelines import config as config_lib
    from pipelines import train as train_lib

    overrides = {
        "train.output_dir": str(tmp_path), "data.source": "digits", "data.image_size": 8,
        "data.channels": 1, "model.latent_dim": 2, "model.filters": [4, 8],
        "model.likelihood": "bernoulli", "train.steps_per_epoch": 3, "train.epochs": 1,
        "train.image_every": 0, "train.update_freq": 0, "train.precision": "mixed_bfloat16",
    }
    folder = train_lib.train(config_lib.load_config(overrides=overrides), verbose=1)
    logged = [line for line in capsys.readouterr().out.splitlines()
              if line.startswith("Precision: ")]
    assert len(logged) == 1 and logged[0].startswith("Precision: mixed_bfloat16 ("), logged
    assert "CPU flags: " in logged[0] and "GPUs: " in logged[0]
    assert 'precision = "mixed_bfloat16"' in (folder / "config.toml").read_text()
    facts = json.loads((folder / "metrics.json").read_text())["precision"]
    assert facts["requested"] == facts["policy"] == "mixed_bfloat16"
    assert set(facts) == {"requested", "policy", "reason", "cpu_flags", "gpus"}
    assert keras.saving.load_model(folder / "model.keras").precision == "mixed_bfloat16"
    manifest = export_run(folder, formats=("onnx",), verbose=False)
    assert manifest["model"]["training_precision"] == facts
    with pytest.raises(ValueError, match=r"^train\.precision must be auto or float32 or "):
        config_lib.load_config(overrides={**overrides, "train.precision": "bf16"})


def test_config_accepts_exactly_the_library_precisions():
    # pipelines.schema stays free of TensorFlow, so it lists the names itself.
    from pipelines import config as config_lib

    test, message = config_lib.FIELDS["train.precision"].metadata["check"]
    assert all(test(name) for name in precision.PRECISIONS) and not test("bf16")
    assert message == " or ".join(precision.PRECISIONS)


def test_every_command_builds_its_model_in_the_requested_precision(digits):
    """train, evaluate's baseline, compare and the benchmarks build through
    `keras_vae.build_model`: each model computes in the precision asked for
    (compare's used to train float32 whatever --precision said)."""
    from benchmarks import workloads
    from pipelines import compare
    from pipelines import config as config_lib
    from pipelines import evaluate

    config = config_lib.load_config(overrides={
        "train.precision": "mixed_bfloat16", "model.filters": [4, 8], "model.latent_dim": 2,
        "data.image_size": 8, "data.channels": 1, "model.likelihood": "bernoulli",
    })
    built = {"train": keras_vae.build_model(config_lib.model_spec(config, SHAPE))}
    for objective in compare.OBJECTIVES:
        built[objective.key] = compare.build_model(objective, config, SHAPE)
    images = tf.data.Dataset.from_tensor_slices(digits[:16]).batch(8)
    built["baseline"] = evaluate.train_baseline(config, images, 1, 1, "mixed_bfloat16", 0)
    arch = workloads.TINY_ARCHITECTURE
    built["benchmark"] = workloads.build_model(arch, "keras-vae", "mixed_bfloat16", False)
    assert {name: m.precision for name, m in built.items()} == dict.fromkeys(
        built, "mixed_bfloat16")
    assert isinstance(built["autoencoder"], keras_vae.Autoencoder)
    assert keras_vae.build_autoencoder(SHAPE, 2, filters=(4,), precision="mixed_float16"
                                       ).precision == "mixed_float16"


def test_precision_reads_nested_layers_through_public_keras_api(digits):
    """`precision._layers` walks `Model.layers` recursively (no private Keras
    attribute): a VAE's layers sit inside its encoder and decoder models."""
    model = build(digits, "mixed_bfloat16")
    names = {layer.name for layer in precision._layers(model)}
    assert {"encoder", "decoder"} <= names
    assert {layer.name for layer in model.decoder.layers} <= names
