"""Peak memory of a fresh process training one variant.

The protocol: the parent runs `python -m benchmarks --memory-worker ARCH
IMPLEMENTATION PRECISION BATCH JIT STEPS`; the worker (`worker`) trains
and prints one JSON line, {"peak_mib": VmHWM, "before_fit_mib": VmRSS before
`fit`}, both MiB; the parent reads the last line of its stdout.
"""

import json
import pathlib
import subprocess
import sys

from benchmarks import workloads

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKERS = 3  # Subprocesses run at once (memory, not time, is measured).


def peak_memory(jobs, steps=2, workers=WORKERS):
    """One dict per job ({"peak_mib", "before_fit_mib"}, MiB): `jobs` are
    (architecture, implementation, precision, batch_size, jit_compile),
    each trained `steps` steps by a fresh process, `workers` at a time."""
    commands = [
        [sys.executable, "-m", "benchmarks", "--memory-worker",
         arch.name, implementation, precision, str(batch_size), str(int(jit_compile)), str(steps)]
        for arch, implementation, precision, batch_size, jit_compile in jobs
    ]
    results = []
    for start in range(0, len(commands), workers):
        running = [
            subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
            for c in commands[start : start + workers]
        ]
        for command, process in zip(commands[start:], running):
            stdout, stderr = process.communicate()
            if process.returncode:
                tail = (stderr.strip().splitlines() or ["no output"])[-1]
                raise RuntimeError(f"memory worker {command[4:]} failed: {tail}")
            results.append(json.loads(stdout.strip().splitlines()[-1]))
    return results


def worker(arch_name, implementation, precision, batch_size, jit_compile, steps):
    """The worker's side (arguments as strings, from the command line)."""
    arch = workloads.architecture(arch_name)
    images = workloads.cached_images(arch)
    before = _status_mib("VmRSS")
    model = workloads.build_model(arch, implementation, precision, bool(int(jit_compile)))
    model.fit(workloads.cached_batches(images, int(batch_size)), epochs=1,
              steps_per_epoch=int(steps), shuffle=False, verbose=0)
    print(json.dumps({"peak_mib": _status_mib("VmHWM"), "before_fit_mib": before}))


def _status_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")
