"""Pre-flight check: stop before any work when a dataset or an aux-map cache is missing.

torchreid's Market-1501, DukeMTMC-reID and CUHK03 classes try to download a missing dataset
(impossible offline, and the links are long dead) and fail deep inside the data manager; an
aux-map cache that was never extracted fails later still. :func:`check_data_ready` looks
first and raises one :class:`PreflightError` saying where torchreid expects each missing
dataset and the exact commands that fill each missing cache.

Cache directories named ``masks_<source>`` / ``keypoints_<source>`` (the configs' convention)
give the source in the command; otherwise the published MGRAN back-ends are suggested
(detectron2 Mask R-CNN masks, mmpose keypoints).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from yacs.config import CfgNode

from reid_ext.config import ConfigError


class PreflightError(ConfigError):
    """A dataset or an aux-map cache a config needs is not on disk."""


@dataclass(frozen=True)
class HostLayout:
    """Where torchreid's class looks: ``<root>/<folder>/`` then one of ``variants`` of files."""

    folder: str
    variants: tuple[tuple[str, ...], ...]
    name: str


HOST_LAYOUTS: dict[str, HostLayout] = {
    "market1501": HostLayout(
        "market1501",
        (tuple(f"Market-1501-v15.09.15/{d}" for d in ("bounding_box_train", "query",
                                                       "bounding_box_test")),
         ("bounding_box_train", "query", "bounding_box_test")),
        "Market-1501"),
    "market1501_mq": HostLayout(  # reid_ext.data.market_multi_query: query/ -> gt_bbox/
        "market1501",
        (tuple(f"Market-1501-v15.09.15/{d}" for d in ("bounding_box_train", "query",
                                                       "bounding_box_test", "gt_bbox")),
         ("bounding_box_train", "query", "bounding_box_test", "gt_bbox")),
        "Market-1501 with gt_bbox/"),
    "dukemtmcreid": HostLayout(
        "dukemtmc-reid",
        (tuple(f"DukeMTMC-reID/{d}" for d in ("bounding_box_train", "query",
                                               "bounding_box_test")),),
        "DukeMTMC-reID"),
    "cuhk03": HostLayout("cuhk03", (("cuhk03_release/cuhk-03.mat",),), "CUHK03"),
}

DEFAULT_SOURCES = {"mask": "detectron2", "keypoints": "mmpose"}
TOOLS = {"mask": "tools/extract_masks.py", "keypoints": "tools/extract_keypoints.py"}


def missing_dataset(name: str, root: str) -> str | None:
    """A message if torchreid's ``name`` is not under ``root``; ``None`` if it is (or unknown)."""
    layout = HOST_LAYOUTS.get(name)
    if layout is None:
        return None
    base = Path(root).expanduser().absolute() / layout.folder
    if any(all((base / f).exists() for f in files) for files in layout.variants):
        return None
    expected = " or ".join("{" + ", ".join(str(base / f) for f in files) + "}"
                           for files in layout.variants)
    return (f"dataset '{name}' ({layout.name}) is not where torchreid looks: it expects "
            f"{expected}. Unpack the dataset there (torchreid's dataset guide: "
            f"https://kaiyangzhou.github.io/deep-person-reid/datasets.html) or set data.root.")


def cache_ready(directory: Path) -> bool:
    """A cache has a manifest (written last by the tools), itself or per dataset below it."""
    return (directory / "manifest.json").is_file() or any(directory.glob("*/manifest.json"))


def source_of(kind: str, directory: Path) -> str:
    prefix = "masks_" if kind == "mask" else "keypoints_"
    name = directory.name
    return name[len(prefix):] if name.startswith(prefix) and len(name) > len(prefix) else \
        DEFAULT_SOURCES[kind]


def extraction_command(kind: str, directory: Path, config_file: str) -> str:
    return (f"python {TOOLS[kind]} --source {source_of(kind, directory)} --config-file "
            f"{config_file} --weights WEIGHTS --out {directory}")


def config_file_hint() -> str:
    """The ``--config-file`` of the running tool, if any (for the commands in the message)."""
    argv = sys.argv
    for i, arg in enumerate(argv[:-1]):
        if arg == "--config-file":
            return argv[i + 1]
    return "<your config>"


def check_data_ready(cfg: CfgNode, config_file: str | None = None) -> None:
    """Raise :class:`PreflightError` listing every missing dataset and aux-map cache.

    Datasets: those of ``data.sources``/``data.targets`` whose torchreid layout is known
    (:data:`HOST_LAYOUTS`). Caches: ``aux.mask`` / ``aux.keypoints`` when set to a directory
    (``"auto"``/empty mean the dataset's own maps and are not checked here).
    """
    config_file = config_file or config_file_hint()
    problems = []
    for name in dict.fromkeys([*cfg.data.sources, *cfg.data.targets]):
        message = missing_dataset(name, cfg.data.root)
        if message:
            problems.append(message)
    commands = []
    for kind in ("mask", "keypoints"):
        value = getattr(cfg.aux, kind, "")
        if value in ("", "auto"):
            continue
        directory = Path(value)
        if not cache_ready(directory):
            problems.append(f"aux.{kind} cache '{directory}' has no manifest.json (never "
                            f"extracted, or interrupted).")
            commands.append(extraction_command(kind, directory, config_file))
    if not problems:
        return
    lines = [f"cannot start {config_file}:", *(f"- {p}" for p in problems)]
    if commands:
        lines += ["Fill the caches (once per dataset; see docs/aux_maps.md for WEIGHTS):",
                  *(f"    {c}" for c in commands)]
    lines.append(f"Then run: python tools/train.py --config-file {config_file}")
    raise PreflightError("\n".join(lines))
