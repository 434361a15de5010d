"""The rate–distortion plane: one labelled point per trained model (Alemi et
al. 2018), as a PNG written atomically.

Figures are built with `matplotlib.figure.Figure`, without pyplot, so the
library never picks or switches matplotlib's backend (a notebook's inline
plots stay as they were).
"""

import math

import matplotlib
from matplotlib.figure import Figure
import numpy as np

from keras_vae import files


def save_figure(figure, path, dpi=150):
    """Saves a matplotlib figure as PNG atomically.

    The saved area grows to fit every label and title (`bbox_inches="tight"`).
    """
    return files.write_atomically(path, lambda temp: figure.savefig(
        temp, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05))


#: Label offsets (points) of the β labels, one per latent size, so labels
#: of runs with equal β but different latent sizes do not overlap.
_LABEL_OFFSETS = ((6, 6), (6, -14), (-34, 6), (-34, -14))
#: Points closer than this fraction of both axis ranges share one label.
_LABEL_MERGE = 0.03


def _labels(group, x_range, y_range):
    """[(label, point)]: consecutive near-coincident points share a label,
    e.g. "β=1, 3" where large β all collapse to rate ≈ 0."""
    labels = []
    for p in group:
        if labels:
            _, q = labels[-1]
            if (abs(p["rate"] - q["rate"]) < _LABEL_MERGE * x_range
                    and abs(p["distortion"] - q["distortion"]) < _LABEL_MERGE * y_range):
                labels[-1] = (f"{labels[-1][0]}, {p['beta']:.3g}", q)
                continue
        labels.append((f"β={p['beta']:.3g}", p))
    return labels


def _limits(values):
    """Axis limits: the data plus a 10 % margin, at least 1 nat wide."""
    low, high = float(np.min(values)), float(np.max(values))
    margin = 0.1 * max(high - low, 1.0)
    return low - margin, high + margin


def rate_distortion_plot(points, path, title=None):
    """Plots distortion against rate, one labelled point per trained model.

    Args:
        points: dicts with "beta", "rate" and "distortion" (nats per image),
            optionally "latent_dim" (points of one latent size are joined in
            β order, one colour per size).
        path: where to write the PNG.
        title: optional figure title.

    Every point lies on a dashed line rate + distortion = −ELBO (slope −1):
    moving along such a line trades distortion for rate at a constant ELBO,
    and lower-left lines are better ELBOs (Alemi et al. 2018, "Fixing a
    Broken ELBO").
    """
    points = _checked(points)
    x_lim = _limits([p["rate"] for p in points])
    y_lim = _limits([p["distortion"] for p in points])
    figure = Figure(figsize=(6.4, 4.8), layout="constrained")
    axes = figure.subplots()
    _elbo_lines(axes, points, x_lim)
    _runs(axes, points, x_lim, y_lim)
    axes.set_xlim(*x_lim)
    axes.set_ylim(*y_lim)
    axes.set_xlabel("rate  KL(q(z|x) ‖ p(z))  [nats per image]")
    axes.set_ylabel("distortion  −E log p(x|z)  [nats per image]")
    axes.set_title(title or "Rate–distortion (validation)")
    axes.grid(True, linewidth=0.3, alpha=0.5)
    axes.legend(loc="best", fontsize=8, framealpha=0.9)
    return save_figure(figure, path)


def _checked(points):
    """`points` as a list, refused if empty or holding a non-finite number."""
    points = list(points)
    if not points:
        raise ValueError("rate_distortion_plot got no points: train at least one model.")
    for p in points:
        if not (math.isfinite(p["rate"]) and math.isfinite(p["distortion"])):
            raise ValueError(
                f"The point at β={p['beta']} has a non-finite rate or distortion: "
                "leave failed runs out of the plot."
            )
    return points


def _elbo_lines(axes, points, x_lim):
    """A dashed line rate + distortion = −ELBO through each point."""
    xs = np.array(x_lim)
    for i, neg_elbo in enumerate(sorted({p["rate"] + p["distortion"] for p in points})):
        axes.plot(
            xs, neg_elbo - xs, linestyle="--", linewidth=0.8, color="0.6", zorder=1,
            label="rate + distortion = −ELBO" if i == 0 else None,
        )


def _runs(axes, points, x_lim, y_lim):
    """The points, one colour and line per latent size in β order, β-labelled."""
    groups = {}
    for p in points:
        groups.setdefault(p.get("latent_dim"), []).append(p)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, latent_dim in enumerate(sorted(groups, key=lambda d: -1 if d is None else d)):
        color = colors[i % len(colors)]
        group = sorted(groups[latent_dim], key=lambda p: p["beta"])
        axes.plot(
            [p["rate"] for p in group], [p["distortion"] for p in group],
            marker="o", color=color, zorder=3,
            label=None if latent_dim is None else f"latent_dim = {latent_dim}",
        )
        for label, p in _labels(group, x_lim[1] - x_lim[0], y_lim[1] - y_lim[0]):
            axes.annotate(
                label, (p["rate"], p["distortion"]), xytext=_LABEL_OFFSETS[i % 4],
                textcoords="offset points", fontsize=9, color=color,
            )
