"""The export stage: SavedModel, ONNX and LiteRT decoders, verified, installed atomically."""

import errno
import hashlib
import pathlib
import shutil
import subprocess
import sys

import keras
import numpy as np
import onnx
import onnxruntime
import pytest
import tensorflow as tf
from ai_edge_litert import interpreter as litert
from PIL import Image

import keras_vae
from keras_vae import precision as precision_lib
from export import ExportError
from export import common
from export import export_run
from export import onnx_export
from export import verify

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = """\
[data]
source = "random"

[model]
latent_dim = 3

[beta]
schedule = "linear_warmup"
start = 0.0
stop = 1.0
warmup_steps = 100

[train]
epochs = 1
"""


def make_run(run_dir, input_shape, likelihood, config=True, **networks):
    """A run folder with a briefly trained tiny VAE, as keras-vae train leaves it;
    `networks`: build_conv_vae's architecture and precision."""
    run_dir.mkdir(parents=True)
    model = keras_vae.build_conv_vae(
        input_shape, latent_dim=3, likelihood=likelihood, filters=(8, 16), seed=0, **networks
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    x = np.random.default_rng(0).uniform(size=(64, *input_shape)).astype("float32")
    model.fit(x, epochs=1, batch_size=32, verbose=0)
    model.save(run_dir / "model.keras")
    if config:
        (run_dir / "config.toml").write_text(CONFIG)
    return model


@pytest.fixture(scope="module")
def bernoulli_run(tmp_path_factory):
    """(run_dir, model, manifest): both formats, decoder and encoder."""
    run_dir = tmp_path_factory.mktemp("export") / "run"
    model = make_run(run_dir, (8, 8, 1), "bernoulli")
    return run_dir, model, export_run(run_dir, encoder=True, verbose=False)


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory):
    """(run_dir, model, manifest): the residual networks in bfloat16 with the
    logistic mixture, RGB; decoder and encoder, every format."""
    run_dir = tmp_path_factory.mktemp("export") / "run"
    model = make_run(run_dir, (8, 8, 3), "discretized_logistic_mixture:2",
                     architecture="resnet", precision="mixed_bfloat16")
    return run_dir, model, export_run(run_dir, encoder=True, verbose=False)


#: The runs every format's parity is tested on: both architectures, both
#: kinds of decoder output (one number per pixel value, 3K of them).
RUNS = ["bernoulli_run", "resnet_run"]


@pytest.fixture(scope="module")
def gaussian_run(tmp_path_factory):
    """(run_dir, model, manifest): learned-σ Gaussian, RGB, no config.toml."""
    run_dir = tmp_path_factory.mktemp("export") / "run"
    model = make_run(run_dir, (16, 16, 3), "gaussian_learned", config=False)
    return run_dir, model, export_run(run_dir, verbose=False)


def decode(model, z):
    """The Keras reference of an exported decoder: the same weights in
    float32 networks (what exports ship, whatever the training precision)."""
    decoder = precision_lib.as_float32(model.decoder)
    return model.likelihood.mean(decoder(z, training=False)).numpy()


def encode(model, image):
    """The float32 encoder's output, as `decode`."""
    return precision_lib.as_float32(model.encoder)(image, training=False).numpy()


def tree_hashes(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def leftovers(run_dir):
    return sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".export-"))


@pytest.mark.parametrize("run", RUNS)
def test_manifest_parity_within_tolerance(run, request):
    _, _, manifest = request.getfixturevalue(run)
    expected_runtimes = {
        "savedmodel": {"tf.saved_model.load", "session loader (TF Serving, saved_model_cli)"},
        "onnx": {"onnxruntime"},
        "litert": {"ai-edge-litert"},
    }
    assert set(manifest["artifacts"]) == {
        "decoder_savedmodel", "decoder.onnx", "encoder_savedmodel", "encoder.onnx",
        "decoder.tflite", "decoder_float16.tflite", "decoder_int8.tflite", "encoder.tflite", "web",
    }
    for name, artifact in manifest["artifacts"].items():
        if artifact["format"] == "web" or artifact.get("precision", "float32") != "float32":
            assert "parity" not in artifact, name  # Measured instead: see the LiteRT tests.
            continue
        parity = dict(artifact["parity"])
        assert parity.pop("tolerance") >= 1e-4, name
        assert set(parity) == expected_runtimes[artifact["format"]], name
        for runtime, diffs in parity.items():
            assert set(diffs) == {"batch_1", "batch_64"}, (name, runtime)
            assert all(0 <= d <= 1e-4 for d in diffs.values()), (name, runtime, diffs)


@pytest.mark.parametrize("run", RUNS)
def test_onnx_decoder_and_encoder_match_keras(run, request):
    run_dir, model, _ = request.getfixturevalue(run)
    z = np.random.default_rng(1).normal(scale=2.0, size=(7, 3)).astype("float32")
    decoder = onnxruntime.InferenceSession(str(run_dir / "export" / "decoder.onnx"))
    (image,) = decoder.run(["image"], {"z": z})
    np.testing.assert_allclose(image, decode(model, z), atol=1e-4, rtol=0)

    encoder = onnxruntime.InferenceSession(str(run_dir / "export" / "encoder.onnx"))
    mean, log_var = encoder.run(["posterior_mean", "posterior_log_variance"], {"image": image})
    expected = encode(model, image)
    np.testing.assert_allclose(np.concatenate([mean, log_var], -1), expected, atol=1e-4, rtol=1e-4)


def test_onnx_encoder_outputs_in_documented_order(bernoulli_run):
    """`mean, log_var = session.run(None, ...)` must not swap them (tf2onnx
    sorts a dict's outputs by name: log-variance came first)."""
    run_dir, model, manifest = bernoulli_run
    session = onnxruntime.InferenceSession(str(run_dir / "export" / "encoder.onnx"))
    names = ["posterior_mean", "posterior_log_variance"]
    assert [o.name for o in session.get_outputs()] == names
    assert list(manifest["artifacts"]["encoder.onnx"]["outputs"]) == names
    image = np.random.default_rng(2).uniform(size=(5, 8, 8, 1)).astype("float32")
    mean, log_var = session.run(None, {"image": image})
    expected_mean, expected_log_var = np.split(model.encoder(image, training=False).numpy(), 2, -1)
    np.testing.assert_allclose(mean, expected_mean, atol=1e-4)
    np.testing.assert_allclose(log_var, expected_log_var, atol=1e-4)
    by_name = dict(zip(names, session.run(names, {"image": image})))
    np.testing.assert_array_equal(by_name["posterior_mean"], mean)


def test_full_disk_fails_in_one_line_and_keeps_the_previous_export(
        bernoulli_run, small_disk, monkeypatch):
    source, _, _ = bernoulli_run
    size = (source / "model.keras").stat().st_size
    run_dir = small_disk(4, free=size + 2**20) / "run"  # Room for the model only.
    run_dir.mkdir()
    shutil.copy(source / "model.keras", run_dir)
    with pytest.raises(ExportError) as caught:
        export_run(run_dir, formats=("onnx", "savedmodel"), verbose=False)
    message = str(caught.value)
    assert "not enough space in" in message and "for the export: needs about" in message
    assert "MB free" in message and "\n" not in message
    assert sorted(p.name for p in run_dir.iterdir()) == ["model.keras"]
    # When the disk fills during the conversion (the space check passed), the
    # message still says so, not "the SavedModel does not reproduce ...".
    from keras_vae import files

    monkeypatch.setattr(files, "check_space", lambda *args, **kwargs: None)
    with open(run_dir.parent / "ballast", "ab") as f:  # Leave 16 kB.
        f.write(b"\0" * (shutil.disk_usage(run_dir).free - 2**14))
    with pytest.raises(ExportError) as caught:
        export_run(run_dir, formats=("savedmodel", "onnx"), verbose=False)
    message = str(caught.value)
    assert "No space left on device" in message and "report it" not in message, message
    assert "previous export" in message and "\n" not in message
    assert sorted(p.name for p in run_dir.iterdir()) == ["model.keras"]


@pytest.mark.parametrize("run", RUNS)
def test_savedmodel_signature_names_and_dynamic_batch(run, request):
    run_dir, model, _ = request.getfixturevalue(run)
    signature = tf.saved_model.load(str(run_dir / "export" / "decoder_savedmodel")).signatures[
        "serving_default"
    ]
    _, inputs = signature.structured_input_signature
    assert list(inputs) == ["z"] and inputs["z"].shape.as_list() == [None, 3]
    assert list(signature.structured_outputs) == ["image"]
    for batch in (1, 5):
        z = np.random.default_rng(batch).normal(size=(batch, 3)).astype("float32")
        image = signature(z=tf.constant(z))["image"].numpy()
        assert image.shape == (batch, *model.image_shape)
        np.testing.assert_allclose(image, decode(model, z), atol=1e-4, rtol=0)


def test_onnx_metadata_names_and_opset(bernoulli_run):
    run_dir, _, manifest = bernoulli_run
    model = onnx.load(str(run_dir / "export" / "decoder.onnx"))
    props = {p.key: p.value for p in model.metadata_props}
    assert props["latent_dim"] == "3"
    assert props["image_shape"] == "8,8,1"
    assert props["channel_order"] == "NHWC"
    assert props["value_range"] == "0,1"
    assert props["likelihood"] == "Bernoulli"
    assert props["beta_schedule"] == "linear_warmup"
    assert props["keras_vae_version"] == keras_vae.__version__
    [z], [image] = model.graph.input, model.graph.output
    assert (z.name, image.name) == ("z", "image")
    assert z.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert image.type.tensor_type.shape.dim[0].dim_param == "batch"
    opset = {o.domain: o.version for o in model.opset_import}[""]
    assert opset == manifest["onnx_opset"] == onnx_export.default_opset() == 18


def test_manifest_facts_and_hashes(bernoulli_run):
    run_dir, _, manifest = bernoulli_run
    export_dir = run_dir / "export"
    files = tree_hashes(export_dir)
    files.pop("export.json")
    assert manifest["files"] == files
    assert "decoder_savedmodel/saved_model.pb" in files
    facts = manifest["model"]
    assert facts["latent_dim"] == 3 and facts["image_shape"] == [8, 8, 1]
    assert facts["beta_schedule"] == "linear_warmup"
    assert facts["beta_config"]["warmup_steps"] == 100
    assert facts["likelihood"] == {"name": "Bernoulli"}
    libraries = {
        "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "numpy", "keras_vae"
    }
    assert libraries | {"python"} <= set(manifest["versions"])
    assert leftovers(run_dir) == []


def test_gaussian_learned_sigma_without_config(gaussian_run):
    run_dir, model, manifest = gaussian_run
    facts = manifest["model"]
    assert facts["image_shape"] == [16, 16, 3]
    assert facts["beta_schedule"] == "unknown"
    assert facts["likelihood"]["name"] == "Gaussian"
    assert facts["likelihood"]["sigma"] == "learned"
    sigma = float(model.likelihood.scale())
    assert sigma != 1.0  # Training moved σ off its initial value...
    assert facts["likelihood"]["sigma_value"] == pytest.approx(sigma)  # ...and the export has it.
    z = np.random.default_rng(2).normal(size=(4, 3)).astype("float32")
    (image,) = onnxruntime.InferenceSession(str(run_dir / "export" / "decoder.onnx")).run(
        ["image"], {"z": z}
    )
    np.testing.assert_allclose(image, decode(model, z), atol=1e-4, rtol=0)


def litert_runner(path):
    return litert.Interpreter(model_path=str(path)).get_signature_runner("serving_default")


@pytest.mark.parametrize("run", RUNS)
def test_litert_decoder_and_encoder_match_keras(run, request):
    run_dir, model, _ = request.getfixturevalue(run)
    decoder = litert_runner(run_dir / "export" / "decoder.tflite")
    for batch in (1, 6):
        z = np.random.default_rng(batch).normal(scale=2.0, size=(batch, 3)).astype("float32")
        image = decoder(z=z)["image"]
        assert image.shape == (batch, *model.image_shape)
        np.testing.assert_allclose(image, decode(model, z), atol=1e-4, rtol=0)
    outputs = litert_runner(run_dir / "export" / "encoder.tflite")(image=image)
    mean, log_var = outputs["posterior_mean"], outputs["posterior_log_variance"]
    expected = encode(model, image)
    np.testing.assert_allclose(np.concatenate([mean, log_var], -1), expected, atol=1e-4, rtol=1e-4)


def test_litert_lossy_variants_are_smaller_and_measured(bernoulli_run):
    run_dir, model, manifest = bernoulli_run
    artifacts = manifest["artifacts"]
    sizes = {}
    for precision, name in [("float32", "decoder.tflite"), ("float16", "decoder_float16.tflite"),
                            ("int8", "decoder_int8.tflite")]:
        sizes[precision] = (run_dir / "export" / name).stat().st_size
        assert artifacts[name]["precision"] == precision
        assert artifacts[name]["size_bytes"] == sizes[precision]
    assert sizes["int8"] < sizes["float16"] < sizes["float32"]

    z = verify.prior_latents(manifest["model"]["prior"], 3)
    reference = decode(model, z)
    errors = {}
    for precision in ("float16", "int8"):
        quality = artifacts[f"decoder_{precision}.tflite"]["quality"]
        image = litert_runner(run_dir / "export" / f"decoder_{precision}.tflite")(z=z)["image"]
        diff = image.astype("float64") - reference
        assert quality["max_abs_diff"] == pytest.approx(np.abs(diff).max(), rel=1e-6)
        psnr = 10 * np.log10(1.0 / np.mean(diff**2))  # Images in [0, 1]: peak 1.
        assert quality["psnr_db"] == pytest.approx(psnr, abs=0.01)
        errors[precision] = quality["max_abs_diff"]
    # Lossy, but far from useless: both well under one 8-bit grey level on average.
    assert 0 < errors["float16"] < errors["int8"] < 0.05
    assert artifacts["decoder_int8.tflite"]["quality"]["psnr_db"] > 40


def test_litert_parity_failure_leaves_no_artifact(bernoulli_run, tmp_path):
    """An int8 file where the float32 one should be runs fine but misses the 1e-4 bound."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(bernoulli_run[0] / "model.keras", run_dir)

    def swap(folder):
        (folder / "decoder.tflite").write_bytes((folder / "decoder_int8.tflite").read_bytes())

    with pytest.raises(ExportError, match=r"^LiteRT \(ai-edge-litert\) parity failed: max \|Δ\| = "):
        export_run(run_dir, formats=("litert",), verbose=False, _after_convert=swap)
    assert sorted(p.name for p in run_dir.iterdir()) == ["model.keras"]


def run_sampler(*args):
    """Runs export/sample_onnx.py in a fresh interpreter; returns (result, imported modules)."""
    script = REPO / "export" / "sample_onnx.py"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(script), *map(str, args)],
        capture_output=True, text=True, cwd=REPO,
    )
    imported = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    return result, imported


def test_sample_onnx_runs_without_tensorflow(bernoulli_run, tmp_path):
    run_dir, _, _ = bernoulli_run
    out = tmp_path / "samples.png"
    result, imported = run_sampler(run_dir / "export", "--n", 6, "--seed", 0, "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "onnxruntime" in imported
    assert not imported & {"tensorflow", "keras", "keras_vae", "tf2onnx", "tensorflow_probability"}
    pixels = np.asarray(Image.open(out))
    assert pixels.shape == (2 * 8, 3 * 8)  # 6 samples: 2 rows of ceil(√6) = 3.
    assert pixels.std() > 0

    walk = tmp_path / "walk.png"
    result, _ = run_sampler(run_dir, "--interpolate", "1", "0,0,3", "--steps", 5, "--out", walk)
    assert result.returncode == 0, result.stderr[-2000:]
    assert np.asarray(Image.open(walk)).shape == (8, 5 * 8)


def test_sample_onnx_refuses_a_modified_decoder(bernoulli_run, tmp_path):
    run_dir, _, _ = bernoulli_run
    export_dir = shutil.copytree(run_dir / "export", tmp_path / "export")
    with open(export_dir / "decoder.onnx", "ab") as f:
        f.write(b"\0")
    result, _ = run_sampler(export_dir, "--out", tmp_path / "x.png")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert len(errors) == 1 and "sha256" in errors[0]
    assert not (tmp_path / "x.png").exists()


def perturb_weights(folder):
    """A silent mis-conversion: the largest initializer shifted by 0.05, still a valid model."""
    path = folder / "decoder.onnx"
    model = onnx.load(str(path))
    init = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init) + 0.05, init.name))
    onnx.save(model, str(path))


def truncate(folder):
    path = folder / "decoder.onnx"
    path.write_bytes(path.read_bytes()[:1000])


def disk_full(folder):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (perturb_weights, "ONNX (onnxruntime) parity failed: max |Δ| = "),
        (truncate, "decoder.onnx fails the ONNX checker"),
        (disk_full, "No space left on device"),
    ],
)
def test_failed_export_leaves_no_artifact(bernoulli_run, tmp_path, capsys, corrupt, message):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(bernoulli_run[0] / "model.keras", run_dir)
    with pytest.raises(ExportError) as caught:
        export_run(run_dir, formats=("onnx",), _after_convert=corrupt)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not (run_dir / "export").exists()
    assert leftovers(run_dir) == []
    assert "converting decoder to decoder.onnx (opset 18) ... " in capsys.readouterr().out


def test_failed_reexport_keeps_previous_export(bernoulli_run, tmp_path):
    run_dir = shutil.copytree(bernoulli_run[0], tmp_path / "run")
    before = tree_hashes(run_dir / "export")
    with pytest.raises(ExportError, match="parity failed"):
        export_run(run_dir, formats=("onnx",), verbose=False, _after_convert=perturb_weights)
    assert tree_hashes(run_dir / "export") == before
    assert leftovers(run_dir) == []


def test_unloadable_model_and_bad_opset(bernoulli_run, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.keras").write_bytes(b"not a zip file")
    with pytest.raises(ExportError, match=r"model.keras' is damaged \(not a Keras model file, "
                                          r"or a truncated one\): train the run again"):
        export_run(run_dir, verbose=False)
    shutil.copy(bernoulli_run[0] / "model.keras", run_dir)
    with pytest.raises(ExportError, match="--opset 99 is not supported"):
        export_run(run_dir, opset=99, verbose=False)
    assert sorted(p.name for p in run_dir.iterdir()) == ["model.keras"]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp: tmp / "missing", "does not exist"),
        (lambda tmp: tmp, "holds no model.keras: train first with keras-vae train"),
    ],
)
def test_cli_one_line_errors(tmp_path, make, message):
    prog = "keras-vae export"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "export", str(make(tmp_path))],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 2  # A user's error, as for keras-vae train.
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{prog}: error: ") and message in line


def test_cli_rejects_unknown_format(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "export", str(tmp_path), "--formats", "onnx,pdf"],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 2
    assert "unknown export format(s) 'pdf'" in result.stderr.splitlines()[-1]


def test_cli_format_spellings():
    from pipelines import exportcmd

    def formats(*argv):
        return exportcmd.build_parser().parse_args(["run", *argv]).formats

    assert formats() is None  # Every format it can make: see test_run_safety for no npm.
    assert formats("--format", "litert") == ("litert",)  # The spelling: a prefix.
    assert formats("--formats", "web,savedmodel") == ("onnx", "web", "savedmodel")


def test_beta_facts_read_the_tagged_table_and_the_flat_one_of_older_runs():
    tagged = {"beta": {"cyclical": {"period": 40}}}
    assert common.beta_facts(tagged) == {"schedule": "cyclical", "config": {"period": 40}}
    flat = {"beta": {"schedule": "linear", "warmup_steps": 100}}
    assert common.beta_facts(flat)["schedule"] == "linear"
