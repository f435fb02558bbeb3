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


def plot_accuracy_vs_speed(rows: Sequence[Mapping[str, Any]], path: str | Path,
                           title: str = "") -> Path | None:
    """Scatter of mAP (%) against inference img/s; returns None when no row can be drawn."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

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
            ax.annotate(str(row["model"]), (x, y), textcoords="offset points", xytext=(5, 4),
                        fontsize=8)
        if max(speeds) / min(speeds) > LOG_AXIS_RATIO:
            ax.set_xscale("log")
        for origin, colour in colours.items():
            if any(r.get("origin") == origin for r in points):
                ax.scatter([], [], color=colour, label=origin)
        ax.legend(loc="best", fontsize=8)
        ax.set_xlabel("inference images/s (batch 32)")
        ax.set_ylabel("mAP (%)")
        ax.set_title(title or "accuracy against speed")
        ax.grid(True, alpha=0.3)
        ax.margins(x=0.15, y=0.1)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp)
        tmp.replace(path)
    finally:
        plt.close(fig)
    return path
