"""BENCHMARKS.md and benchmarks.csv from the harness's measurements."""

import csv
import io

from benchmarks import harness, reference
from keras_vae import files

#: The issue's targets for keras-vae's automatic precision against the plain
#: float32 Keras loop, 64×64×3: images/s ratio per batch size, and limits.
SPEED_TARGETS = {128: 1.6, 32: 1.4}
#: keras-vae's own per-step cost: at every architecture and batch, float32
#: and auto at least this many times the plain float32 loop's images/s.
OVERHEAD_TARGET = 1.0
#: Compiled (XLA) keras-vae against the plain loop compiled, and against
#: keras-vae uncompiled (this CPU).
XLA_TARGETS = {"plain": 0.9, "uncompiled": 0.7}
#: BENCHMARKS.md's region written by `benchmarks.data_scaling`, kept as is.
DATA_REGION = ("<!-- data-scaling:start -->", "<!-- data-scaling:end -->")
ELBO_TOLERANCE = 0.01  # Relative, of the validation ELBO.
FIRST_STEP_TOLERANCE = 0.20  # Relative, slower first step than float32.


def _lookup(rows):
    return {(r["architecture"], r["implementation"], r["precision"], r["batch_size"], r["xla"]): r
            for r in rows}


def _rate(row):
    return f"{row['images_per_s']:.0f} ({row['percent_of_peak']:.0f} %)"


def precision_table(rows):
    """Markdown: per architecture and batch (XLA off), plain float32 loop,
    keras-vae float32 and keras-vae auto, with % of the peak of each's precision."""
    lookup = _lookup(rows)
    lines = [
        "| architecture | batch | plain float32 img/s (% of peak) "
        "| keras-vae float32 | × plain | keras-vae auto | policy | × plain "
        "| first step plain / float32 / auto (s) | peak RSS plain / float32 / auto (MiB) |",
        "|---|---:|---:|---:|---:|---:|:-:|---:|---:|---:|",
    ]
    for (arch, impl, precision, batch, xla), plain in lookup.items():
        if impl != "plain" or xla:
            continue
        ours = lookup[(arch, "keras-vae", "float32", batch, False)]
        auto = lookup[(arch, "keras-vae", "auto", batch, False)]
        memory = " / ".join("–" if r["peak_mib"] is None else str(r["peak_mib"])
                            for r in (plain, ours, auto))
        lines.append(
            f"| {arch} | {batch} | {_rate(plain)} | {_rate(ours)} "
            f"| {ours['images_per_s'] / plain['images_per_s']:.2f} | {_rate(auto)} "
            f"| {auto['policy']} | **{auto['images_per_s'] / plain['images_per_s']:.2f}** "
            f"| {plain['first_step_s']:.1f} / {ours['first_step_s']:.1f} / "
            f"{auto['first_step_s']:.1f} | {memory} |"
        )
    return "\n".join(lines)


def xla_table(rows):
    """Markdown: jit_compile on against off, and against the plain loop compiled."""
    lookup = _lookup(rows)
    lines = [
        "| architecture | batch | variant | XLA off img/s | XLA on img/s | on / off "
        "| on / plain on | first step off / on (s) |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for (arch, impl, precision, batch, xla), on in lookup.items():
        if not xla:
            continue
        off = lookup[(arch, impl, precision, batch, False)]
        plain = lookup[(arch, "plain", "float32", batch, True)]
        lines.append(
            f"| {arch} | {batch} | {impl} {precision} | {off['images_per_s']:.0f} "
            f"| {on['images_per_s']:.0f} | {on['images_per_s'] / off['images_per_s']:.2f} "
            f"| {on['images_per_s'] / plain['images_per_s']:.2f} "
            f"| {off['first_step_s']:.1f} / {on['first_step_s']:.1f} |"
        )
    return "\n".join(lines) if len(lines) > 2 else ""


def _change(value, base):
    return (value - base) / abs(base)


def _float32_of(elbos, seed):
    return next(e for e in elbos if e["seed"] == seed and e["precision"] == "float32")


def elbo_table(elbos):
    """Markdown: validation ELBO after the same steps, against float32 of the same seed."""
    if not elbos:
        return ""
    lines = [
        "| architecture | precision | policy | seed | steps × batch | validation ELBO "
        "(nats/image) | vs float32, same seed | these weights scored in another precision "
        "| training (s) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for e in elbos:
        base = _float32_of(elbos, e["seed"])["validation_elbo"]
        same = "<br>".join(
            f"{policy}: {value:.1f} ({100 * _change(value, e['validation_elbo']):+.3f} %)"
            for policy, value in e.get("same_weights_elbo", {}).items()) or "–"
        lines.append(
            f"| {e['architecture']} | {e['precision']} | {e['policy']} | {e['seed']} "
            f"| {e['steps']} × {e['batch_size']} | {e['validation_elbo']:.1f} "
            f"| {100 * _change(e['validation_elbo'], base):+.2f} % | {same} "
            f"| {e['train_s']:.0f} |"
        )
    return "\n".join(lines)


def elbo_changes(elbos):
    """(auto vs float32 per seed, float32 seed vs seed, same weights auto vs
    float32), relative changes of the validation ELBO."""
    seeds = sorted({e["seed"] for e in elbos})
    f32 = {s: _float32_of(elbos, s)["validation_elbo"] for s in seeds}
    auto = [_change(e["validation_elbo"], f32[e["seed"]]) for e in elbos
            if e["precision"] == "auto"]
    spread = [_change(f32[s], f32[seeds[0]]) for s in seeds[1:]]
    same = [_change(value, f32[e["seed"]]) for e in elbos
            for value in e.get("same_weights_elbo", {}).values()]
    return auto, spread, same


def targets(rows, elbos, arch="64x64x3"):
    """[(what, measured, target, met)] of the issue's targets, where measured."""
    lookup = _lookup(rows)
    found = []
    for batch, target in SPEED_TARGETS.items():
        plain = lookup.get((arch, "plain", "float32", batch, False))
        auto = lookup.get((arch, "keras-vae", "auto", batch, False))
        if plain and auto:
            ratio = auto["images_per_s"] / plain["images_per_s"]
            found.append((f"{arch} batch {batch}: keras-vae auto / plain float32 img/s",
                          f"{ratio:.2f}×", f"≥ {target}×", ratio >= target))
    for batch in SPEED_TARGETS:
        f32 = lookup.get((arch, "keras-vae", "float32", batch, False))
        auto = lookup.get((arch, "keras-vae", "auto", batch, False))
        if f32 and auto:
            change = auto["first_step_s"] / f32["first_step_s"] - 1
            found.append((f"{arch} batch {batch}: first step, auto vs keras-vae float32",
                          f"{100 * change:+.0f} %", f"≤ +{100 * FIRST_STEP_TOLERANCE:.0f} %",
                          change <= FIRST_STEP_TOLERANCE))
    found += overhead_targets(lookup) + xla_targets(lookup)
    if elbos:
        auto, spread, same = elbo_changes(elbos)
        mean = sum(auto) / len(auto)
        what = f"{elbos[0]['architecture']}: validation ELBO after {elbos[0]['steps']} steps"
        wanted = f"within ±{100 * ELBO_TOLERANCE:.0f} %"
        found.append((f"{what}, auto vs float32 (mean over {len(auto)} seeds)",
                      f"{100 * mean:+.2f} %", wanted, abs(mean) <= ELBO_TOLERANCE))
        if spread:
            found.append((f"{what}, float32 seed vs seed (for scale: not a target)",
                          ", ".join(f"{100 * s:+.2f} %" for s in spread), "–", None))
        if same:
            worst = max(same, key=abs)
            found.append(("the same float32-trained weights scored in mixed precision vs float32",
                          f"{100 * worst:+.3f} %", wanted, abs(worst) <= ELBO_TOLERANCE))
    return found


def overhead_targets(lookup):
    """keras-vae float32 and auto against the plain float32 loop, XLA off,
    at every architecture and batch measured."""
    found = []
    for (arch, impl, _, batch, xla), plain in lookup.items():
        if impl != "plain" or xla:
            continue
        for precision in ("float32", "auto"):
            ours = lookup.get((arch, "keras-vae", precision, batch, False))
            if ours:
                ratio = ours["images_per_s"] / plain["images_per_s"]
                what = f"{arch} batch {batch}: keras-vae {precision} / plain float32 img/s"
                found.append((f"{what} (overhead)", f"{ratio:.2f}×", f"≥ {OVERHEAD_TARGET}×",
                              ratio >= OVERHEAD_TARGET))
    return found


def xla_targets(lookup):
    """keras-vae float32 compiled against the plain loop compiled and against
    itself uncompiled, wherever XLA was timed."""
    found = []
    for (arch, impl, precision, batch, xla), on in lookup.items():
        if not xla or impl != "keras-vae" or precision != "float32":
            continue
        against = {"plain": lookup[(arch, "plain", "float32", batch, True)],
                   "uncompiled": lookup[(arch, impl, precision, batch, False)]}
        for name, target in XLA_TARGETS.items():
            ratio = on["images_per_s"] / against[name]["images_per_s"]
            what = "the plain loop compiled" if name == "plain" else "keras-vae uncompiled"
            found.append((f"{arch} batch {batch}: keras-vae float32 compiled / {what} img/s",
                          f"{ratio:.2f}×", f"≥ {target}×", ratio >= target))
    return found


def targets_table(found):
    lines = ["| target | measured | wanted | met |", "|---|---:|---:|:-:|"]
    verdicts = {True: "yes", False: "**no**", None: "–"}
    lines += [f"| {what} | {got} | {want} | {verdicts[met]} |" for what, got, want, met in found]
    return "\n".join(lines)


def pipeline_table(extras):
    lines = [
        "| data set (make_datasets, training pipeline) | image | pipeline alone img/s |",
        "|---|---|---:|",
    ]
    for source, size, channels, rate in extras["pipelines"]:
        lines.append(f"| {source} | {size}×{size}×{channels} | {rate:.0f} |")
    lines += [
        "",
        "| architecture | batch | keras-vae (auto) on the live pipeline img/s "
        "| on cached batches img/s | live / cached |",
        "|---|---:|---:|---:|---:|",
    ]
    for arch, batch, live, cached in extras["live"]:
        lines.append(f"| {arch} | {batch} | {live:.0f} | {cached:.0f} | {live / cached:.2f} |")
    return "\n".join(lines)


def write_csv(rows, path):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(path, buffer.getvalue())


def write_markdown(rows, extras, info, settings, path, elapsed_s):
    flops = {r["architecture"]: r["gflops_per_image"] for r in rows}
    peaks = extras["matmul_gflops"]
    spread = extras["matmul_all"]
    auto = info["precision"]
    xla = xla_table(rows)
    elbo = elbo_table(extras["elbo"])
    gpu = (f"GPU: {', '.join(info['gpus'])}" if info.get("gpus") else
           "no GPU (no GPU has been measured: `python -m benchmarks --gpu` is the GPU run, "
           "a few minutes on one GPU)")
    text = f"""# Benchmarks

Generated by `python -m benchmarks{' ' + settings.name if settings.name else ''}` \
in {elapsed_s / 60:.1f} min on {info['date']}: {info['cpu']}, {info['cores']} cores \
(CPU flags: {', '.join(auto['cpu_flags']) or 'none of note'}), {gpu}, TensorFlow \
{info['tensorflow']}, Keras {info['keras']}, oneDNN (TF_ENABLE_ONEDNN_OPTS) {info['onednn']}.
`precision = "auto"` resolved to **{auto['policy']}** ({auto['reason']}).
The 1-minute load average, sampled at the start, after each round and at the end, was
{', '.join(f'{v:.1f}' for v in extras['load_averages'])} (the benchmark itself accounts for
about {info['cores']}; above that, other processes competed for the cores: absolute rates
are underestimates, but every variant was timed in the same rounds, so the ratios hold).
Re-run it to measure your machine.

## Targets

{targets_table(targets(rows, extras['elbo']))}

## Precision: keras-vae against the plain float32 Keras loop

{precision_table(rows)}

Each rate is followed by its share of this machine's measured matrix-multiply
peak *for that precision*: float32 {peaks['float32']:.0f} GFLOP/s
(min {min(spread['float32']):.0f}, max {max(spread['float32']):.0f}), bfloat16
{peaks['bfloat16']:.0f} GFLOP/s (min {min(spread['bfloat16']):.0f}, max \
{max(spread['bfloat16']):.0f}), a {harness.MATMUL_SIZE}×{harness.MATMUL_SIZE} `tf.matmul`
measured in every round; bfloat16 is {peaks['bfloat16'] / peaks['float32']:.1f}× float32 here.
{f'''
## Quality: validation ELBO after a fixed number of steps

{elbo}

Each seed's float32 and automatic-precision runs start from the same initial
weights and train on the same cached batches (Adam 1e-3); then they are scored
on 512 held-out images with one seeded z sample each. Two float32 seeds show
how far runs land apart by chance alone; "these weights scored in auto" is the
float32-trained model's ELBO with its networks computing in a mixed
precision: what the precision does to the number itself.
''' if elbo else ''}{f'''
## XLA (jit_compile)

{xla}

"on / plain on": keras-vae compiled against the plain loop compiled, the
same networks. Compiled, keras-vae's non-finite-step guard is a select
(`tf.where`) of the new and old variable values, which XLA fuses into the
update; a `tf.cond` around the update, as before, made the compiled step
25× slower on CPU. Keras's
`jit_compile="auto"` (what `keras-vae train` uses) compiles on a GPU and
leaves XLA off on a CPU-only machine, where its kernels are slower than
oneDNN's for plain Keras too (a variant whose step took over
{harness.SLOW_STEPS}× the timing length is timed by its warm-up step alone:
`timed_rounds` 0 in the CSV).
''' if xla else ''}
## Input pipeline

{pipeline_table(extras)}

## Method

Training images per second of keras-vae's `VAE.fit` against a plain Keras loop
(`benchmarks/reference.py`: the Keras documentation's VAE example, a `Sampling`
layer and a hand-written BCE or squared-error + KL `train_step`, in float32) on
the same networks (`build_encoder`/`build_decoder`), the same optimizer (Adam)
and the same in-memory batches. keras-vae runs in float32 and in its automatic
precision (`build_conv_vae(precision="auto")`: the networks in
{auto['policy']}, the loss terms in float32). Every variant is warmed up, then
timed {settings.rounds}× for about {settings.seconds:g} s in shuffled order; the
tables give the median (min–max in `benchmarks.csv`). FLOPs are counted
analytically: 3 × the forward FLOPs of the convolutions and dense layers
({', '.join(f'{k}: {v:.3f} GFLOP' for k, v in flops.items())} per image and
training step). First step: from building the model to the end of batch 1
(building, tracing, XLA compilation), after a throwaway step has paid
TensorFlow's one-time start-up. Peak RSS: `VmHWM` of a fresh process training
that variant at batch {settings.batch_sizes[-1]} (the process holds TensorFlow
itself, about the "before fit" column of the CSV).

Architectures: 28×28×1, filters (32, 64), latent 16, Bernoulli, Fashion-MNIST;
64×64×3, filters (32, 64, 128), latent 32, Gaussian σ = {reference.GAUSSIAN_SIGMA},
paintings (random crops).
"""
    files.write_text(path, text + _data_region(path))


def _data_region(path):
    """The data-scaling section of the BENCHMARKS.md at `path`, if it has one:
    written by another command (`python -m benchmarks.data_scaling`), kept."""
    try:
        old = path.read_text()
    except FileNotFoundError:
        return ""
    start, end = old.find(DATA_REGION[0]), old.find(DATA_REGION[1])
    if start < 0 or end < start:
        return ""
    return "\n" + old[start:end + len(DATA_REGION[1])] + "\n"
