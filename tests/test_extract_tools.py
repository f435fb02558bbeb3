"""tools/extract_masks.py and tools/extract_keypoints.py: end to end, resume, failures."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid_ext.data.auxmaps import AuxMapDataset
from reid_ext.data.synthetic import generate_synthetic, read_split
from reid_ext.preprocess.cache import (
    KeypointCache,
    MaskCache,
    RandomWeightsCacheWarning,
    read_manifest,
)
from reid_ext.preprocess.cli import main
from reid_ext.preprocess.extract import SHARD_DIR

REPO = Path(__file__).resolve().parents[1]
TINY = {"num_train_ids": 2, "num_test_ids": 1, "images_per_id_per_camera": 2, "num_cameras": 2}
TINY_ARGS = [arg for key, value in TINY.items() for arg in ("--dataset-option", f"{key}={value}")]
FAST_TV = ["--random-weights", "--source-option", "min_size=64", "--source-option",
           "detections_per_img=2", "--no-progress"]


@pytest.fixture
def tiny_root(tmp_path):
    """A private copy of a tiny synthetic_person set (tests may corrupt its files)."""
    generate_synthetic("person", tmp_path / "data", progress=False, workers=1, **TINY)
    return tmp_path / "data"


def _dataset_args(root: Path) -> list[str]:
    return ["--dataset", "synthetic_person", "--root", str(root), *TINY_ARGS]


def _all_items(root: Path) -> list[tuple[str, int, int]]:
    folder = next((root / "synthetic_person").iterdir())
    return [item for split in ("train", "query", "gallery") for item in read_split(folder, split)]


@pytest.mark.slow
def test_torchvision_masks_end_to_end_with_random_weights(tiny_root, tmp_path, capsys):
    out = tmp_path / "masks"
    assert main("mask", ["--source", "torchvision", *_dataset_args(tiny_root), "--out", str(out),
                         "--batch-size", "4", *FAST_TV]) == 0
    items = _all_items(tiny_root)
    with pytest.warns(RandomWeightsCacheWarning, match="RANDOM weights"):
        manifest = read_manifest(out, "mask")
    assert manifest["count"] == len(items) and manifest["random_weights"] is True
    assert manifest["source"] == "torchvision" and manifest["weights"] == "random"
    assert manifest["options"]["model"] == "maskrcnn_resnet50_fpn"
    assert "written" in capsys.readouterr().out
    dataset_dir = Path(items[0][0]).parents[1]
    with pytest.warns(RandomWeightsCacheWarning):
        loader_view = AuxMapDataset([(p, pid, cam, 0) for p, pid, cam in items], dataset_dir,
                                    ("mask",), mask_dir=out)
    assert loader_view.missing_counts["mask"] == 0
    mask = loader_view[0]["mask"]
    assert mask.shape[0] == 1 and float(mask.min()) >= 0 and float(mask.max()) <= 1


@pytest.mark.slow
def test_torchvision_keypoints_end_to_end_and_rerun_skips(tiny_root, tmp_path, capsys):
    out = tmp_path / "kp"
    args = ["--source", "torchvision", *_dataset_args(tiny_root), "--out", str(out), *FAST_TV]
    assert main("keypoints", args) == 0
    total = len(_all_items(tiny_root))
    with pytest.warns(RandomWeightsCacheWarning):
        cache = KeypointCache(out)
    assert len(cache) == total and cache.keypoint_format == "coco17"
    assert cache.manifest["skeleton"] == "coco17"
    assert not list((out / SHARD_DIR).glob("*.npz"))
    capsys.readouterr()
    assert main("keypoints", args) == 0
    assert f"{total} already cached, 0 written" in capsys.readouterr().out


def test_refuses_to_run_without_weights(tiny_root, tmp_path, capsys):
    out = tmp_path / "never"
    assert main("mask", ["--source", "torchvision", *_dataset_args(tiny_root),
                         "--out", str(out)]) == 2
    assert "--weights" in capsys.readouterr().err
    assert not out.exists()


def test_refuses_a_cache_made_by_another_source(tiny_root, tmp_path, capsys):
    out = tmp_path / "masks"
    assert main("mask", ["--source", "grabcut", *_dataset_args(tiny_root), "--out", str(out),
                         "--no-progress"]) == 0
    assert main("mask", ["--source", "grabcut", *_dataset_args(tiny_root), "--out", str(out),
                         "--no-progress", "--source-option", "iterations=2"]) == 2
    assert "made differently" in capsys.readouterr().err


def test_corrupt_image_is_reported_counted_and_skipped(tiny_root, tmp_path, capsys):
    items = _all_items(tiny_root)
    broken = items[1][0]
    Path(broken).write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    out = tmp_path / "masks"
    code = main("mask", ["--source", "grabcut", *_dataset_args(tiny_root), "--out", str(out),
                         "--no-progress"])
    printed = capsys.readouterr()
    assert code == 1
    assert f"unreadable: {broken}" in printed.out and "1 unreadable" in printed.out
    manifest = read_manifest(out, "mask")
    assert manifest["count"] == len(items) - 1 and manifest["unreadable"] == 1
    assert MaskCache(out).get(os.path.relpath(items[0][0], Path(broken).parents[1])) is not None


def _run_tool(kind: str, root: Path, out: Path, extra: list[str]) -> subprocess.Popen:
    script = REPO / "tools" / ("extract_masks.py" if kind == "mask" else "extract_keypoints.py")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(script), *_dataset_args(root), "--out", str(out), "--batch-size",
         "1", "--no-progress", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(condition, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the tool ended before it was killed: "
                                 f"{process.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the tool wrote nothing in time")
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mask", "keypoints"])
def test_resumes_after_a_kill_mid_run(kind, tiny_root, tmp_path, capsys):
    out = tmp_path / kind
    extra = ["--source", "grabcut"] if kind == "mask" else ["--source", "torchvision", *FAST_TV]
    process = _run_tool(kind, tiny_root, out, extra)
    if kind == "mask":
        def started() -> bool:
            return len(list(out.rglob("*.png"))) >= 3
    else:
        def started() -> bool:
            return len(list((out / SHARD_DIR).glob("shard-*.npz"))) >= 3
    _wait_for(started, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "manifest.json").exists()
    for png in out.rglob("*.png"):  # every file under a real name is complete
        with Image.open(png) as image:
            image.load()
    for shard in (out / SHARD_DIR).glob("shard-*.npz"):
        with np.load(shard) as npz:
            assert npz["keypoints"].shape[1:] == (17, 3)
    total = len(_all_items(tiny_root))
    capsys.readouterr()
    assert main(kind, [*extra, *_dataset_args(tiny_root), "--out", str(out),
                       "--no-progress"]) == 0
    summary = capsys.readouterr().out
    cached = int(summary.split(" already cached")[0].rsplit(" ", 1)[1])
    assert 3 <= cached < total
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["count"] == total
    assert not list(out.rglob(".*.tmp"))


def test_reading_a_random_weights_cache_warns_and_a_normal_one_does_not(tmp_path):
    import warnings

    from reid_ext.preprocess.cache import write_manifest

    write_manifest(tmp_path / "random", "mask", "torchvision", "random", "0", 0,
                   extra={"random_weights": True})
    with pytest.warns(RandomWeightsCacheWarning, match="tests only"):
        MaskCache(tmp_path / "random")
    write_manifest(tmp_path / "real", "mask", "grabcut", "", "0", 0,
                   extra={"random_weights": False})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MaskCache(tmp_path / "real")
    with pytest.raises(ValueError, match="replace the standard"):
        write_manifest(tmp_path / "bad", "mask", "x", "", "0", 0, extra={"source": "y"})
