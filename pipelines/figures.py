"""The compare report's figures: one reconstruction grid, prior samples,
learning curves, rate against PSNR, latent traversals.

Pictures come from the first seed's models; the plotted numbers are means
over seeds, with one standard deviation where there are several. Every
figure is drawn on a `matplotlib.figure.Figure` (no pyplot), so the user's
backend is left alone.
"""

import matplotlib
from matplotlib.figure import Figure
import numpy as np

from keras_vae import diagnostics
from keras_vae import plotting
from pipelines import answers as answers_lib

#: Views per split in the reconstruction grid; enlarged to this many px a side.
TRAIN_COLUMNS, HELD_OUT_COLUMNS, CELL = 6, 4, 96
#: Latent dimensions shown in a traversal (at `plotting.TRAVERSAL_VALUES`).
TRAVERSAL_DIMS = 4


def _colors():
    return matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


def _spread(images, count):
    """`count` of `images` evenly spaced: views of different pictures rather
    than five squares of the first one."""
    index = np.unique(np.linspace(0, len(images) - 1, min(count, len(images))).round())
    return images[index.astype(int)]


def reconstructions(objectives, models, images, path):
    """One grid: training views, then held-out views, across; the data, then
    each objective's reconstruction (posterior mean), down."""
    train, held_out = (_spread(images[k], n) for k, n in (("train_views", TRAIN_COLUMNS),
                                                          ("held_out", HELD_OUT_COLUMNS)))
    x = np.concatenate([train, held_out])
    rows = [x, *(np.asarray(models[o.key](x, training=False)) for o in objectives)]
    columns = ([f"train {i + 1}" for i in range(len(train))]
               + [f"held-out {i + 1}" for i in range(len(held_out))])
    grid = plotting.labelled_grid(
        rows, ["data", *(o.label for o in objectives)], column_labels=columns, min_side=CELL,
        title="Reconstructions (posterior mean) of training views and of held-out views",
    )
    plotting.save_png(grid, path)


def learning_curves(objectives, results, path):
    """PSNR (dB) of training and held-out views against training steps, one
    line per objective: the mean over seeds, shaded ± one standard deviation."""
    figure = Figure(figsize=(11, 4.4), layout="constrained")
    panels = figure.subplots(1, 2, sharey=True)
    for o, color in zip(objectives, _colors() * 2):
        curves = [run["curve"] for run in results[o.key]["seeds"]]
        steps = np.array([point["step"] for point in curves[0]])
        for axes, split in zip(panels, answers_lib.SPLIT_NAMES):
            psnr = np.array([[point[split] for point in curve] for curve in curves])
            mean = psnr.mean(axis=0)
            axes.plot(steps, mean, color=color, label=o.label, linewidth=1.6)
            if len(curves) > 1:
                sd = psnr.std(axis=0, ddof=1)
                axes.fill_between(steps, mean - sd, mean + sd, color=color, alpha=0.18,
                                  linewidth=0)
    for axes, title in zip(panels, answers_lib.SPLIT_NAMES.values()):
        axes.set_title(title, fontsize=11)
        axes.set_xlabel("training step")
        axes.grid(alpha=0.3)
    panels[0].set_ylabel("PSNR = 10·log10(1 / mean MSE), dB")
    panels[1].legend(fontsize=8, loc="lower right")
    seeds = len(results[objectives[0].key]["seeds"])
    figure.suptitle(f"Learning curves: mean over {seeds} seed(s), shaded ± 1 sd", fontsize=11)
    plotting.save_figure(figure, path)


def rate_psnr(objectives, results, path):
    """PSNR (dB) against rate (nats), training and held-out views, with the
    seeds' standard deviations as error bars; the autoencoder, which has no
    rate, as horizontal lines."""
    figure = Figure(figsize=(6.8, 4.6), layout="constrained")
    axes = figure.subplots()
    for o, color in zip(objectives, _colors() * 2):
        for split, fill, style in (("train", color, "-"), ("held_out", "white", ":")):
            psnr = answers_lib.stat(results, o.key, split, "psnr")
            label = f"{o.label} ({answers_lib.SPLIT_NAMES[split]})"
            if results[o.key]["seeds"][0][split]["rate"] is None:
                axes.axhline(psnr.mean, color=color, linestyle=style, linewidth=1, label=label)
                continue
            rate = answers_lib.stat(results, o.key, split, "rate")
            axes.errorbar(rate.mean, psnr.mean, xerr=rate.sd, yerr=psnr.sd, fmt="o",
                          color=color, markerfacecolor=fill, markersize=8, capsize=3,
                          label=label)
    axes.set_xlabel("rate KL(q(z|x) ‖ p(z)), nats per image")
    axes.set_ylabel("PSNR = 10·log10(1 / mean MSE), dB")
    axes.set_title("What each objective spends on z, and what it buys", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")
    plotting.save_figure(figure, path)


def traversals(objective, model, x, path):
    """One training view's highest-KL latent dimensions swept ±2.5 prior sd."""
    kl = diagnostics.latent_statistics(model, x)["kl_per_dim"]
    dims = [int(d) for d in np.argsort(-kl)[:TRAVERSAL_DIMS]]
    z = model.posterior_factors(x[:1]).loc.numpy()[0]
    rows = plotting.latent_traversals(model, z, dims, plotting.TRAVERSAL_VALUES)
    rows = rows.reshape(len(dims), len(plotting.TRAVERSAL_VALUES), *rows.shape[1:])
    plotting.labelled_comparison(
        list(rows), [f"z{d} ({kl[d]:.1f} nats)" for d in dims], path,
        title=f"{objective.label}: one training view, its highest-KL dimensions swept ±2.5 sd",
    )


def write(folder, objectives, results, models, images, seed=0):
    """Writes every figure into `folder`; returns [(file name, caption)] in reading order."""
    reconstructions(objectives, models, images, folder / "reconstructions.png")
    plotting.labelled_comparison(
        [np.asarray(models[o.key].sample(2 * plotting.GRID_COLUMNS, seed=seed))
         for o in objectives],
        [o.label for o in objectives], folder / "samples.png",
        title="Decoded prior draws z ~ N(0, I), the same for all",
    )
    learning_curves(objectives, results, folder / "learning_curves.png")
    rate_psnr(objectives, results, folder / "rate_psnr.png")
    written = [
        ("reconstructions.png", "Reconstructions, first seed: the data, then each objective; "
         "training views on the left, held-out views on the right."),
        ("learning_curves.png", "Learning curves: PSNR of the training and held-out views "
         "during training, mean over seeds ± 1 sd."),
        ("samples.png", "Prior samples, first seed: the same draws z ~ N(0, I) decoded by each "
         "model (the 4× latent draws 4× more numbers)."),
        ("rate_psnr.png", "Rate against PSNR, means over seeds ± 1 sd: filled markers "
         "training views, hollow ones held-out views."),
    ]
    for o in objectives:
        if not o.autoencoder:
            name = f"traversals_{o.key}.png"
            traversals(o, models[o.key], images["train_views"], folder / name)
            written.append((name, f"Latent traversals, {o.label}, first seed."))
    return written
