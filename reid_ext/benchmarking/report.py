"""The benchmark's tables: ``results.csv``, ``results.md`` and ``environment.json``.

Every row is a mapping with exactly :data:`COLUMNS` as keys. Accuracies are fractions in [0, 1]
in the csv and percentages in the markdown table; a value that was not measured (a skipped or
failed model, training speed of loaded weights, mINP from an engine that does not report it) is
``None``: an empty csv cell and ``n/a`` in markdown.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

COLUMNS = (
    "model", "origin", "status", "input_size",
    "rank1", "rank5", "mAP", "mINP",
    "params_M", "gflops",
    "train_img_s", "infer_img_s_b32", "infer_img_s_b1",
    "peak_mem_mib", "wall_s", "note",
)
NUMERIC_COLUMNS = COLUMNS[4:-1]
PERCENT_COLUMNS = ("rank1", "rank5", "mAP", "mINP")

# markdown header and number format per column
MARKDOWN_COLUMNS = (
    ("model", "model", "{}"), ("origin", "from", "{}"), ("input_size", "input", "{}"),
    ("rank1", "R1 %", "{:.1f}"), ("rank5", "R5 %", "{:.1f}"), ("mAP", "mAP %", "{:.1f}"),
    ("mINP", "mINP %", "{:.1f}"), ("params_M", "params (M)", "{:.2f}"),
    ("gflops", "GFLOPs", "{:.3g}"), ("train_img_s", "train img/s", "{:.1f}"),
    ("infer_img_s_b32", "infer img/s b32", "{:.1f}"),
    ("infer_img_s_b1", "infer img/s b1", "{:.1f}"),
    ("peak_mem_mib", "peak mem (MiB)", "{:.0f}"), ("wall_s", "wall (s)", "{:.0f}"),
    ("status", "status", "{}"), ("note", "note", "{}"),
)


def empty_row(model: str, origin: str = "", status: str = "ok") -> dict[str, Any]:
    """A row with every column present and nothing measured."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(model=model, origin=origin, status=status, input_size="", note="")
    return row


def check_row(row: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the row and key when the row is not exactly COLUMNS."""
    missing = [c for c in COLUMNS if c not in row]
    extra = [k for k in row if k not in COLUMNS]
    if missing or extra:
        raise ValueError(f"result row for '{row.get('model')}' has missing columns {missing} "
                         f"and unknown columns {extra}; expected {list(COLUMNS)}")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def csv_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def markdown_cell(key: str, value: Any, fmt: str) -> str:
    if key in NUMERIC_COLUMNS:
        if not is_number(value):
            return "n/a"
        return fmt.format(value * 100 if key in PERCENT_COLUMNS else value)
    return str(value or "").replace("|", "\\|").replace("\n", " ")


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a report is for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """One row per model, columns exactly :data:`COLUMNS`, in that order."""
    for row in rows:
        check_row(row)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([csv_cell(row[c]) for c in COLUMNS])
    return atomic_write_text(path, buffer.getvalue())


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    header = "| " + " | ".join(title for _, title, _ in MARKDOWN_COLUMNS) + " |"
    rule = "|" + "|".join("---" if key in ("model", "origin", "input_size", "status", "note")
                          else "--:" for key, _, _ in MARKDOWN_COLUMNS) + "|"
    body = []
    for row in rows:
        check_row(row)
        cells = [markdown_cell(key, row[key], fmt) for key, _, fmt in MARKDOWN_COLUMNS]
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *body])


DEFINITIONS = """\
- R1/R5/mAP/mINP: the engine's evaluation of the target set's query against its gallery
  (torchreid's market protocol unless `cuhk03.use_metric_cuhk03`); in percent.
- params: every parameter, ID classifier included.
- GFLOPs: `torch.utils.flop_counter.FlopCounterMode` on one eval forward of one image at the
  model's input size; a multiply-add counts as 2 FLOPs; convolutions and matrix products only.
- train img/s: images / time inside the training step (forward, losses, backward, optimizer step),
  all iterations, data loading excluded. n/a when weights were loaded instead of trained.
- infer img/s: batch / median time of {repeats} eval forwards after {warmup} warm-up forwards,
  at batch 32 and batch 1.
- peak mem: {memory}.
- Each model runs in its own spawned child process, one after the other.
- wall: training plus evaluation (the engine's `run`) of that model, in seconds."""


def memory_definition(device: str) -> str:
    if device.startswith("cuda"):
        return "`torch.cuda.max_memory_allocated` over training, evaluation and timing"
    return ("peak resident set size of the model's child process\n  (Python and torch "
            "baseline included, data-loader workers excluded)")


def write_markdown(rows: Sequence[Mapping[str, Any]], path: str | Path, *, title: str,
                   environment: Mapping[str, Any], settings: Mapping[str, Any],
                   plot_name: str | None = None) -> Path:
    """``results.md``: environment and settings header, the table, definitions, the plot."""
    lines = [f"# {title}", "", "## Environment", ""]
    lines += [f"- {key}: {value}" for key, value in environment.items()]
    lines += ["", "## Settings", ""]
    lines += [f"- {key}: {value}" for key, value in settings.items()]
    lines += ["", "## Results", "", markdown_table(rows), ""]
    lines += [DEFINITIONS.format(repeats=settings.get("timing_repeats", "?"),
                                 warmup=settings.get("timing_warmup", "?"),
                                 memory=memory_definition(str(environment.get("device", "")))),
              ""]
    if plot_name:
        lines += [f"![mAP against inference speed]({plot_name})", ""]
    return atomic_write_text(path, "\n".join(lines))
