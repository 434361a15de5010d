"""The report of `keras-vae compare`: tables, figures, and the three answers.

`write(folder, ...)` puts into `folder`: results.json (every seed's
numbers, learning curves included), results.csv (one row per objective,
split and seed), results.md, the figures (`pipelines.figures`), report.md
(which links them) and report.html (the same, with the figures embedded:
one file to send or open offline). Tables give the mean ± standard
deviation over seeds; comparisons are paired differences with their 95 %
interval, and every comparison word is chosen by that interval
(`pipelines.answers`), never by hand.
"""

import base64
import csv
import html
import io
import re

from keras_vae import files
from export import runfolder
from pipelines import answers as answers_lib
from pipelines import figures as figures_lib
from pipelines import markdown as markdown_lib

#: What results.json and the tables measure, with units.
UNITS = ("rate, distortion, elbo: nats per image, each model under its own σ; mse: pixel "
         "units² on [0, 1], the mean over a split's images; psnr: 10·log10(1 / mse), dB, of "
         "that mean (not a mean of per-image PSNRs); ssim: mean over images; sigma: pixel "
         "units; train_seconds: s, learning-curve measurements included")
METRICS = (*runfolder.BOUND_TERMS, "mse", "psnr", "ssim")


def _spread(summary, digits):
    """'21.20 ± 0.15' (mean ± sd over seeds), or the one seed's value."""
    if summary.sd is None:
        return f"{summary.mean:,.{digits}f}"
    return f"{summary.mean:,.{digits}f} ± {summary.sd:,.{digits}f}"


def _cell(results, key, split, metric, digits):
    if results[key]["seeds"][0][split][metric] is None:
        return "—"
    return _spread(answers_lib.stat(results, key, split, metric), digits)


def tables(objectives, results):
    """The Markdown tables: the models, one per split, then the paired comparisons."""
    rows = []
    for o in objectives:
        runs = results[o.key]["seeds"]
        sigma = ("→ 0 (β = 0)" if runs[0]["sigma"] is None
                 else f"{answers_lib.mean_of(results, o.key, 'sigma'):.4f}")
        ratio = ("—" if runs[0]["gradient_ratio"] is None
                 else f"{answers_lib.mean_of(results, o.key, 'gradient_ratio'):.3f}")
        rows.append([o.label, sigma, runs[0]["latent_dim"], ratio,
                     f"{answers_lib.mean_of(results, o.key, 'train_seconds'):.0f}"])
    lines = markdown_lib.table(["objective", "σ assumed or fitted (pixel units)", "latent size",
                                "‖∇β·rate‖ / ‖∇distortion‖", "training time per seed (s)"],
                               rows)
    seeds = len(results[objectives[0].key]["seeds"])
    for split, title in answers_lib.SPLIT_NAMES.items():
        images = results[objectives[0].key]["seeds"][0][split]["images"]
        lines += [
            "",
            f"On the {title} ({images} images), mean ± standard deviation over {seeds} "
            "seed(s); rate, distortion and ELBO in nats per image, each model under its own "
            "σ; PSNR = 10·log10(1 / MSE):",
            "",
        ]
        lines += markdown_lib.table(
            ["objective", "rate", "distortion", "ELBO", "MSE", "PSNR (dB)", "SSIM"],
            [[o.label, *(_cell(results, o.key, split, metric, digits) for metric, digits in (
                ("rate", 1), ("distortion", 1), ("elbo", 1), ("mse", 5), ("psnr", 2),
                ("ssim", 3)))] for o in objectives],
        )
    lines += [
        "",
        f"Paired differences (seed s of one objective against seed s of the other: the same "
        f"initial weights, z draws and crops), mean and 95 % interval (Student's t, "
        f"{seeds} pairs); the verdict is a word only when the interval excludes zero:",
        "",
        *markdown_lib.table(["a − b", "on", "metric", "mean", "95 % interval", "verdict"],
                            answers_lib.comparison_rows(results), align="llrrrl"),
    ]
    return lines


def write_csv(path, objectives, results):
    """results.csv: one row per objective, split and seed, full precision."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["objective", "split", "seed", "sigma", "latent_dim", "gradient_ratio",
                     "train_seconds", *METRICS, "images"])
    for o in objectives:
        for run in results[o.key]["seeds"]:
            for split in answers_lib.SPLIT_NAMES:
                writer.writerow([o.key, split, run["seed"], run["sigma"], run["latent_dim"],
                                 run["gradient_ratio"], run["train_seconds"],
                                 *(run[split][n] for n in (*METRICS, "images"))])
    files.write_text(path, text.getvalue())


def markdown(config, steps, objectives, results, written):
    d, m, t = config["data"], config["model"], config["train"]
    seeds = [run["seed"] for run in results[objectives[0].key]["seeds"]]
    command = (f"keras-vae compare --data {d['source']} --image-size {d['image_size']} "
               f"--latent-dim {m['latent_dim']} --filters {','.join(map(str, m['filters']))} "
               f"--batch-size {t['batch_size']} --learning-rate {t['learning_rate']:g} "
               f"--precision {t['precision']} --steps {steps} --seeds {len(seeds)}")
    seconds = sum(run["train_seconds"] for r in results.values() for run in r["seeds"])
    lines = [
        "# Is weighting the KL term sound? The paintings, answered by a run",
        "",
        f"The same networks (filters {m['filters']}, latent size {m['latent_dim']}, "
        f"{d['image_size']}×{d['image_size']}×{d['channels']} crops of `{d['source']}`), the "
        f"same initial weights, data stream and budget ({steps} steps of batch "
        f"{t['batch_size']}, learning rate {t['learning_rate']:g}) under five objectives, "
        f"each trained on {len(seeds)} seed(s) ({', '.join(map(str, seeds))}: a seed sets "
        f"the initial weights, the z draws and the order of the random crops, the same for "
        f"every objective). Networks compute in precision `{t['precision']}` (bfloat16 where "
        f"the CPU has it natively; the loss terms in float32), which makes the runs "
        f"affordable on a laptop. {seconds / 60:.1f} minutes of training in all. Made by "
        f"`{command}`.",
        "",
        "Definitions: PSNR = 10·log10(1 / MSE) in dB, where MSE is the mean squared error "
        "of the reconstruction (at the posterior mean) over all pixels of a split's images "
        "on [0, 1]; rate = KL(q(z|x) ‖ p(z)), distortion = −log p(x|z) and ELBO = −(rate + "
        "distortion), nats per image; SSIM with an 11 px window.",
        "",
        *tables(objectives, results),
        "",
        "σ: the decoder noise each objective assumes (‖x − x̂‖² + w·KL is a Gaussian decoder "
        "with σ² = w/2) or, calibrated, fits; the ratio of gradient norms is on one training "
        "batch after training. Training views are five fixed squares of each training "
        "picture, held-out views the same squares of pictures never trained on.",
        "",
    ]
    for paragraph in [answers_lib.regime(results), *answers_lib.answers(results, d["source"])]:
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
        "units": UNITS,
        "steps": steps,
        "results": {k: {**r, "seeds": [{n: v for n, v in run.items() if n != "key"}
                                       for run in r["seeds"]]} for k, r in results.items()},
    })
    write_csv(folder / "results.csv", objectives, results)
    files.write_text(folder / "results.md", "\n".join(tables(objectives, results)) + "\n")
    written = figures_lib.write(folder, objectives, results, models, images)
    text = markdown(config, steps, objectives, results, written)
    files.write_text(folder / "report.md", text)
    files.write_text(folder / "report.html", _html(text, folder))
