"""The exported latent-explorer page, run in headless Chromium against Keras."""

import http.client
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.parse

import keras
import numpy as np
import pytest

import keras_vae
from export import ExportError
from export import browser
from export import common
from export import serve
from export import export_run
from export import manifest as manifest_lib
from export import verify
from export import web_page
from export import runfolder
from pipelines import cli
from pipelines import exportcmd

from test_export import REPO, decode

CONFIG = """\
[data]
source = "digits"
image_size = 8
channels = 1

[model]
latent_dim = 3
"""


def _web_run(tmp_path_factory, digits, **networks):
    """(run_dir, model, manifest): a digits run exported as a web page (and
    ONNX); `networks`: build_conv_vae's likelihood, architecture, precision."""
    run_dir = tmp_path_factory.mktemp("web") / "run"
    run_dir.mkdir()
    keras.utils.set_random_seed(0)  # Module fixtures run before conftest's per-test seeding.
    model = keras_vae.build_conv_vae(
        (8, 8, 1), latent_dim=3, filters=(8, 16), beta=0.1, seed=0, **networks
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(digits, epochs=3, batch_size=64, verbose=0)  # β = 0.1: the latents carry KL.
    model.save(run_dir / "model.keras")
    (run_dir / "config.toml").write_text(CONFIG)
    return run_dir, model, export_run(run_dir, formats=("web",), verbose=False,
                                     latent_images=exportcmd.latent_images)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory, digits):
    return _web_run(tmp_path_factory, digits, likelihood="bernoulli")


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory, digits):
    """The residual networks in bfloat16 with the logistic mixture."""
    return _web_run(tmp_path_factory, digits, likelihood="discretized_logistic_mixture:2",
                    architecture="resnet", precision="mixed_bfloat16")


def test_web_export_holds_page_runtime_and_kl_order(digits_run):
    run_dir, model, manifest = digits_run
    web = run_dir / "export" / "web"
    assert set(manifest["artifacts"]) == {"decoder.onnx", "web"}  # web brings onnx with it.
    lock = json.loads((REPO / "export" / "web" / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/onnxruntime-web"]["version"]
    assert manifest["artifacts"]["web"]["runtime"]["onnxruntime-web"] == version
    for name in ("index.html", *web_page.RUNTIME_FILES, "THIRD_PARTY_NOTICES.txt"):
        assert f"web/{name}" in manifest["files"]
    assert (web / "ort-wasm-simd-threaded.wasm").read_bytes()[:4] == b"\0asm"
    # No CDN: every URL the page names is relative, or the local server of its hint.
    assert re.findall(r"\w+://(?!127\.0\.0\.1:)", (web / "index.html").read_text()) == []

    kl = manifest["model"]["latent_kl"]
    assert kl["data"] == "180 validation images of 'digits'" and kl["units"] == "nats"
    values = np.array(kl["kl_per_dim"])
    assert values.shape == (3,) and np.all(values >= 0) and values.max() > 0.1
    assert kl["order"] == list(np.argsort(-values))


def test_kl_order_without_config_is_index_order(tmp_path, digits_run):
    model = digits_run[1]
    kl = manifest_lib.latent_kl(model, tmp_path, exportcmd.latent_images)
    assert kl["kl_per_dim"] is None and kl["order"] == [0, 1, 2]
    assert "the run has no config.toml" in kl["note"]
    # The export stage alone (no images given: it knows no data loading) keeps index order.
    alone = manifest_lib.latent_kl(model, digits_run[0])
    assert alone["kl_per_dim"] is None and alone["order"] == [0, 1, 2]
    assert "none given" in alone["note"]


def test_missing_runtime_is_one_line_error(digits_run, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.keras").write_bytes((digits_run[0] / "model.keras").read_bytes())
    monkeypatch.setattr(web_page, "PACKAGE", tmp_path / "no-npm-install")
    with pytest.raises(ExportError, match=r"needs onnxruntime-web.*npm ci --prefix") as caught:
        export_run(run_dir, formats=("web",), verbose=False)
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in run_dir.iterdir()) == ["model.keras"]


def test_serve_refuses_a_run_without_page(tmp_path, capsys):
    assert cli.main(["serve", str(tmp_path / "missing")]) == 2  # As for the other commands.
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("keras-vae serve: error: run folder ") and "does not exist" in line
    (tmp_path / "model.keras").write_bytes(b"")
    assert cli.main(["serve", str(tmp_path)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("keras-vae serve: error: ") and "holds no web/index.html" in line
    assert cli.main(["serve", str(tmp_path), "--port", "70000"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == ("keras-vae serve: error: argument --port: expected a port from 0 to 65535, "
                    "got '70000'; see keras-vae serve --help")


@pytest.fixture
def served(tmp_path, capfd):
    """(base URL, export folder) of a fake export served on 127.0.0.1, with a
    symlink to a file outside it, and a folder without index.html."""
    export_dir = tmp_path / "run" / "export"
    (export_dir / "web" / "assets").mkdir(parents=True)
    (export_dir / "web" / "index.html").write_text("<p>page</p>")
    (tmp_path / "secret.txt").write_text("not for the web")
    (export_dir / "web" / "secret.txt").symlink_to(tmp_path / "secret.txt")
    (export_dir / "web" / "assets" / "a.txt").write_text("a")
    with serve.serving(export_dir) as url:
        yield url.removesuffix("web/"), export_dir
    assert capfd.readouterr().err == ""  # Not one traceback, not one line.


def get(url, path, host=None):
    """(status, body) of GET `path`, with the Host header `host` if given."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.putrequest("GET", path, skip_host=host is not None)
    if host is not None:
        connection.putheader("Host", host)
    connection.endheaders()
    response = connection.getresponse()
    return response.status, response.read()


def test_serve_sends_only_the_export_to_local_names(served):
    url, _ = served
    port = urllib.parse.urlsplit(url).port
    assert get(url, "/web/") == (200, b"<p>page</p>")
    assert get(url, "/web/", host=f"localhost:{port}")[0] == 200
    assert get(url, "/web/", host=f"attacker.example:{port}")[0] == 403  # DNS rebinding.
    assert get(url, "/web/", host="")[0] == 403
    for path in ("/web/secret.txt", "/web/assets/", "/", "/web/%00", "/../secret.txt",
                 "/web/..%2f..%2fsecret.txt"):
        status, body = get(url, path)
        assert status == 404 and b"not for the web" not in body and b"a.txt" not in body, path


def test_serve_survives_disconnects_and_closes_idle_connections(served, monkeypatch):
    url, _ = served
    parts = urllib.parse.urlsplit(url)
    for _ in range(20):  # Clients that leave mid-request or mid-response.
        with socket.create_connection((parts.hostname, parts.port)) as client:
            client.sendall(b"GET /web/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        with socket.create_connection((parts.hostname, parts.port)) as client:
            client.sendall(b"GET /web/ HT")
    monkeypatch.setattr(serve._Handler, "timeout", 0.5)
    with socket.create_connection((parts.hostname, parts.port)) as idle:
        idle.settimeout(30)
        assert idle.recv(1) == b""  # Closed by the server, not by this client.
    assert get(url, "/web/")[0] == 200


def test_serve_says_when_the_export_is_stale(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "export").mkdir(parents=True)
    (run_dir / "model.keras").write_bytes(b"weights of epoch 2")
    manifest = {"model": {"source": {"sha256": runfolder.sha256(run_dir / "model.keras")}}}
    (run_dir / "export" / "export.json").write_text(json.dumps(manifest))
    assert common.stale(run_dir) is None
    (run_dir / "model.keras").write_bytes(b"weights of epoch 3")
    assert common.stale(run_dir) == (
        f"{run_dir / 'export'} is stale: {run_dir / 'model.keras'} changed since it was "
        f"exported; rerun keras-vae export {run_dir}")


needs_chromium = pytest.mark.skipif(
    browser.find_chromium() is None,
    reason="chromium and chromedriver are not installed (apt-get install chromium chromium-driver; "
    ".ci/run does)",
)


CURRENT_PIXELS = "return document.getElementById('current').toDataURL()"


@needs_chromium
@pytest.mark.parametrize("run", ["digits_run", "resnet_run"])
def test_page_decodes_like_keras_in_chromium(run, request):
    from selenium.webdriver.support.ui import WebDriverWait

    run_dir, model, manifest = request.getfixturevalue(run)
    z = verify.probe_latents(3)[:16]  # The prior mean, ±3σ on each axis, N(0, I) draws.
    with browser.open_page(run_dir / "export") as driver:
        pixels = np.asarray(browser.decode(driver, z), "float32").reshape(16, 8, 8, 1)
        latency = browser.latency(driver)
        labels = [e.text for e in driver.find_elements("css selector", "#sliders label")]
        tiles = driver.find_elements("css selector", "#grid canvas")
        strip = driver.find_elements("css selector", "#strip canvas")
        error = driver.execute_script("return window.vae.error")
        # The controls are wired: a slider redraws the explored image, a click picks A and B.
        before = driver.execute_script(CURRENT_PIXELS)
        driver.execute_script(
            "const s = document.querySelector('#sliders input'); s.value = s.max;"
            "s.dispatchEvent(new Event('input'));"
        )
        WebDriverWait(driver, 10).until(lambda d: d.execute_script(CURRENT_PIXELS) != before)
        tiles[5].click()
        roles = [t.get_attribute("class") for t in tiles]
    np.testing.assert_allclose(pixels, decode(model, z), atol=1e-4, rtol=0)
    assert error is None
    assert roles[5] == "a" and roles[0] == "b" and roles.count("") == 14
    assert len(tiles) == 16 and len(strip) == 10
    kl = manifest["model"]["latent_kl"]
    assert labels == [f"z[{d}] · KL {kl['kl_per_dim'][d]:.2f}" for d in kl["order"]]
    assert 0 < latency["batch_1"] and 0 < latency["batch_16"] < 5000


@needs_chromium
def test_page_refuses_a_modified_decoder(digits_run, tmp_path):
    export_dir = shutil.copytree(digits_run[0] / "export", tmp_path / "export")
    with open(export_dir / "decoder.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(RuntimeError, match="decoder.onnx does not match the sha256 in export.json"):
        with browser.open_page(export_dir):
            pass


def test_serve_stops_on_sigterm_in_one_line_after_its_stale_warning(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "export" / "web").mkdir(parents=True)
    (run_dir / "export" / "web" / "index.html").write_text("<p>page</p>")
    (run_dir / "model.keras").write_bytes(b"weights")
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "serve", str(run_dir), "--port", "0"],
        cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline().startswith(f"Serving {run_dir / 'export'} at http://")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate()
    assert process.returncode == 143
    assert err.splitlines() == [
        f"keras-vae serve: warning: {run_dir / 'export'} records no model hash (made by an older "
        f"keras-vae or edited): rerun keras-vae export {run_dir} to be sure it is of model.keras",
        "keras-vae serve: terminated (SIGTERM): stopped serving"]
