"""Training speed and quality of keras-vae against a plain Keras VAE loop, on this machine.

    python -m benchmarks [--quick | --gpu] [--tiny] [--output-dir DIR]    (from the repository root)

Not part of the installed package. For two architectures (28×28×1 Bernoulli
and 64×64×3 Gaussian, the networks of `build_encoder`/`build_decoder`) at
batches 32 and 128, it measures side by side in one run:

- training images per second of the plain float32 Keras loop
  (`reference.py`) and of keras-vae in float32 and in its automatic
  precision, timed in paired rounds (each ratio taken within a round), and
  each one's share of the measured matrix-multiply peak of its own precision;
- time to first step (building, tracing, XLA compilation);
- the validation ELBO after a fixed number of training steps, float32 against
  the automatic precision, so speed never hides a worse model;
- XLA (jit_compile) on against off;
- peak resident memory of a fresh training process per variant;
- input-pipeline throughput, and keras-vae fed live against cached batches.

`workloads.py` says what is measured (architectures, variants, presets),
`timing.py` how steps are timed, `quality.py`, `memory.py` and
`input_pipeline.py` the other measurements, `harness.py` runs them into the
typed `results.py`, `reference.py` is the plain loop, `report.py` writes
`BENCHMARKS.md` and `benchmarks.csv`.
"""
