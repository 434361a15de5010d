"""`--strategy multiworker`: a 2-worker cluster on loopback trains one model.

The chief (worker 0) runs the `python -m pipelines.train` command and owns
the run folder. Worker 1 runs the same pipeline (`train.parse_config` and
`train.train`) with one extra callback that saves its final weights, since a
non-chief worker deletes its private folder when it finishes. Synchronous
data-parallel training must leave both with the same weights, although
each worker reads a different shard of every epoch.
"""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_vae  # noqa: F401  (registers the VAE for load_model)

TIMEOUT_S = 180
ARGS = ["--data", "digits", "--image-size", "8", "--channels", "1", "--latent-dim", "2",
        "--epochs", "1", "--batch-size", "64", "--filters", "4,8", "--update-freq", "0",
        "--image-every", "0", "--strategy", "multiworker", "--run-name", "mw", "-q"]
WORKER = """
import sys

import keras
import numpy as np

from pipelines import train


class SaveWeights(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        np.savez(sys.argv[1], **{v.path: v.numpy() for v in self.model.weights})


config, _ = train.parse_config(sys.argv[2:])
train.train(config, 0, callbacks=[SaveWeights()])
"""


def _free_ports(count):
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    except OSError as err:
        pytest.skip(f"cannot open loopback TCP ports for a cluster: {err}")
    finally:
        for s in sockets:
            s.close()


def test_two_workers_train_the_same_weights(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    output = tmp_path / "runs"
    commands = [
        [sys.executable, "-m", "pipelines.train", *ARGS, "--output-dir", str(output)],
        [sys.executable, "-c", WORKER, str(tmp_path / "worker1.npz"), *ARGS,
         "--output-dir", str(output)],
    ]
    worker_tmp = tmp_path / "worker-tmp"
    worker_tmp.mkdir()
    processes = []
    for index, command in enumerate(commands):
        env = dict(os.environ, TMPDIR=str(worker_tmp), TF_CPP_MIN_LOG_LEVEL="2",
                   TF_CONFIG=json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=TIMEOUT_S)[0])
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
        pytest.fail(f"the workers did not finish within {TIMEOUT_S} s")
    for index, (process, output_text) in enumerate(zip(processes, outputs)):
        assert process.returncode == 0, f"worker {index} failed:\n{output_text[-3000:]}"

    run = output / "mw"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 1 and np.isfinite(metrics["validation"]["loss"])
    chief = {v.path: v.numpy() for v in keras.saving.load_model(run / "last.keras").weights}
    with np.load(tmp_path / "worker1.npz") as saved:
        worker = dict(saved)
    assert sorted(worker) == sorted(chief)
    # batch_rate and batch_distortion, which controllers read, are averaged
    # over the workers, so every worker's controller sets the same β.
    for name in sorted(chief):
        np.testing.assert_allclose(worker[name], chief[name], rtol=1e-6, atol=1e-7,
                                   err_msg=f"workers disagree on {name}")
    # The non-chief cleaned up its private folder.
    assert not any(worker_tmp.rglob("*.keras"))


@pytest.mark.parametrize("cluster, task, shard", [
    (None, None, (1, 0)),
    ({"worker": ["a:1", "b:1", "c:1"]}, {"type": "worker", "index": 2}, (3, 2)),
    ({"chief": ["a:1"], "worker": ["b:1", "c:1"]}, {"type": "chief", "index": 0}, (3, 0)),
    ({"chief": ["a:1"], "worker": ["b:1", "c:1"]}, {"type": "worker", "index": 1}, (3, 2)),
    ({"chief": ["a:1"], "worker": ["b:1"], "ps": ["p:1"]}, {"type": "ps", "index": 0}, (1, 0)),
])
def test_each_worker_gets_its_own_part_of_the_pictures(monkeypatch, cluster, task, shard):
    """`make_datasets(num_workers, worker_index)` from TF_CONFIG, the chief first
    (test_cache.py checks that the parts are disjoint and cover the pictures)."""
    from pipelines import distribution

    if cluster is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    assert distribution.input_shard() == shard
