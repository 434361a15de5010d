"""The report of `keras-vae compare`: tables, figures, and the three answers.

`write(folder, ...)` puts into `folder`: results.json (every number),
results.csv, results.md, the figures (reconstructions of training and of
held-out views, prior samples, latent traversals, rate against PSNR),
report.md (which links them) and report.html (the same, with the figures
embedded: one file to send or open offline). The answers' sentences are
written from the measured numbers, never by hand.
"""

import base64
import csv
import html
import io
import math
import re

import matplotlib
from matplotlib.figure import Figure  # Without pyplot: the backend is left alone.
import numpy as np

from keras_vae import diagnostics
from keras_vae import files
from keras_vae import plotting
from export import runfolder
from pipelines import markdown as markdown_lib

SPLITS = {"train": "training views", "held_out": "held-out views"}
#: Traversal values, in prior standard deviations, and dimensions shown.
TRAVERSAL_VALUES = np.linspace(-2.5, 2.5, 8)
TRAVERSAL_DIMS = 4


def _number(value, digits=2):
    return "—" if value is None else f"{value:,.{digits}f}"


def tables(objectives, results):
    """The Markdown tables: the models, then one per split."""
    rows = []
    for o in objectives:
        r = results[o.key]
        sigma = "→ 0 (β = 0)" if r["sigma"] is None else f"{r['sigma']:.4f}"
        rows.append([o.label, sigma, r["latent_dim"], _number(r["gradient_ratio"], 3),
                     f"{r['train_seconds']:.0f}"])
    lines = markdown_lib.table(["objective", "σ assumed or fitted (pixel units)", "latent size",
                            "‖∇β·rate‖ / ‖∇distortion‖", "training time (s)"], rows)
    for split, title in SPLITS.items():
        lines += [
            "",
            f"On the {title} ({results[objectives[0].key][split]['images']} images); rate, "
            "distortion and ELBO in nats per image, each model under its own σ:",
            "",
        ]
        measured = [results[o.key][split] for o in objectives]
        lines += markdown_lib.table(
            ["objective", "rate", "distortion", "ELBO", "MSE", "PSNR (dB)", "SSIM"],
            [[o.label, _number(m["rate"], 1), _number(m["distortion"], 1),
              _number(m["elbo"], 1), f"{m['mse']:.5f}", f"{m['psnr']:.2f}", f"{m['ssim']:.3f}"]
             for o, m in zip(objectives, measured)],
        )
    return lines


def write_csv(path, objectives, results):
    """results.csv: one row per objective and split, full precision."""
    names = (*runfolder.BOUND_TERMS, "mse", "psnr", "ssim", "images")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["objective", "split", "sigma", "latent_dim", "gradient_ratio",
                     "train_seconds", *names])
    for o in objectives:
        r = results[o.key]
        for split in SPLITS:
            writer.writerow([o.key, split, r["sigma"], r["latent_dim"], r["gradient_ratio"],
                             r["train_seconds"], *(r[split][n] for n in names)])
    files.write_text(path, text.getvalue())


def answers(results, data_name):
    """The three questions, each answered from the measured numbers: every
    comparison word (better, worse, closer) is chosen by the numbers' sign."""
    kl, tenth, cal, ae, big = (results[k] for k in
                               ("mse_kl", "mse_0.1kl", "calibrated", "autoencoder", "mse_kl_4z"))
    train, held = "train", "held_out"

    def psnr(r, split=train):
        return f"{r[split]['psnr']:.2f} dB"

    def versus(a, b, split=train):  # "1.2 dB better" / "0.3 dB worse" of a against b.
        gap = a[split]["psnr"] - b[split]["psnr"]
        return f"{abs(gap):.2f} dB {'better' if gap >= 0 else 'worse'}"

    vaes = {"‖x − x̂‖² + KL": kl, "‖x − x̂‖² + 0.1·KL": tenth, "the calibrated σ-VAE": cal}
    best = max(vaes, key=lambda name: vaes[name][held]["elbo"])
    closer = abs(math.log(tenth["sigma"] / cal["sigma"])) < abs(math.log(kl["sigma"] / cal["sigma"]))
    sound = (
        f"**Is weighting the KL term sound?** Yes: ‖x − x̂‖² + w·KL is, up to a scale and a "
        f"constant, the negative ELBO of a Gaussian decoder with noise σ² = w/2 on [0, 1] "
        f"pixels, so every weight is a claim about σ, and each row above is the honest ELBO "
        f"of its own σ. Fitted to the data, σ comes out at {cal['sigma']:.3f}. "
        f"‖x − x̂‖² + KL assumes σ = {kl['sigma']:.3f} ({kl['sigma'] / cal['sigma']:.1f}× the "
        f"fitted value), so it prices the KL {(kl['sigma'] / cal['sigma']) ** 2:.0f}× higher "
        f"against reconstruction than the data warrant: its rate is {kl[train]['rate']:.1f} "
        f"nats against {cal[train]['rate']:.1f} for the calibrated model, and its training "
        f"reconstructions reach {psnr(kl)} against {psnr(cal)}. ‖x − x̂‖² + 0.1·KL assumes "
        f"σ = {tenth['sigma']:.3f}, {'closer to' if closer else 'further from'} the fitted "
        f"value (rate {tenth[train]['rate']:.1f} nats, {psnr(tenth)}). The best held-out "
        f"ELBO, {vaes[best][held]['elbo']:,.0f} nats, is {best}'s. Rather than guess the "
        f"weight, fit σ (`likelihood = \"gaussian_optimal\"`) and keep β = 1."
    )
    ratios = ", ".join(
        f"{r['gradient_ratio']:.3f} for {name}" for name, r in vaes.items()
    )
    descent = (
        f"**What does it do to gradient descent?** The gradient is ∇distortion + β·∇rate: "
        f"the weight sets how hard the prior pulls each posterior towards N(0, I) against "
        f"the data's pull on the reconstruction. After training, ‖∇β·rate‖ / ‖∇distortion‖ "
        f"on one training batch was {ratios}. Multiplying the whole loss by a constant "
        f"changes nothing under Adam, so ‖x − x̂‖² + 0.1·KL and 10·‖x − x̂‖² + KL train "
        f"alike: only the ratio of the two pulls matters."
    )
    drop_ae = ae[train]["psnr"] - ae[held]["psnr"]
    drop_cal = cal[train]["psnr"] - cal[held]["psnr"]
    latent_gain = big[train]["psnr"] - kl[train]["psnr"]
    sigma_gain = cal[train]["psnr"] - kl[train]["psnr"]
    smooth = (
        f"**Does it mean reconstruction matters more than a smooth latent space?** It means "
        f"trusting the pixels more. The autoencoder (β = 0: σ → 0, no KL, no sampling) "
        f"reconstructs training views at {psnr(ae)}; the calibrated VAE is "
        f"{versus(cal, ae)} ({psnr(cal)}) while spending {cal[train]['rate']:.0f} nats on "
        f"z, and ‖x − x̂‖² + KL is {versus(kl, ae)} ({psnr(kl)}). What the autoencoder gives "
        f"up shows in the samples figure: its latent space was never pulled towards the "
        f"prior, so decoding z ~ N(0, I) lands where no training view was encoded. Held-out "
        f"views of `{data_name}` are {'harder' if min(drop_ae, drop_cal) > 0 else 'no harder'} "
        f"({psnr(ae, held)} for the autoencoder, {psnr(cal, held)} for the calibrated VAE): "
        f"what a small code learned from a few pictures says about an unseen one. The "
        f"reply's larger latent (4× under ‖x − x̂‖² + KL) moves training PSNR by "
        f"{latent_gain:+.2f} dB at a rate of {big[train]['rate']:.1f} nats; calibrating σ "
        f"moves it by {sigma_gain:+.2f} dB: "
        + ("σ, not the latent size, was the limit." if sigma_gain > latent_gain
           else "here the latent size mattered more than σ.")
    )
    return [sound, descent, smooth]


def _rate_psnr_plot(objectives, results, path):
    """PSNR (dB) against rate (nats), training and held-out views; the
    autoencoder, which has no rate, as horizontal lines."""
    figure = Figure(figsize=(6.8, 4.6), layout="constrained")
    axes = figure.subplots()
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, o in enumerate(objectives):
        r, color = results[o.key], colors[i % len(colors)]
        if r["train"]["rate"] is None:
            for split, style in (("train", "-"), ("held_out", ":")):
                axes.axhline(r[split]["psnr"], color=color, linestyle=style, linewidth=1,
                             label=f"{o.label} ({SPLITS[split]})")
            continue
        for split, fill in (("train", color), ("held_out", "white")):
            axes.plot(r[split]["rate"], r[split]["psnr"], "o", color=color,
                      markerfacecolor=fill, markersize=8,
                      label=f"{o.label} ({SPLITS[split]})")
    axes.set_xlabel("rate KL(q(z|x) ‖ p(z)), nats per image")
    axes.set_ylabel("reconstruction PSNR, dB (higher is sharper)")
    axes.set_title("What each objective spends on z, and what it buys", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")
    plotting.save_figure(figure, path)


def figures(folder, objectives, results, models, images, seed=0):
    """Writes the PNGs; returns [(file name, caption)] in reading order."""
    labels = [o.label for o in objectives]
    written = []
    for split, title in SPLITS.items():
        x = images["train_views" if split == "train" else "held_out"]
        name = f"reconstructions_{split}.png"
        plotting.labelled_comparison(
            [x, *(np.asarray(models[o.key](x, training=False)) for o in objectives)],
            ["data", *labels], folder / name,
            title=f"Reconstructions of {title} (posterior mean)",
        )
        written.append((name, f"Reconstructions of {title}: the data, then each objective."))
    plotting.labelled_comparison(
        [np.asarray(models[o.key].sample(len(images["held_out"]), seed=seed)) for o in objectives],
        labels, folder / "samples.png", title="Decoded prior draws z ~ N(0, I), the same for all",
    )
    written.append(("samples.png", "Prior samples: the same draws z ~ N(0, I) decoded by each "
                    "model (the 4× latent draws 4× more numbers)."))
    _rate_psnr_plot(objectives, results, folder / "rate_psnr.png")
    written.append(("rate_psnr.png", "Rate against PSNR: filled markers training views, "
                    "hollow ones held-out views."))
    x = images["train_views"]
    for o in objectives:
        if o.autoencoder:
            continue
        model = models[o.key]
        kl = diagnostics.latent_statistics(model, x)["kl_per_dim"]
        dims = [int(d) for d in np.argsort(-kl)[:TRAVERSAL_DIMS]]
        z = model.posterior_factors(x[:1]).loc.numpy()[0]
        rows = plotting.latent_traversals(model, z, dims, TRAVERSAL_VALUES)
        rows = rows.reshape(len(dims), len(TRAVERSAL_VALUES), *rows.shape[1:])
        name = f"traversals_{o.key}.png"
        plotting.labelled_comparison(
            list(rows), [f"z{d} ({kl[d]:.1f} nats)" for d in dims], folder / name,
            title=f"{o.label}: one training view, its highest-KL dimensions swept ±2.5 sd",
        )
        written.append((name, f"Latent traversals, {o.label}."))
    return written


def markdown(config, steps, objectives, results, written):
    d, m, t = config["data"], config["model"], config["train"]
    command = (f"keras-vae compare --data {d['source']} --image-size {d['image_size']} "
               f"--latent-dim {m['latent_dim']} --filters {','.join(map(str, m['filters']))} "
               f"--batch-size {t['batch_size']} --steps {steps}")
    seconds = sum(r["train_seconds"] for r in results.values())
    lines = [
        "# Is weighting the KL term sound? The paintings, answered by a run",
        "",
        f"The same networks (filters {m['filters']}, latent size {m['latent_dim']}, "
        f"{d['image_size']}×{d['image_size']}×{d['channels']} crops of `{d['source']}`), the "
        f"same initial weights, data stream and budget ({steps} steps of batch "
        f"{t['batch_size']}, learning rate {t['learning_rate']:g}, seed {t['seed']}) under five "
        f"objectives; {seconds / 60:.1f} minutes of training in all. Made by `{command}`.",
        "",
        *tables(objectives, results),
        "",
        "σ: the decoder noise each objective assumes (‖x − x̂‖² + w·KL is a Gaussian decoder "
        "with σ² = w/2) or, calibrated, fits; the ratio of gradient norms is on one training "
        "batch after training. Training views are five fixed squares of each training "
        "picture, held-out views the same squares of pictures never trained on.",
        "",
    ]
    for paragraph in answers(results, d["source"]):
        lines += [paragraph, ""]
    for name, caption in written:
        lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    return "\n".join(lines)


def _html(markdown_text, folder):
    """A self-contained page from the report's Markdown: its tables,
    paragraphs and images (embedded as data URLs)."""
    body, table = [], []

    def inline(text):
        text = html.escape(text)
        text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
        text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
        return re.sub(r"(?<![*\w])\*(?!\s)(.+?)\*", r"<em>\1</em>", text)

    def flush():
        if table:
            head, *rows = [[c.strip() for c in row.strip("|").split("|")] for row in table
                           if not set(row) <= set("|-: ")]
            cells = "".join(f"<th>{inline(c)}</th>" for c in head)
            body.append(f"<table><tr>{cells}</tr>" + "".join(
                "<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in rows
            ) + "</table>")
            table.clear()

    for line in markdown_text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("# "):
            body.append(f"<h1>{inline(line[2:])}</h1>")
        elif image := re.fullmatch(r"!\[(.*)\]\((.+)\)", line):
            data = base64.b64encode((folder / image[2]).read_bytes()).decode()
            body.append(f'<img alt="{html.escape(image[1])}" src="data:image/png;base64,{data}">')
        elif line:
            body.append(f"<p>{inline(line)}</p>")
    flush()
    style = ("body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;"
             "padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;"
             "font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}img{max-width:100%;display:block;"
             "margin:1em 0 0}p em{color:#555}code{background:#f3f3f3;padding:0 3px}")
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>keras-vae: "
            "the paintings, answered by a run</title><style>" + style + "</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


def write(folder, config, steps, objectives, results, models, images):
    """Writes every file of the report into `folder` (see the module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    files.write_json(folder / "results.json", {
        "units": "rate, distortion, elbo: nats per image; mse: pixel units²; psnr: dB; "
        "sigma: pixel units; train_seconds: s",
        "steps": steps,
        "results": {k: {n: v for n, v in r.items() if n != "key"} for k, r in results.items()},
    })
    write_csv(folder / "results.csv", objectives, results)
    files.write_text(folder / "results.md", "\n".join(tables(objectives, results)) + "\n")
    written = figures(folder, objectives, results, models, images)
    text = markdown(config, steps, objectives, results, written)
    files.write_text(folder / "report.md", text)
    files.write_text(folder / "report.html", _html(text, folder))
