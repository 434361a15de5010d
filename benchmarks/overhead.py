"""Where keras-vae's per-step time goes, by ablation, against the plain loop.

    python -m benchmarks.overhead [--architecture 28x28x1] [--batch 32] [--rounds 16]
                                  [--seconds 0.5] [--precision float32]

Times, in paired rounds (`timing`), the plain float32 Keras loop, keras-vae,
and keras-vae with one part taken out at a time: the non-finite-step guard
(the update applied unconditionally), the `TerminateOnNonFinite` callback that
`VAE.fit` adds (and its input check), and both. Each is printed as its median
ratio to the plain loop per round, wall-clock and by process CPU time, with
quartiles. An ablated model breaks keras-vae's promises (a non-finite step
would change the weights): it is for measuring only. Prints the CPU and the
load average.
"""

import argparse
import functools
import os
import sys

import keras
import numpy as np

from benchmarks import harness, timing, workloads

#: Ablation name -> the parts of keras-vae taken out.
ABLATIONS = {
    "keras-vae": (),
    "without the guard": ("guard",),
    "without the callback": ("callback",),
    "without both": ("guard", "callback"),
}


def ablate(model, parts):
    """`model` with `parts` ("guard", "callback") taken out, retraced."""
    if "guard" in parts:
        model._guarded_update = model._update
    if "callback" in parts:
        model.fit = functools.partial(keras.Model.fit, model)
    model.train_function = None
    return model


def measure(arch, batch_size, rounds, seconds, precision):
    """{name: (wall Spread, CPU Spread)} of each variant over the plain loop."""
    dataset = workloads.cached_batches(workloads.cached_images(arch), batch_size)
    variants = {"plain": timing.warm_up(arch, "plain", "float32", batch_size, False, dataset,
                                        seconds)}
    for name, parts in ABLATIONS.items():
        variant = timing.warm_up(arch, "keras-vae", precision, batch_size, False, dataset, seconds)
        ablate(variant.model, parts).fit(dataset, epochs=1, steps_per_epoch=2, verbose=0)
        variants[name] = variant
    timing.time_rounds(list(variants.values()), rounds, np.random.default_rng(0))
    plain = variants.pop("plain")
    return {name: (timing.paired(v, plain), timing.paired(v, plain, cpu=True))
            for name, v in variants.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--architecture", default="28x28x1",
                        choices=[a.name for a in workloads.ARCHITECTURES])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=0.5, help="length of a timed block")
    parser.add_argument("--precision", default="float32")
    args = parser.parse_args(argv)
    arch = workloads.architecture(args.architecture)
    info = harness.machine()
    before = os.getloadavg()[0]
    timing.warm_up_tensorflow()
    ratios = measure(arch, args.batch, args.rounds, args.seconds, args.precision)
    print(f"{info['cpu']}, {info['cores']} cores; load average {before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after; {arch.name} batch {args.batch}, keras-vae "
          f"{args.precision}, {args.rounds} rounds of ~{args.seconds:g} s blocks\n")
    print("| keras-vae | × plain loop, wall clock | × plain loop, CPU time |")
    print("|---|---:|---:|")
    for name, (wall, cpu) in ratios.items():
        print(f"| {name} | {wall.ratio()} | {cpu.ratio()} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
