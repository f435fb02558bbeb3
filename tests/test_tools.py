"""tools/train.py and tools/test.py end to end, and the README's Python example."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from test_engine import TINY_SYNTH

REPO = Path(__file__).resolve().parents[1]


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_opts(tmp_path) -> list[str]:
    return ["data.root", str(tmp_path / "data"), "data.save_dir", str(tmp_path / "log"),
            "data.height", "64", "data.width", "32", "data.workers", "0",
            "train.max_epoch", "1", "train.batch_size", "8", "sampler.num_instances", "2",
            "test.batch_size", "16", *TINY_SYNTH]


def test_train_then_test_a_checkpoint(tmp_path, capsys):
    opts = tiny_opts(tmp_path)
    assert load_tool("train").main(["--config-file", str(REPO / "configs/quickstart.yaml"),
                                    *opts]) == 0
    trained = capsys.readouterr().out
    checkpoint = tmp_path / "log" / "model" / "model.pth.tar-1"
    logs = list((tmp_path / "log").glob("train.log-*"))
    assert checkpoint.is_file() and len(logs) == 1
    assert "Rank-1" in logs[0].read_text()  # the log file holds what was printed
    rank1 = re.findall(r"Rank-1  : ([\d.]+)%", trained)[-1]

    assert load_tool("test").main(["--config-file", str(REPO / "configs/quickstart.yaml"),
                                   "--weights", str(checkpoint), *opts]) == 0
    tested = capsys.readouterr().out
    assert re.findall(r"Rank-1  : ([\d.]+)%", tested)[-1] == rank1  # same weights, same R1
    assert "mINP" in tested

    # test.multi_query: the queries pooled per (pid, camera) before ranking
    assert load_tool("test").main(["--config-file", str(REPO / "configs/quickstart.yaml"),
                                   "--weights", str(checkpoint), *opts,
                                   "test.multi_query", "max"]) == 0
    pooled = capsys.readouterr().out
    assert re.search(r"multiple query \(max\): \d+ query images -> \d+ pooled queries", pooled)
    assert "Rank-1" in pooled

    # --camera-norm: a checkpoint without camera statistics is refused, naming the file
    assert load_tool("test").main(["--config-file", str(REPO / "configs/quickstart.yaml"),
                                   "--weights", str(checkpoint), "--camera-norm", *opts]) == 1
    assert "holds no camera_stats" in capsys.readouterr().err
    # identity statistics (mean 0, std 1 per camera): applied, and the ranking is unchanged
    import torch

    from reid_ext.checkpoint import load_checkpoint
    from reid_ext.uda.camera_norm import CameraStats

    state = load_checkpoint(checkpoint)
    dims, cameras = 512, torch.arange(8)
    state["camera_stats"] = CameraStats(cameras, torch.zeros(8, dims), torch.ones(8, dims),
                                        torch.zeros(dims), torch.ones(dims)).state_dict()
    with_stats = tmp_path / "with_stats.pth"
    torch.save(state, with_stats)
    assert load_tool("test").main(["--config-file", str(REPO / "configs/quickstart.yaml"),
                                   "--weights", str(with_stats), "--camera-norm", *opts]) == 0
    normed = capsys.readouterr().out
    assert "camera-normalised with the statistics of 8 cameras" in normed
    assert re.findall(r"Rank-1  : ([\d.]+)%", normed)[-1] == rank1


def test_engine_camera_normalize_applies_the_statistics_where_they_fit():
    """Per camera (f - mu_v) / sigma_v on feature sets of the fitted width; others untouched."""
    from types import SimpleNamespace

    import torch

    from reid_ext.engine import ReidEngine
    from reid_ext.uda.camera_norm import fit_camera_stats

    fit = torch.randn(40, 4) * 3 + 1
    fit_cams = torch.arange(40) % 2
    stats = fit_camera_stats(fit, fit_cams)
    feats = {"feats": torch.randn(6, 4), "other": torch.randn(6, 3)}
    cams = torch.tensor([0, 1, 0, 1, 1, 0])
    out = ReidEngine.camera_normalize(SimpleNamespace(camera_stats=stats), feats, cams)
    for row in range(6):
        cam = int(cams[row])
        expected = (feats["feats"][row] - fit[fit_cams == cam].mean(0)) / \
            fit[fit_cams == cam].std(0, unbiased=False)
        torch.testing.assert_close(out["feats"][row], expected, rtol=1e-4, atol=1e-4)
    assert out["other"] is feats["other"]


def test_train_rejects_unknown_key_with_exit_code_2(capsys):
    assert load_tool("train").main(["train.max_epochs", "3"]) == 2
    assert "did you mean 'train.max_epoch'" in capsys.readouterr().err


def test_readme_python_example_runs(tmp_path, monkeypatch):
    readme = (REPO / "README.md").read_text()
    example = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)  # the example generates synthetic_person under ./reid-data
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert tuple(namespace["embeddings"].shape) == (4, 2048)
    assert namespace["datamanager"].num_train_pids == 50
