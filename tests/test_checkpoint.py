"""Checkpoints: atomic writes, safe loading of reid_ext and torchreid files, partial weights."""
from __future__ import annotations

import os
import pickle
import stat

import numpy as np
import pytest
import torch
from tiny_models import TinyNet

from reid_ext.checkpoint import load_checkpoint, load_matching_weights, save_atomic


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pth"
    save_atomic({"epoch": 1}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_atomic({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pth"]  # no temporary left behind


def test_checkpoint_is_readable_by_others(tmp_path):
    path = save_atomic({"epoch": 1}, tmp_path / "c.pth")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_torchreid_style_checkpoint_loads_with_weights_only(tmp_path):
    # torchreid stores rank1 as a numpy float: plain torch.load(weights_only=True) refuses it
    path = tmp_path / "host.pth.tar"
    torch.save({"state_dict": {}, "rank1": np.float64(0.75), "epoch": 3}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    assert load_checkpoint(path)["rank1"] == 0.75


def test_load_matching_weights_skips_other_classifier(tmp_path):
    torch.manual_seed(0)
    source, target = TinyNet(num_classes=5), TinyNet(num_classes=9)
    path = tmp_path / "w.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    report = load_matching_weights(target, path)
    assert sorted(report.skipped_head) == ["classifier.bias", "classifier.weight"]
    assert report.skipped_other == [] and report.missing == []
    for key, value in source.state_dict().items():
        if not key.startswith("classifier"):
            assert torch.equal(target.state_dict()[key], value)
    torch.save({"state_dict": {"other.weight": torch.zeros(2)}}, path)
    with pytest.raises(ValueError, match="only 0 of its 14 backbone tensors load"):
        load_matching_weights(target, path)


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_checkpoint(tmp_path / "nope.pth")
