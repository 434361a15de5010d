"""BENCHMARKS.md and benchmarks.csv from a run's `results.Results`."""

import csv
import io
import re

from benchmarks import reference, timing
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
#: BENCHMARKS.md's regions written by other commands (such as
#: `python -m benchmarks.data_scaling`'s "data-scaling"), kept as they are.
REGION = re.compile(r"<!-- ([\w.-]+):start -->.*?<!-- \1:end -->", re.S)
ELBO_TOLERANCE = 0.01  # Relative, of the validation ELBO.
FIRST_STEP_TOLERANCE = 0.20  # Relative, slower first step than float32.
VERDICTS = {True: "yes", False: "**no**", None: "–"}


def _lookup(rows):
    return {row.key: row for row in rows}


def _rate(row):
    return f"{row.images_per_s.median:.0f} ({row.percent_of_peak:.0f} %)"


def _paired(row):
    """"1.02× (0.97–1.06); 1.00× by CPU time": a row's paired ratio to the plain loop."""
    return f"{row.vs_plain.ratio()}; {row.vs_plain_cpu.median:.2f}× by CPU time"


def precision_table(rows):
    """Markdown: per architecture and batch (XLA off), plain float32 loop,
    keras-vae float32 and keras-vae auto, with % of the peak of each's
    precision, and keras-vae's paired ratios to the plain loop."""
    lookup = _lookup(rows)
    lines = [
        "| architecture | batch | plain float32 img/s (% of peak) "
        "| keras-vae float32 | × plain: paired median (quartiles); by CPU time "
        "| keras-vae auto | policy | × plain: paired median (quartiles); by CPU time "
        "| first step plain / float32 / auto (s) | peak RSS plain / float32 / auto (MiB) |",
        "|---|---:|---:|---:|---:|---:|:-:|---:|---:|---:|",
    ]
    for (arch, impl, precision, batch, xla), plain in lookup.items():
        if impl != "plain" or xla:
            continue
        ours = lookup[(arch, "keras-vae", "float32", batch, False)]
        auto = lookup[(arch, "keras-vae", "auto", batch, False)]
        memory = " / ".join("–" if r.peak_mib is None else str(r.peak_mib)
                            for r in (plain, ours, auto))
        lines.append(
            f"| {arch} | {batch} | {_rate(plain)} | {_rate(ours)} | {_paired(ours)} "
            f"| {_rate(auto)} | {auto.policy} | **{_paired(auto)}** "
            f"| {plain.first_step_s:.1f} / {ours.first_step_s:.1f} / {auto.first_step_s:.1f} "
            f"| {memory} |"
        )
    return "\n".join(lines)


def xla_table(rows):
    """Markdown: jit_compile on against off, and against the plain loop
    compiled, paired ratios."""
    lookup = _lookup(rows)
    lines = [
        "| architecture | batch | variant | XLA off img/s | XLA on img/s "
        "| on / off: paired median (quartiles) | on / plain on | first step off / on (s) |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for (arch, impl, precision, batch, xla), on in lookup.items():
        if not xla:
            continue
        off = lookup[(arch, impl, precision, batch, False)]
        against_plain = on.vs_plain.ratio() if on.vs_plain else "1"
        lines.append(
            f"| {arch} | {batch} | {impl} {precision} | {off.images_per_s.median:.0f} "
            f"| {on.images_per_s.median:.0f} | {on.vs_uncompiled.ratio()} | {against_plain} "
            f"| {off.first_step_s:.1f} / {on.first_step_s:.1f} |"
        )
    return "\n".join(lines) if len(lines) > 2 else ""


def _change(value, base):
    return (value - base) / abs(base)


def _float32_of(elbos, seed):
    return next(e for e in elbos if e.seed == seed and e.precision == "float32")


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
        base = _float32_of(elbos, e.seed).validation_elbo
        same = "<br>".join(
            f"{policy}: {value:.1f} ({100 * _change(value, e.validation_elbo):+.3f} %)"
            for policy, value in e.same_weights_elbo.items()) or "–"
        lines.append(
            f"| {e.architecture} | {e.precision} | {e.policy} | {e.seed} "
            f"| {e.steps} × {e.batch_size} | {e.validation_elbo:.1f} "
            f"| {100 * _change(e.validation_elbo, base):+.2f} % | {same} | {e.train_s:.0f} |"
        )
    return "\n".join(lines)


def elbo_changes(elbos):
    """(auto vs float32 per seed, float32 seed vs seed, same weights in
    another precision vs float32), relative changes of the validation ELBO."""
    seeds = sorted({e.seed for e in elbos})
    f32 = {s: _float32_of(elbos, s).validation_elbo for s in seeds}
    auto = [_change(e.validation_elbo, f32[e.seed]) for e in elbos if e.precision == "auto"]
    spread = [_change(f32[s], f32[seeds[0]]) for s in seeds[1:]]
    same = [_change(value, f32[e.seed]) for e in elbos for value in e.same_weights_elbo.values()]
    return auto, spread, same


def targets(rows, elbos, arch="64x64x3"):
    """[(what, measured, target, met)] of the issue's targets, where measured;
    speed ratios are paired medians (`timing.paired`)."""
    lookup = _lookup(rows)
    found = []
    for batch, target in SPEED_TARGETS.items():
        auto = lookup.get((arch, "keras-vae", "auto", batch, False))
        if auto:
            found.append((f"{arch} batch {batch}: keras-vae auto / plain float32 img/s",
                          auto.vs_plain.ratio(), f"≥ {target}×", auto.vs_plain.median >= target))
    for batch in SPEED_TARGETS:
        f32 = lookup.get((arch, "keras-vae", "float32", batch, False))
        auto = lookup.get((arch, "keras-vae", "auto", batch, False))
        if f32 and auto:
            change = auto.first_step_s / f32.first_step_s - 1
            found.append((f"{arch} batch {batch}: first step, auto vs keras-vae float32",
                          f"{100 * change:+.0f} %", f"≤ +{100 * FIRST_STEP_TOLERANCE:.0f} %",
                          change <= FIRST_STEP_TOLERANCE))
    return found + overhead_targets(rows) + xla_targets(rows) + elbo_targets(elbos)


def overhead_targets(rows):
    """keras-vae float32 and auto against the plain float32 loop, XLA off,
    at every architecture and batch measured."""
    return [
        (f"{row.architecture} batch {row.batch_size}: keras-vae {row.precision} / plain "
         "float32 img/s (overhead)", _paired(row), f"≥ {OVERHEAD_TARGET}×",
         row.vs_plain.median >= OVERHEAD_TARGET)
        for row in rows
        if row.implementation == "keras-vae" and row.precision in ("float32", "auto")
        and not row.xla and row.vs_plain
    ]


def xla_targets(rows):
    """keras-vae float32 compiled against the plain loop compiled and against
    itself uncompiled, wherever XLA was timed."""
    found = []
    for row in rows:
        if not row.xla or row.implementation != "keras-vae" or row.precision != "float32":
            continue
        where = f"{row.architecture} batch {row.batch_size}: keras-vae float32 compiled"
        for name, ratio in (("the plain loop compiled", row.vs_plain),
                            ("keras-vae uncompiled", row.vs_uncompiled)):
            target = XLA_TARGETS["plain" if ratio is row.vs_plain else "uncompiled"]
            found.append((f"{where} / {name} img/s", ratio.ratio(), f"≥ {target}×",
                          ratio.median >= target))
    return found


def elbo_targets(elbos):
    """The validation ELBO of the automatic precision against float32, and of
    the same weights scored in another precision."""
    if not elbos:
        return []
    auto, spread, same = elbo_changes(elbos)
    mean = sum(auto) / len(auto)
    what = f"{elbos[0].architecture}: validation ELBO after {elbos[0].steps} steps"
    wanted = f"within ±{100 * ELBO_TOLERANCE:.0f} %"
    found = [(f"{what}, auto vs float32 (mean over {len(auto)} seeds)", f"{100 * mean:+.2f} %",
              wanted, abs(mean) <= ELBO_TOLERANCE)]
    if spread:
        found.append((f"{what}, float32 seed vs seed (for scale: not a target)",
                      ", ".join(f"{100 * s:+.2f} %" for s in spread), "–", None))
    if same:
        worst = max(same, key=abs)
        found.append(("the same float32-trained weights scored in mixed precision vs float32",
                      f"{100 * worst:+.3f} %", wanted, abs(worst) <= ELBO_TOLERANCE))
    return found


def targets_table(found):
    lines = ["| target | measured | wanted | met |", "|---|---:|---:|:-:|"]
    lines += [f"| {what} | {got} | {want} | {VERDICTS[met]} |" for what, got, want, met in found]
    return "\n".join(lines)


def pipeline_table(results):
    lines = [
        "| data set (make_datasets, training pipeline) | image | pipeline alone img/s |",
        "|---|---|---:|",
    ]
    for source, size, channels, rate in results.pipelines:
        lines.append(f"| {source} | {size}×{size}×{channels} | {rate:.0f} |")
    lines += [
        "",
        "| architecture | batch | keras-vae (auto) on the live pipeline img/s "
        "| on cached batches img/s | live / cached |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results.live:
        lines.append(f"| {r.architecture} | {r.batch_size} | {r.live:.0f} | {r.cached:.0f} "
                     f"| {r.live / r.cached:.2f} |")
    return "\n".join(lines)


def write_csv(rows, path):
    flat = [row.flat() for row in rows]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(flat[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    files.write_text(path, buffer.getvalue())


def write_markdown(results, info, settings, path, elapsed_s):
    """BENCHMARKS.md at `path`, the marked regions of the old one kept."""
    sections = [_header(results, info, settings, elapsed_s),
                "## Targets\n\n" + targets_table(targets(results.rows, results.elbo)),
                "## Precision: keras-vae against the plain float32 Keras loop\n\n"
                + precision_table(results.rows) + "\n\n" + _peaks(results)]
    elbo = elbo_table(results.elbo)
    if elbo:
        sections.append("## Quality: validation ELBO after a fixed number of steps\n\n" + elbo
                        + "\n\n" + ELBO_NOTE)
    xla = xla_table(results.rows)
    if xla:
        sections.append("## XLA (jit_compile)\n\n" + xla + "\n\n" + XLA_NOTE)
    sections += ["## Input pipeline\n\n" + pipeline_table(results),
                 _method(results.rows, info, settings)]
    files.write_text(path, "\n\n".join(sections) + "\n" + _kept_regions(path))


def _header(results, info, settings, elapsed_s):
    auto = info["precision"]
    gpu = (f"GPU: {', '.join(info['gpus'])}" if info.get("gpus") else
           "no GPU (no GPU has been measured: `python -m benchmarks --gpu` is the GPU run, "
           "a few minutes on one GPU)")
    loads = ", ".join(f"{v:.1f}" for v in results.load_averages)
    return f"""# Benchmarks

Generated by `python -m benchmarks{' ' + settings.name if settings.name else ''}` \
in {elapsed_s / 60:.1f} min on {info['date']}: {info['cpu']}, {info['cores']} cores \
(CPU flags: {', '.join(auto['cpu_flags']) or 'none of note'}), {gpu}, TensorFlow \
{info['tensorflow']}, Keras {info['keras']}, oneDNN (TF_ENABLE_ONEDNN_OPTS) {info['onednn']}.
`precision = "auto"` resolved to **{auto['policy']}** ({auto['reason']}).
The 1-minute load average, sampled at the start, after each round and at the end, was
{loads} (the benchmark itself accounts for about 1 to {info['cores']}; above that, other
processes competed for the cores: absolute rates are underestimates and vary from round to
round, so every ratio is taken within a round, between variants timed side by side, and
its median and quartiles over the rounds are given). Re-run it to measure your machine."""


def _peaks(results):
    spread = {dtype: timing.Spread.of(values) for dtype, values in results.matmul_gflops.items()}
    f32, bf16 = spread["float32"], spread["bfloat16"]
    return f"""Each rate is the median of the timed blocks, followed by its share of this
machine's measured matrix-multiply peak *for that precision*: float32 {f32.median:.0f} GFLOP/s
(quartiles {f32.low:.0f}–{f32.high:.0f}), bfloat16 {bf16.median:.0f} GFLOP/s (quartiles
{bf16.low:.0f}–{bf16.high:.0f}), a {timing.MATMUL_SIZE}×{timing.MATMUL_SIZE} `tf.matmul` measured
after every round; bfloat16 is {bf16.median / f32.median:.1f}× float32 here. "× plain": in
each round, keras-vae's rate over the plain loop's of the same round; the median over the
rounds, its quartiles in brackets, then the same ratio of images per second of process CPU
time (all threads), which other processes on the cores disturb far less than the wall clock."""


ELBO_NOTE = """Each seed's float32 and automatic-precision runs start from the same initial
weights and train on the same cached batches (Adam 1e-3); then they are scored
on 512 held-out images with one seeded z sample each. Two float32 seeds show
how far runs land apart by chance alone; "these weights scored in another
precision" is the float32-trained model's ELBO with its networks computing in a
mixed precision: what the precision does to the number itself."""

XLA_NOTE = """"on / off" and "on / plain on": paired ratios, as above; keras-vae compiled
against itself uncompiled, and against the plain loop compiled, the same networks.
Compiled, keras-vae's non-finite-step guard is a select (`tf.where`) of the new and
old variable values, which XLA fuses into the update; a `tf.cond` around the update,
as before, made the compiled step 25× slower on CPU. Keras's `jit_compile="auto"`
(what `keras-vae train` uses) compiles on a GPU and leaves XLA off on a CPU-only
machine, where its kernels are slower than oneDNN's for plain Keras too: the
compiled step's convolutions are XLA's own (an HLO dump of it shows `convolution`
instructions, no oneDNN calls, even with
`XLA_FLAGS=--xla_cpu_experimental_onednn_custom_call=true`), and "on / off" is
the plain loop's own within the quartiles at every size."""


def _method(rows, info, settings):
    flops = {r.architecture: r.gflops_per_image for r in rows}
    return f"""## Method

Training images per second of keras-vae's `VAE.fit` against a plain Keras loop
(`benchmarks/reference.py`: the Keras documentation's VAE example, a `Sampling`
layer and a hand-written BCE or squared-error + KL `train_step`, in float32) on
the same networks (`build_encoder`/`build_decoder`), the same optimizer (Adam)
and the same in-memory batches. keras-vae runs in float32 and in its automatic
precision (`build_conv_vae(precision="auto")`: the networks in
{info['precision']['policy']}, the loss terms in float32). Every variant is warmed up and its
block length set to about {settings.seconds:g} s of steps; then the variants of one
architecture and batch are timed in {settings.rounds} rounds, each round training every
variant for one block in a seeded random order (`benchmarks/timing.py`). A block is
timed from the start to the end of `fit`'s training loop (callbacks included, `fit`'s
set-up not). FLOPs are counted analytically: 3 × the forward FLOPs of the
convolutions and dense layers ({', '.join(f'{k}: {v:.3f} GFLOP' for k, v in flops.items())}
per image and training step). First step: from building the model to the end of
batch 1 (building, tracing, XLA compilation), after a throwaway step has paid
TensorFlow's one-time start-up. Peak RSS: `VmHWM` of a fresh process training that
variant at batch {settings.batch_sizes[-1]} (the process holds TensorFlow itself, about
the "before fit" column of the CSV).

Architectures: 28×28×1, filters (32, 64), latent 16, Bernoulli, Fashion-MNIST;
64×64×3, filters (32, 64, 128), latent 32, Gaussian σ = {reference.GAUSSIAN_SIGMA},
paintings (random crops)."""


def _kept_regions(path):
    """The marked regions (`REGION`) of the BENCHMARKS.md at `path`, if any:
    written by other commands, kept in their order."""
    try:
        old = path.read_text()
    except FileNotFoundError:
        return ""
    return "".join("\n" + match.group(0) + "\n" for match in REGION.finditer(old))
