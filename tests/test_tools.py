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
