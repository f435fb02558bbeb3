"""The refinement loop: margin warnings, and a tiny two-step run killed and resumed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reid_ext.checkpoint import load_checkpoint
from reid_ext.uda.loop import STATE_FILE, margin_warnings

REPO = Path(__file__).resolve().parents[1]
TERMS = [{"name": "softmax", "kwargs": {"eps": 0.1}},
         {"name": "triplet_hard", "kwargs": {"margin": 0.3}}]


def test_margin_warnings_flag_collapse_only() -> None:
    with pytest.warns(UserWarning) as caught:
        found = margin_warnings({"softmax": 3.9, "triplet_hard": 0.301}, TERMS, num_classes=50)
    assert len(found) == 2 and len(caught) == 2
    assert "margin 0.3" in found[1] and "ln C" in found[0]
    assert margin_warnings({"softmax": 1.2, "triplet_hard": 0.05}, TERMS, num_classes=50) == []


def _command(save_dir: Path, data_root: Path) -> list[str]:
    source, target = "data.options.synthetic_person", "data.options.synthetic_person_target"
    tiny = []
    for section in (source, target):
        tiny += [f"{section}.num_train_ids", "8", f"{section}.num_test_ids", "4",
                 f"{section}.num_cameras", "2", f"{section}.height", "32",
                 f"{section}.width", "32"]
    return [sys.executable, str(REPO / "tools" / "train_uda.py"),
            "--config-file", str(REPO / "configs" / "uda_synthetic.yaml"),
            "data.root", str(data_root), "data.save_dir", str(save_dir), "data.workers", "0",
            "data.height", "32", "data.width", "32", "train.max_epoch", "3",
            "train.batch_size", "8", "sampler.num_instances", "2", "uda.steps", "2",
            "uda.epochs_per_step", "1", "uda.k1", "6", "uda.k2", "3", "uda.num_neighbors",
            "20", "uda.eps", "0.45", "uda.min_samples", "2", *tiny]


def _state_step(save_dir: Path) -> int:
    try:
        return int(load_checkpoint(save_dir / STATE_FILE)["step"])
    except (FileNotFoundError, RuntimeError, ValueError):
        return -1


@pytest.mark.slow
def test_two_step_run_resumes_after_a_kill(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    save_dir = tmp_path / "run"
    command = _command(save_dir, tmp_path / "data")
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while _state_step(save_dir) < 1 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)  # between steps: step 1 is saved, step 2 under way
    first.wait()
    log.close()
    assert _state_step(save_dir) == 1, (tmp_path / "first.log").read_text()[-3000:]
    saved = load_checkpoint(save_dir / STATE_FILE)["history"]
    assert [row["step"] for row in saved] == [0, 1]
    assert saved[1]["clusters"] >= 4 and 0 <= saved[1]["outlier_fraction"] < 1
    assert "nmi" in saved[1] and "mAP" in saved[1] and "loss/triplet_hard" in saved[1]

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resuming after step 1" in second.stdout
    assert "source training" not in second.stdout  # step 0 was not redone
    history = json.loads((save_dir / "uda_log.json").read_text())
    assert [row["step"] for row in history] == [0, 1, 2]
    assert history[1] == pytest.approx(saved[1])  # the finished step is kept as it was
    assert history[2]["loss/loss"] > 0 and 0 <= history[2]["mAP"] <= 1
    weights = load_checkpoint(save_dir / "step2" / "model.pth")
    assert set(weights["camera_stats"]) >= {"cameras", "mean", "std"}
    assert any((save_dir / "tb").iterdir())
