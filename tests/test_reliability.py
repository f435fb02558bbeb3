"""Issue 15, points 1-7: each failure reproduced, and now the documented behaviour.

Subprocess tests (with a timeout) where a hang or an exit code is the point.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_engine import TINY_SYNTH, tiny_cfg
from test_tools import load_tool, tiny_opts
from tiny_models import TinyNet

from reid_ext import host
from reid_ext.checkpoint import (
    WeightsMismatchError,
    load_checkpoint,
    load_matching_weights,
    save_atomic,
)
from reid_ext.config import ConfigError, load_config
from reid_ext.divergence import MAX_CONSECUTIVE_SKIPS, DivergenceError, DivergenceGuard
from reid_ext.images import UnreadableImageError, read_rgb_image
from reid_ext.runner import build_engine, engine_run_kwargs

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = str(REPO / "configs/quickstart.yaml")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1"}


def _save(path: Path, value: int, size=(16, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)


def image_folder(root: Path, num_query_ids: int = 3, per_id: int = 2) -> Path:
    """train: 4 ids x 2 cams x 2; query: ``num_query_ids`` ids x ``per_id`` (names repeat
    across ids: 01_0.jpg ...); gallery: the same ids on cam 02."""
    for pid in range(4):
        for cam in (1, 2):
            for i in range(2):
                _save(root / f"train/{pid:04d}/{cam:02d}_{i}.jpg", 100 * pid + 10 * cam + i)
    for pid in range(num_query_ids):
        for i in range(per_id):
            _save(root / f"query/{pid:04d}/01_{i}.jpg", 1000 + 10 * pid + i)
            _save(root / f"gallery/{pid:04d}/02_{i}.jpg", 2000 + 10 * pid + i)
    return root


def folder_opts(tmp_path: Path, root: Path) -> list[str]:
    return ["data.sources", "['image_folder']", "data.targets", "['image_folder']",
            "data.options.image_folder.data_dir", str(root), "data.save_dir",
            str(tmp_path / "log"), "data.height", "32", "data.width", "16", "data.workers", "0",
            "train.max_epoch", "1", "train.batch_size", "4", "sampler.num_instances", "2",
            "test.batch_size", "4", "test.ranks", "[1]", "model.name", "resnet18"]


def run_tool(tool: str, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "tools" / f"{tool}.py"), *args],
                          capture_output=True, text=True, timeout=timeout, env=_env(),
                          cwd=REPO)


# --- 1. unreadable images ---------------------------------------------------------------------
@pytest.mark.parametrize("content", [b"", b"not an image at all", "truncated"])
def test_unreadable_image_raises_naming_the_file_also_through_the_host(tmp_path, content):
    path = tmp_path / "bad.jpg"
    if content == "truncated":
        _save(path, 1, size=(64, 64))
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.write_bytes(content)
    with pytest.raises(UnreadableImageError, match=re.escape(str(path))):
        read_rgb_image(str(path))
    # torchreid's own ImageDataset (stock datasets, combined train sets) now reads through it
    dataset = host.ImageDataset([(str(path), 0, 0, 0)], [(str(path), 0, 0, 0)],
                                [(str(path), 0, 1, 0)], verbose=False)
    with pytest.raises(UnreadableImageError, match="bad.jpg"):
        dataset[0]


def test_bad_query_image_fails_the_run_fast_or_is_skipped_and_counted(tmp_path):
    root = image_folder(tmp_path / "folder")
    bad = root / "query/0001/01_1.jpg"
    bad.write_bytes(b"")  # zero-byte: torchreid's read_image looped forever on it
    opts = folder_opts(tmp_path, root)
    failed = run_tool("train", ["--config-file", QUICKSTART, *opts])
    assert failed.returncode == 1, failed.stderr[-2000:]
    assert f"cannot read image '{bad}'" in failed.stderr
    assert "Just chill" not in failed.stdout + failed.stderr

    skipped = run_tool("train", ["--config-file", QUICKSTART, *opts,
                                 "data.skip_bad_images", "True"])
    assert skipped.returncode == 0, skipped.stderr[-2000:]
    assert re.search(r"bad images: skipped \d+ loads of 1 unreadable file", skipped.stdout)
    assert str(bad) in skipped.stdout
    assert "Rank-1" in skipped.stdout


# --- 2. 16-bit PNGs ---------------------------------------------------------------------------
def test_sixteen_bit_png_is_scaled_not_white(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 32).astype(np.uint16).reshape(64, 32)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    with Image.open(path) as raw:
        assert raw.mode in ("I;16", "I")  # what PIL gives for a 16-bit PNG
        assert (np.asarray(raw.convert("RGB")) == 255).mean() > 0.9  # the old all-white bug
    image = np.asarray(read_rgb_image(str(path)))
    assert image.shape == (64, 32, 3)
    np.testing.assert_array_equal(image[..., 0], (ramp >> 8).astype(np.uint8))
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


def test_float_image_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "float.tiff"
    Image.fromarray(np.ones((8, 8), dtype=np.float32)).save(path)
    with pytest.raises(UnreadableImageError, match=r"float\.tiff.*mode F"):
        read_rgb_image(str(path))


# --- 3. divergence ----------------------------------------------------------------------------
def test_nan_loss_stops_the_run_naming_terms_epoch_batch_exit_1(tmp_path, capsys):
    opts = tiny_opts(tmp_path)
    assert load_tool("train").main(["--config-file", QUICKSTART, *opts]) == 0
    good = tmp_path / "log" / "model" / "model.pth.tar-1"
    assert good.is_file()
    capsys.readouterr()
    # continue for 2 more epochs at an absurd learning rate (the override is applied)
    code = load_tool("train").main(["--config-file", QUICKSTART, *opts, "train.max_epoch", "3",
                                    "train.optim", "adam", "train.lr", "1e6",
                                    "model.resume", str(good)])
    out = capsys.readouterr()
    assert code == 1
    assert "train.lr override on resume applied: 0.001 -> 1000000.0" in out.out
    message = re.search(r"error: training diverged at epoch (\d+), batch (\d+): (.*)", out.err)
    assert message, out.err
    assert int(message.group(1)) >= 2
    assert re.match(r"(non-finite loss from|the loss exploded to|\d+ parameter tensor)",
                    message.group(3)), message.group(3)
    # the last good checkpoint is kept, no diverged one was written
    assert sorted(p.name for p in (tmp_path / "log" / "model").iterdir()) == ["model.pth.tar-1"]
    state = load_checkpoint(good)
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values()
               if v.is_floating_point())


def test_sgd_nan_loss_names_the_term(tmp_path):
    # the explosion check (which fires first, at batch 2) is off: the NaN itself is caught
    cfg = tiny_cfg(tmp_path, "train.optim", "sgd", "train.lr", "1e6",
                   "train.divergence_factor", "0.0", "train.max_epoch", "5")
    engine = build_engine(cfg)
    with pytest.raises(DivergenceError, match=r"epoch \d, batch \d+: non-finite loss from "
                                              r"(softmax|triplet)"):
        engine.run(**engine_run_kwargs(cfg))
    assert not list((tmp_path / "log").rglob("model.pth.tar-*"))


def test_amp_scaler_skips_are_counted_not_fatal_until_too_many():
    guard = DivergenceGuard()
    assert guard.check_loss(torch.tensor(float("inf")), 0, 0, amp_scaler=True)
    guard.after_scaler_update(65536.0, 32768.0, 0, 0)  # the scaler skipped a step
    guard.after_scaler_update(32768.0, 32768.0, 0, 1)  # a good step resets the streak
    assert guard.skipped_steps == 1 and "skipped for inf/NaN gradients: 1" in guard.summary()
    scale = 2.0 ** 16
    with pytest.raises(DivergenceError, match=f"skipped {MAX_CONSECUTIVE_SKIPS} steps in a row"):
        for batch in range(MAX_CONSECUTIVE_SKIPS):
            guard.after_scaler_update(scale, scale / 2, 0, batch)
            scale /= 2
    with pytest.raises(DivergenceError, match="the total"):
        DivergenceGuard().check_loss(torch.tensor(float("nan")), 0, 0, amp_scaler=False)


def test_engine_with_a_grad_scaler_skips_an_inf_step(tmp_path):
    engine = build_engine(tiny_cfg(tmp_path))
    engine.scaler = torch.amp.GradScaler("cpu")
    before = {k: v.clone() for k, v in engine.model.state_dict().items()}
    param = next(engine.model.parameters())
    engine.step(param.sum() * float("inf"), engine.optimizer, engine.loss_terms)
    assert engine.divergence.skipped_steps == 1
    for key, value in engine.model.state_dict().items():
        assert torch.equal(value, before[key]), key


# --- 4. config checks up front; final checkpoint before the final test ------------------------
@pytest.mark.parametrize("opts, match", [
    (["test.dist_metric", "euclid"], "test.dist_metric must be one of"),
    (["test.ranks", "[0, 5]"], "test.ranks must be a non-empty list of integers >= 1"),
    (["train.max_epoch", "0"], "train.max_epoch must be >= 1"),
    (["loss.name", "triplet", "loss.triplet.margin", "-0.1"], "margin must be >= 0"),
    (["loss.terms", "[{'name': 'triplet', 'kwargs': {'margin': -1}}]"], "margin must be >= 0"),
    (["data.options.market1502.foo", "1"], "did you mean 'market1501'"),
    (["train.lr", "-1.0"], "train.lr must be a positive"),
    (["train.divergence_factor", "-1.0"], "train.divergence_factor must be >= 0"),
    (["test.visrank", "True"], "test.visrank True needs test.evaluate True"),
])
def test_values_used_late_are_checked_at_config_time(opts, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, opts)


def test_option_tables_a_dataset_reads_are_allowed():
    load_config(None, ["data.sources", "['col780_clean']", "data.targets", "['col780_clean']",
                       "data.options.col780.data_dir", "/x"])
    load_config(None, ["train.max_epoch", "0", "test.evaluate", "True"])


def test_final_checkpoint_is_written_before_the_final_test(tmp_path, monkeypatch):
    cfg = tiny_cfg(tmp_path)
    engine = build_engine(cfg)

    def broken_test(*args, **kwargs):
        raise RuntimeError("evaluation crashed")

    monkeypatch.setattr(engine, "test", broken_test)
    with pytest.raises(RuntimeError, match="evaluation crashed"):
        engine.run(**engine_run_kwargs(cfg))
    assert (tmp_path / "log" / "model" / "model.pth.tar-1").is_file()


# --- 5. weight loading ------------------------------------------------------------------------
class WideNet(TinyNet):
    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes, dim=24)


def test_another_architecture_fails_with_counts_not_a_key_dump(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(WideNet(5).state_dict(), path)
    # only the two BatchNorm step counters fit (scalars); 14 = weights, biases, BN buffers
    with pytest.raises(WeightsMismatchError,
                       match=r"only 2 of its 14 backbone tensors load \(14% < 90%\)") as err:
        load_matching_weights(TinyNet(5), path)
    assert len(str(err.value)) < 600
    # the stored config names both architectures
    save_atomic({"state_dict": WideNet(5).state_dict(), "config": "model:\n  name: osnet_x1_0\n"},
                path)
    with pytest.raises(WeightsMismatchError, match="checkpoint is osnet_x1_0, config builds "
                                                   "resnet18"):
        load_matching_weights(TinyNet(5), path, model_name="resnet18")


def test_too_few_backbone_tensors_fail_at_the_stated_fraction(tmp_path):
    state = TinyNet(5).state_dict()
    part = {k: v for i, (k, v) in enumerate(state.items()) if i % 2 == 0}
    path = tmp_path / "part.pth"
    torch.save(part, path)
    with pytest.raises(WeightsMismatchError, match="< 90%"):
        load_matching_weights(TinyNet(5), path)
    report = load_matching_weights(TinyNet(5), path, min_backbone_fraction=0.4)
    assert report.backbone_loaded == sum(not k.startswith("classifier") for k in part)


def test_test_tool_accepts_other_identity_count_and_refuses_other_architecture(tmp_path,
                                                                             capsys):
    opts = tiny_opts(tmp_path)
    assert load_tool("train").main(["--config-file", QUICKSTART, *opts]) == 0
    ckpt = str(tmp_path / "log" / "model" / "model.pth.tar-1")
    capsys.readouterr()
    other_ids = [o if o != "6" else "5" for o in opts]  # num_train_ids 6 -> 5: classifier differs
    assert load_tool("test").main(["--config-file", QUICKSTART, "--weights", ckpt,
                                   *other_ids]) == 0
    out = capsys.readouterr().out
    assert re.search(r"skipped 2 head tensors \['classifier\.weight', 'classifier\.bias'\]", out)
    assert "Rank-1" in out
    assert load_tool("test").main(["--config-file", QUICKSTART, "--weights", ckpt, *opts,
                                   "model.name", "resnet34"]) == 1
    err = capsys.readouterr().err
    assert "checkpoint is resnet18, config builds resnet34" in err and len(err) < 1000


def test_resume_names_both_optimizers_and_bare_state_dict_is_weights_only(tmp_path, capsys):
    cfg = tiny_cfg(tmp_path, "train.optim", "adam")
    engine = build_engine(cfg)
    engine.save_model(0, 0.0, str(tmp_path / "ck"))
    path = tmp_path / "ck" / "model" / "model.pth.tar-1"
    sgd = build_engine(tiny_cfg(tmp_path, "train.optim", "sgd"))
    with pytest.raises(ValueError, match="trained with Adam, the config builds SGD"):
        sgd.resume(path)
    bare = tmp_path / "bare.pth"
    torch.save(engine.model.state_dict(), bare)
    assert sgd.resume(bare) == 0
    assert "bare state dict (weights only)" in capsys.readouterr().out
    for key, value in engine.model.state_dict().items():
        assert torch.equal(sgd.model.state_dict()[key], value)


# --- 6. visrank names; train.py without arguments ---------------------------------------------
def test_visrank_writes_one_picture_per_query(tmp_path, capsys):
    root = image_folder(tmp_path / "folder", num_query_ids=6, per_id=2)  # 12 queries, 2 names
    opts = folder_opts(tmp_path, root)
    assert load_tool("train").main(["--config-file", QUICKSTART, *opts]) == 0
    ckpt = str(tmp_path / "log" / "model" / "model.pth.tar-1")
    assert load_tool("test").main(["--config-file", QUICKSTART, "--weights", ckpt, *opts,
                                   "test.visrank", "True", "test.visrank_topk", "3"]) == 0
    pictures = list((tmp_path / "log" / "visrank_image_folder").glob("*.jpg"))
    assert len(pictures) == 12


def test_train_without_arguments_says_a_config_file_is_needed(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "tools/train.py")], capture_output=True,
                            text=True, timeout=120, env=_env(), cwd=tmp_path)
    assert result.returncode == 2
    assert "a config file is needed" in result.stderr
    assert "six" not in result.stderr


def test_pyproject_declares_six_for_torchreid():
    text = (REPO / "pyproject.toml").read_text()
    assert re.search(r'"six>=[\d.]+"', text)


# --- 7. setup.py shim -------------------------------------------------------------------------
def test_setup_py_shim_reads_pyproject(tmp_path):
    result = subprocess.run([sys.executable, "setup.py", "--name", "--version"],
                            capture_output=True, text=True, timeout=120, cwd=REPO, env=_env())
    assert result.returncode == 0, result.stderr[-1000:]
    assert result.stdout.split()[-2:] == ["reid-ext", "0.1.0"]


def test_tiny_synth_is_what_the_tests_use():
    assert TINY_SYNTH[1] == "6"  # test_test_tool_... swaps this value for another id count
