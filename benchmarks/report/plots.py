"""The report's PNG plots (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Colour map per precision class (the export registry's); formats of a class take its shades.
FAMILIES = {"float32": "Blues", "fp16": "Greens", "quantized": "Reds"}  # keyed by Precision values
KERAS_COLORS = {"keras (reference)": "black", "keras predict (per-call overhead)": "tab:olive"}
MARKERS = ("o", "s", "^", "D", "v", "P")
MIN_SPAN_POINTS = 1.0


def format_colors() -> dict[str, Any]:
    """A colour per export format: the shade of its precision class (registry order within a class)."""
    import matplotlib
    from edgeport.export.registry import INFO, Precision, precision_of

    colors: dict[str, Any] = {}
    for precision in Precision:
        names = [n for n in INFO if precision_of(n) is precision]
        family = FAMILIES.get(precision.value, "Greys")
        cmap = matplotlib.colormaps[family]
        for k, name in enumerate(names):
            colors[name] = cmap(0.45 + 0.5 * k / max(1, len(names) - 1))
    return colors


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def time_label(us: float) -> str:
    """A latency tick in µs, ms or s (``60 µs``, ``2.5 ms``), not ``6x10^1``."""
    for scale, unit in ((1e6, "s"), (1e3, "ms")):
        if us >= scale:
            return f"{us / scale:.3g} {unit}"
    return f"{us:.3g} µs"


def size_label(kb: float) -> str:
    """A size tick in KB or MB (``300 KB``, ``1.2 MB``), not ``10^2``."""
    if kb >= 1024:
        return f"{kb / 1024:.3g} MB"
    return f"{kb:.3g} KB" if kb < 1000 else f"{kb:.0f} KB"  # 1000 KB, not 1e+03 KB


def log_axis(axis: Any, label: Any) -> None:
    """A log axis (call it once the data are drawn) whose ticks read as ``label(value)``: 1 per decade
    over more than 4 decades, 1, 2 and 5 over more than one, 1 to 9 over less; no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = sorted(axis.get_view_interval())
    decades = np.log10(hi / lo) if lo > 0 else 9.0
    subs = (1.0,) if decades > 4 else (1.0, 2.0, 5.0) if decades > 1 else tuple(float(k) for k in range(1, 10))
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: label(v)))
    axis.set_minor_formatter(NullFormatter())


def _series(r: dict[str, Any]) -> str:
    return r["format"] if r["format"] != "keras" else r["runtime"]


def accuracy_vs_latency(rows: Sequence[dict[str, Any]], dest: Path) -> Path | None:
    """Accuracy change against Keras (points, y) against batch-1 p50 latency (x, log) per artifact x
    runtime: colour = format (shaded by precision class), marker = model. The y axis spans at least
    MIN_SPAN_POINTS so that a 0.02-point wobble does not fill the plot."""
    pts = [r for r in rows if r.get("accuracy_delta_points") is not None and r.get("p50_us")]
    if not pts:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 5.5))
    models = list(dict.fromkeys(r["model"] for r in pts))
    colors = {**format_colors(), **KERAS_COLORS}
    series = list(dict.fromkeys(_label(r) for r in pts))
    for r in pts:
        ax.scatter(r["p50_us"], r["accuracy_delta_points"], color=colors.get(_series(r), "gray"), s=60,
                   edgecolor="black", linewidth=0.4, marker=MARKERS[models.index(r["model"]) % len(MARKERS)],
                   zorder=3)
    ax.axhline(0.0, color="black", lw=0.8, ls="--", zorder=1)
    ys = [r["accuracy_delta_points"] for r in pts]
    lo, hi = min(ys + [0.0]), max(ys + [0.0])
    pad = max(0.0, MIN_SPAN_POINTS - (hi - lo)) / 2 + 0.05 * max(hi - lo, MIN_SPAN_POINTS)
    ax.set_ylim(lo - pad, hi + pad)
    handles = [plt.Line2D([], [], ls="", marker="o", markeredgecolor="black", markeredgewidth=0.4,
                          color=colors.get(s.split(" / ")[0], "gray"), label=s) for s in series]
    first = ax.legend(handles=handles, fontsize=7, title="format / runtime", loc="upper left",
                      bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.add_artist(first)
    second = ax.legend(handles=[plt.Line2D([], [], ls="", marker=MARKERS[i % len(MARKERS)], color="gray", label=m)
                                for i, m in enumerate(models)], fontsize=8, title="model", loc="lower left",
                       bbox_to_anchor=(1.01, 0.0), borderaxespad=0)
    ax.set_xscale("log")
    log_axis(ax.xaxis, time_label)
    ax.set_xlabel("batch-1 latency p50, 1 thread (log scale)")
    ax.set_ylabel("accuracy change against Keras (points)")
    ax.set_title("accuracy change vs latency per artifact x runtime (0 = Keras)")
    ax.grid(True, which="both", alpha=0.3)
    fig.savefig(dest, dpi=110, bbox_inches="tight", bbox_extra_artists=[first, second])
    plt.close(fig)
    return dest


def _label(r: dict[str, Any]) -> str:
    return f"{_series(r)} / {r['runtime']}" if r["format"] != "keras" else _series(r)


def size_per_format(sizes: dict[str, dict[str, int]], dest: Path) -> Path | None:
    """Grouped bars: deploy size per format (``registry.deploy_size``), one group per model (KB, log scale)."""
    if not sizes:
        return None
    plt = _plt()
    formats = list(dict.fromkeys(f for per in sizes.values() for f in per))
    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(formats)), 5))
    width = 0.8 / len(sizes)
    for i, (model, per) in enumerate(sizes.items()):
        xs = np.arange(len(formats)) + i * width
        vals = [per.get(f, 0) / 1024 for f in formats]
        ax.bar(xs, vals, width, label=model)
        for x, v in zip(xs, vals):
            if v:
                ax.text(x, v, f"{v:.0f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(np.arange(len(formats)) + 0.4 - width / 2, formats, rotation=30, ha="right")
    ax.set_yscale("log")
    log_axis(ax.yaxis, size_label)
    ax.set_ylabel("size (log scale)")
    ax.set_title("artifact size per format (bytes a device holds; a C array: its model bytes)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(dest, dpi=110)
    plt.close(fig)
    return dest


def training_curves(model: str, history: dict[str, list[float]], dest: Path) -> Path | None:
    """One panel per metric (loss, accuracy, ...), training and validation together."""
    bases = [k for k in history if not k.startswith("val_") and history[k]]
    if not bases:
        return None
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(bases), figsize=(4.5 * len(bases), 3.6), squeeze=False)
    for ax, key in zip(axes[0], bases):
        epochs = np.arange(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], marker="o", ms=3, label="training")
        if history.get(f"val_{key}"):
            ax.plot(np.arange(1, len(history[f"val_{key}"]) + 1), history[f"val_{key}"], marker="s", ms=3,
                    label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{model}: training curves")
    fig.tight_layout()
    fig.savefig(dest, dpi=110)
    plt.close(fig)
    return dest


def prediction_grid(model: str, images: np.ndarray, truth: np.ndarray, panels: dict[str, np.ndarray],
                    labels: Sequence[str], dest: Path, *, cols: int = 5) -> Path:
    """The course's grid: each image titled "predicted confidence% (true)", blue right, red wrong;
    one panel per predictor (Keras and the int8 artifact side by side)."""
    plt = _plt()
    n = len(images)
    rows = -(-n // cols)
    fig = plt.figure(figsize=(1.9 * cols * len(panels), 2.2 * rows + 0.5), layout="constrained")
    subfigs = fig.subfigures(1, len(panels), squeeze=False, wspace=0.03)[0]

    def name(i: int) -> str:
        return labels[i] if 0 <= i < len(labels) else str(i)

    for sub, (title, probs) in zip(subfigs, panels.items()):
        pred = probs.argmax(axis=1)
        right = int((pred == truth).sum())
        sub.suptitle(f"{title}: {right}/{n} right", fontsize=11)
        axes = sub.subplots(rows, cols, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.set_xticks([])
            ax.set_yticks([])
            if i >= n:
                ax.axis("off")
                continue
            img = images[i]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img.astype(np.uint8), cmap=plt.cm.binary)
            color = "blue" if pred[i] == truth[i] else "red"
            ax.set_xlabel(f"{name(int(pred[i]))} {100 * probs[i].max():.0f}%\n({name(int(truth[i]))})",
                          color=color, fontsize=8)
    fig.savefig(dest, dpi=100)
    plt.close(fig)
    return dest
