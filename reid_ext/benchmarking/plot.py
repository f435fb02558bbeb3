"""``accuracy_vs_speed.png``: mAP against batch-32 inference speed, one labelled point per model."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reid_ext.benchmarking.report import is_number

# A speed range wider than this ratio is drawn on a log axis, so slow models stay readable.
LOG_AXIS_RATIO = 20.0


def plottable(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows that have both an mAP and a positive batch-32 inference speed."""
    return [r for r in rows if is_number(r.get("mAP")) and is_number(r.get("infer_img_s_b32"))
            and r["infer_img_s_b32"] > 0]


# Label positions tried in turn (offset in points, horizontal alignment) until one is free.
LABEL_OFFSETS = (((5, 4), "left"), ((5, -11), "left"), ((-5, 4), "right"), ((-5, -11), "right"))


def place_labels(fig: Any, ax: Any, labels: Sequence[str], xs: Sequence[float],
                 ys: Sequence[float]) -> None:
    """Annotate each point, moving a label to another corner when it would overlap one drawn."""
    renderer = fig.canvas.get_renderer()
    placed = []
    for label, x, y in zip(labels, xs, ys):
        for offset, align in LABEL_OFFSETS:
            text = ax.annotate(label, (x, y), textcoords="offset points", xytext=offset,
                               ha=align, fontsize=8)
            box = text.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            text.remove()
        else:
            text = ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 4),
                               fontsize=8)
            box = text.get_window_extent(renderer)
        placed.append(box)


def plot_accuracy_vs_speed(rows: Sequence[Mapping[str, Any]], path: str | Path,
                           title: str = "") -> Path | None:
    """Scatter of mAP (%) against inference img/s; returns None when no row can be drawn."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter

    points = plottable(rows)
    if not points:
        return None
    speeds = [float(r["infer_img_s_b32"]) for r in points]
    maps = [100.0 * float(r["mAP"]) for r in points]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    try:
        colours = {"torchreid": "tab:blue", "reid_ext": "tab:orange"}
        for row, x, y in zip(points, speeds, maps):
            ax.scatter(x, y, s=40, color=colours.get(str(row.get("origin")), "tab:gray"),
                       zorder=3)
        if max(speeds) / min(speeds) > LOG_AXIS_RATIO:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.margins(x=0.15, y=0.1)
        place_labels(fig, ax, [str(r["model"]) for r in points], speeds, maps)
        for origin, colour in colours.items():
            if any(r.get("origin") == origin for r in points):
                ax.scatter([], [], color=colour, label=origin)
        ax.legend(loc="best", fontsize=8)
        ax.set_xlabel("inference images/s (batch 32)")
        ax.set_ylabel("mAP (%)")
        ax.set_title(title or "accuracy against speed")
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp)
        tmp.replace(path)
    finally:
        plt.close(fig)
    return path
