"""Training speed and quality of keras-vae against a plain Keras VAE loop, on this machine.

    python -m benchmarks [--quick] [--output-dir DIR]    (from the repository root)

Not part of the installed package. For two architectures (28×28×1 Bernoulli
and 64×64×3 Gaussian, the networks of `build_encoder`/`build_decoder`) at
batches 32 and 128, it measures side by side in one run:

- training images per second of the plain float32 Keras loop
  (`reference.py`) and of keras-vae in float32 and in its automatic
  precision, and each one's share of the measured matrix-multiply peak of
  its own precision (float32 and bfloat16 both measured every round);
- time to first step (building, tracing, XLA compilation);
- the validation ELBO after a fixed number of training steps, float32 against
  the automatic precision, so speed never hides a worse model;
- XLA (jit_compile) on against off at batch 128;
- peak resident memory of a fresh training process per variant;
- input-pipeline throughput, and keras-vae fed live against cached batches.

`harness.py` measures, `reference.py` is the plain loop, `report.py` writes
`BENCHMARKS.md` and `benchmarks.csv`.
"""
