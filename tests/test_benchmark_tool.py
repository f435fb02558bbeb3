"""tools/benchmark.py: specs, measurements, table/plot writers, resume, aux skips, end to end.

The default suite runs the worker in-process on tiny test models registered for the test (a
spawned child cannot see them); the slow test runs the real command, with spawned children,
on two stock torchreid models and one reid_ext model.
"""
from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from tiny_models import MaskKeypointPoolNet, TinyNet
from torch import nn

from reid_ext.benchmarking import measure
from reid_ext.benchmarking.plot import plot_accuracy_vs_speed, plottable
from reid_ext.benchmarking.report import (
    COLUMNS,
    check_row,
    empty_row,
    markdown_table,
    write_csv,
    write_markdown,
)
from reid_ext.benchmarking.specs import Job, ModelSpec, parse_model_list, parse_model_spec
from reid_ext.benchmarking.suite import (
    BenchmarkOptions,
    build_jobs,
    default_opts,
    run_benchmark,
)

pytestmark = pytest.mark.filterwarnings("ignore:number of gallery samples")

REPO = Path(__file__).resolve().parents[1]
TINY_SYNTH = ["data.options.synthetic_person.num_train_ids", "6",
              "data.options.synthetic_person.num_test_ids", "4",
              "data.options.synthetic_person.images_per_id_per_camera", "2",
              "data.options.synthetic_person.num_cameras", "2"]


def tiny_opts(tmp_path: Path) -> list[str]:
    return ["data.root", str(tmp_path / "data"), "data.height", "64", "data.width", "32",
            "data.workers", "0", "train.batch_size", "8", "sampler.num_instances", "2",
            "test.batch_size", "32", "train.print_freq", "1000", *TINY_SYNTH]


# --- specs ----------------------------------------------------------------------------------
def test_model_specs_parse_names_and_sizes():
    assert parse_model_spec("resnet50") == ModelSpec("resnet50")
    spec = parse_model_spec(" bignet@128x48 ")
    assert spec.size == (128, 48) and spec.label == "bignet@128x48"
    assert [s.label for s in parse_model_list("a, b@8x4,")] == ["a", "b@8x4"]
    for bad in ("bignet@128", "bignet@0x48", "@8x4", "x@axb"):
        with pytest.raises(ValueError, match="expected NAME|HEIGHTxWIDTH"):
            parse_model_spec(bad)
    with pytest.raises(ValueError, match="more than once"):
        parse_model_list("a,b,a")


def test_config_file_keys_beat_benchmark_defaults(tmp_path):
    plain = default_opts(None)
    assert plain[plain.index("loss.name") + 1] == "triplet"
    assert plain[plain.index("loss.triplet.weight_x") + 1] == "1.0"
    yaml_file = tmp_path / "base.yaml"
    yaml_file.write_text("loss:\n  terms:\n    - {name: softmax}\ntrain:\n  max_epoch: 3\n")
    layered = default_opts(str(yaml_file))
    assert "loss.name" not in layered and "loss.triplet.weight_x" not in layered
    assert "train.max_epoch" not in layered and "sampler.train_sampler" in layered
    options = BenchmarkOptions(dataset="synthetic_person", models=[ModelSpec("resnet18")],
                               out_dir=tmp_path / "out", config_file=str(yaml_file),
                               opts=["train.seed", "5"], epochs=2)
    from reid_ext.config import load_config

    job = build_jobs(options)[0]
    cfg = load_config(job.config_file, job.opts)
    assert cfg.train.max_epoch == 2 and cfg.train.seed == 5 and not cfg.model.pretrained
    assert list(cfg.data.sources) == ["synthetic_person"] == list(cfg.data.targets)
    assert cfg.data.save_dir == str(tmp_path / "out" / "resnet18")
    assert [t["name"] for t in cfg.loss.terms] == ["softmax"]


def test_input_size_from_spec_then_model_then_config(tmp_path):
    from reid_ext.benchmarking.worker import resolve_config

    options = BenchmarkOptions(dataset="synthetic_person", out_dir=tmp_path,
                               models=parse_model_list("bignet,bignet@64x24,osnet_x0_25"),
                               opts=["data.height", "96", "data.width", "32"])
    own, given, stock = (resolve_config(job) for job in build_jobs(options))
    assert (own.data.height, own.data.width) == (128, 48)  # BigNet's input_size
    assert "height" not in own.model.kwargs
    assert (given.data.height, given.data.width) == (64, 24)
    assert (given.model.kwargs.height, given.model.kwargs.width) == (64, 24)
    assert (stock.data.height, stock.data.width) == (96, 32)


# --- measurements ---------------------------------------------------------------------------
def test_flops_count_multiply_adds_twice():
    conv = nn.Conv2d(3, 5, kernel_size=3, padding=1, bias=False)
    x = torch.zeros(1, 3, 8, 6)
    assert measure.count_flops(lambda: conv(x)) == 2 * (5 * 8 * 6) * (3 * 3 * 3)
    linear = nn.Linear(10, 20)
    assert measure.count_flops(lambda: linear(torch.zeros(4, 10))) == 2 * 4 * 10 * 20
    assert measure.count_parameters(linear) == 10 * 20 + 20


def test_median_timing_ignores_warmup_and_outliers():
    ticks = iter([0.0, 1.0, 1.0, 1.5, 10.0, 10.2, 20.0, 29.0, 30.0, 30.3])
    calls = []
    seconds = measure.median_seconds(lambda: calls.append(1), warmup=2, repeats=5,
                                     device=torch.device("cpu"), clock=lambda: next(ticks))
    # durations 1.0, 0.5, 0.2, 9.0, 0.3 -> median 0.5
    assert seconds == pytest.approx(0.5) and len(calls) == 7
    assert measure.images_per_second(32, 0.5) == 64


def test_tile_batch_repeats_rows_to_the_size():
    batch = {"img": torch.arange(3).view(3, 1), "mask": torch.arange(3).view(3, 1, 1)}
    tiled = measure.tile_batch(batch, 7)
    assert tiled["img"].flatten().tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert tiled["mask"].shape == (7, 1, 1)
    assert measure.tile_batch(batch, 2)["img"].flatten().tolist() == [0, 1]


# --- writers --------------------------------------------------------------------------------
def fabricated_rows() -> list[dict]:
    fast = empty_row("fast", "torchreid")
    fast.update(input_size="64x32", rank1=0.8125, rank5=0.9, mAP=0.5, mINP=0.25, params_M=1.5,
                gflops=0.123, train_img_s=100.0, infer_img_s_b32=400.0, infer_img_s_b1=50.0,
                peak_mem_mib=900.0, wall_s=12.0)
    slow = dict(fast, model="slow@128x48", origin="reid_ext", mAP=0.75, mINP=None,
                infer_img_s_b32=10.0, train_img_s=None)
    skipped = empty_row("needs_masks", "reid_ext", status="skipped")
    skipped["note"] = "run python tools/extract_masks.py | now"
    return [fast, slow, skipped]


def test_csv_has_exact_columns_and_round_trips(tmp_path):
    rows = fabricated_rows()
    write_csv(rows, tmp_path / "r.csv")
    with open(tmp_path / "r.csv") as f:
        reader = csv.DictReader(f)
        read = list(reader)
    assert tuple(reader.fieldnames) == COLUMNS
    assert [r["model"] for r in read] == ["fast", "slow@128x48", "needs_masks"]
    assert float(read[0]["rank1"]) == 0.8125 and float(read[0]["gflops"]) == 0.123
    assert read[1]["mINP"] == "" and read[1]["train_img_s"] == ""
    assert read[2]["status"] == "skipped" and read[2]["rank1"] == ""
    with pytest.raises(ValueError, match="unknown columns \\['extra'\\]"):
        write_csv([dict(rows[0], extra=1)], tmp_path / "bad.csv")


def test_markdown_shows_percentages_and_na(tmp_path):
    rows = fabricated_rows()
    table = markdown_table(rows).splitlines()
    assert len(table) == 2 + len(rows)
    fast = [c.strip() for c in table[2].strip("|").split("|")]
    # R1 0.8125 -> 81.2 (%), mAP 0.5 -> 50.0, mINP 0.25 -> 25.0, GFLOPs to 3 significant digits
    assert fast[3:7] == ["81.2", "90.0", "50.0", "25.0"] and fast[8] == "0.123"
    slow = [c.strip() for c in table[3].strip("|").split("|")]
    assert slow[6] == "n/a" and slow[9] == "n/a"
    assert "\\|" in table[4]  # a '|' in a note does not break the table
    path = write_markdown(rows, tmp_path / "r.md", title="T", environment={"torch": "x"},
                          settings={"timing_repeats": 7, "timing_warmup": 2},
                          plot_name="p.png")
    text = path.read_text()
    assert "- torch: x" in text and "median time of 7 eval forwards after 2" in text
    assert "![mAP against inference speed](p.png)" in text


def test_plot_draws_only_measured_rows(tmp_path):
    rows = fabricated_rows()
    assert [r["model"] for r in plottable(rows)] == ["fast", "slow@128x48"]
    path = plot_accuracy_vs_speed(rows, tmp_path / "plot.png", title="t")
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 100 and img.size[1] > 100
    assert plot_accuracy_vs_speed(rows[2:], tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


# --- the worker in-process, on tiny registered models ---------------------------------------
def tiny_net(num_classes, loss="softmax", pretrained=False, **kwargs):
    return TinyNet(num_classes)


def tiny_aux_net(num_classes, loss="softmax", pretrained=False, **kwargs):
    return MaskKeypointPoolNet(num_classes)


class BrokenNet(TinyNet):
    def forward(self, x):
        raise RuntimeError("broken on purpose")


def broken_net(num_classes, loss="softmax", pretrained=False, **kwargs):
    return BrokenNet(num_classes)


@pytest.fixture
def tiny_models_registered(monkeypatch):
    import reid_ext  # noqa: F401
    from reid_ext.data.options import clear_dataset_options
    from reid_ext.registry import MODELS

    table = dict(MODELS._table)
    table.update(bench_tiny=tiny_net, bench_tiny_aux=tiny_aux_net, bench_broken=broken_net)
    monkeypatch.setattr(MODELS, "_table", table)
    yield
    clear_dataset_options()


def tiny_options(tmp_path, models, *extra, **kwargs) -> BenchmarkOptions:
    return BenchmarkOptions(dataset="synthetic_person", models=parse_model_list(models),
                            out_dir=tmp_path / "out", opts=[*tiny_opts(tmp_path), *extra],
                            epochs=1, timing_warmup=0, timing_repeats=1, isolate=False,
                            **kwargs)


def test_in_process_run_measures_and_resume_skips(tmp_path, tiny_models_registered):
    calls = []

    def counting_runner(job: Job) -> int:
        from reid_ext.benchmarking.worker import run_job_logged

        calls.append(job.spec.label)
        return run_job_logged(job)

    options = tiny_options(tmp_path, "bench_tiny,bench_tiny_aux")
    rows = run_benchmark(options, runner=counting_runner)
    assert calls == ["bench_tiny", "bench_tiny_aux"]
    for row in rows:
        check_row(row)
        assert row["status"] == "ok", row["note"]
        assert 0 <= row["rank1"] <= row["rank5"] <= 1 and 0 < row["mAP"] <= 1
        assert 0 < row["mINP"] <= 1
        assert row["train_img_s"] > 0 and row["infer_img_s_b32"] > 0 and row["peak_mem_mib"] > 0
        assert row["input_size"] == "64x32" and row["origin"] == "reid_ext"
    tiny = rows[0]
    # TinyNet at 64x32: conv 3->16 (3x3, stride 2) to 32x16, conv 16->16 (3x3) at 32x16.
    macs = 16 * 32 * 16 * 3 * 9 + 16 * 32 * 16 * 16 * 9
    assert tiny["gflops"] == pytest.approx(2 * macs / 1e9)
    num_ids = 6
    params = (16 * 3 * 9 + 16) + 2 * 16 + (16 * 16 * 9 + 16) + 2 * 16 + (16 * num_ids + num_ids)
    assert tiny["params_M"] == pytest.approx(params / 1e6)
    out = options.out_dir
    assert {"results.csv", "results.md", "environment.json", "accuracy_vs_speed.png"} <= {
        p.name for p in out.iterdir()}
    env = json.loads((out / "environment.json").read_text())["environment"]
    assert env["torch"] == torch.__version__ and env["torch_threads"] >= 1

    mtimes = {r["model"]: (out / r["model"] / "result.json").stat().st_mtime_ns for r in rows}
    calls.clear()
    again = run_benchmark(tiny_options(tmp_path, "bench_tiny,bench_tiny_aux", resume=True),
                          runner=counting_runner)
    assert calls == []
    assert [r["mAP"] for r in again] == [r["mAP"] for r in rows]
    assert mtimes == {m: (out / m / "result.json").stat().st_mtime_ns for m in mtimes}


def test_missing_aux_cache_skips_with_the_extraction_command(tmp_path, tiny_models_registered):
    missing = tmp_path / "no_such_cache"
    options = tiny_options(tmp_path, "bench_tiny_aux", "aux.mask", str(missing))
    (row,) = run_benchmark(options)
    assert row["status"] == "skipped"
    assert "tools/extract_masks.py --source <source> --dataset synthetic_person" in row["note"]
    assert (REPO / "tools" / "extract_masks.py").is_file()  # the named tool exists
    assert str(missing) in row["note"]
    job_dir = options.out_dir / "bench_tiny_aux"
    assert not (job_dir / "result.json").exists()
    assert json.loads((job_dir / "status.json").read_text())["status"] == "skipped"
    with open(options.out_dir / "results.csv") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["skipped"]


def test_failed_model_is_reported_and_the_others_go_on(tmp_path, tiny_models_registered):
    rows = run_benchmark(tiny_options(tmp_path, "bench_broken,bench_tiny"))
    assert [r["status"] for r in rows] == ["failed", "ok"]
    assert "RuntimeError: broken on purpose" in rows[0]["note"]
    status = json.loads((tmp_path / "out" / "bench_broken" / "status.json").read_text())
    assert status["status"] == "failed" and "broken on purpose" in status["traceback"]
    assert "broken on purpose" in (tmp_path / "out" / "bench_broken" / "log.txt").read_text()


def test_missing_weights_skip_with_the_paths_looked_at(tmp_path, tiny_models_registered):
    options = tiny_options(tmp_path, "bench_tiny@64x32")
    options.weights_dir = tmp_path / "nothing_here"
    (row,) = run_benchmark(options)
    assert row["status"] == "skipped"
    assert "no checkpoint for 'bench_tiny@64x32'" in row["note"]
    assert "nothing_here/bench_tiny@64x32/model/model-best.pth.tar" in row["note"]


def test_weights_dir_evaluates_without_training(tmp_path, tiny_models_registered):
    trained = run_benchmark(tiny_options(tmp_path, "bench_tiny"))[0]
    options = tiny_options(tmp_path, "bench_tiny")
    options.weights_dir, options.out_dir = tmp_path / "out", tmp_path / "eval"
    (row,) = run_benchmark(options)
    assert row["status"] == "ok" and row["train_img_s"] is None
    assert row["mAP"] == pytest.approx(trained["mAP"])
    assert "model.pth.tar-1" in row["note"]


def test_bad_names_fail_before_training(tmp_path, tiny_models_registered):
    from reid_ext.registry import UnknownNameError

    with pytest.raises(UnknownNameError, match="resnet50"):
        run_benchmark(tiny_options(tmp_path, "resnet5O"))
    options = tiny_options(tmp_path, "bench_tiny")
    options.dataset = "synthetic_persn"
    with pytest.raises(UnknownNameError, match="synthetic_person"):
        run_benchmark(options)
    assert not (tmp_path / "out").exists()


# --- the real command, spawned children, stock and reid_ext models --------------------------
@pytest.mark.slow
def test_command_end_to_end_with_stock_and_reid_ext_models(tmp_path):
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import benchmark as tool
    finally:
        sys.path.remove(str(REPO / "tools"))
    out = tmp_path / "out"
    argv = ["--dataset", "synthetic_person", "--models", "resnet18,osnet_x0_25,resnet18_bnneck",
            "--epochs", "1", "--out", str(out), "--seed", "3", "--timing-warmup", "1",
            "--timing-repeats", "2", *tiny_opts(tmp_path)]
    assert tool.main(argv) == 0
    with open(out / "results.csv") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == COLUMNS
    assert [r["model"] for r in rows] == ["resnet18", "osnet_x0_25", "resnet18_bnneck"]
    assert [r["origin"] for r in rows] == ["torchreid", "torchreid", "reid_ext"]
    for row in rows:
        assert row["status"] == "ok"
        assert 0 <= float(row["rank1"]) <= 1 and 0 < float(row["mAP"]) <= 1
        for key in ("params_M", "gflops", "train_img_s", "infer_img_s_b32", "infer_img_s_b1",
                    "peak_mem_mib", "wall_s"):
            assert float(row[key]) > 0 and math.isfinite(float(row[key])), key
    # resnet18 has 11.2M parameters with a 6-way classifier (torchreid's own count)
    from reid_ext.models.factory import build_model

    stock = build_model("resnet18", num_classes=6, loss="triplet", pretrained=False)
    assert float(rows[0]["params_M"]) == pytest.approx(measure.count_parameters(stock) / 1e6,
                                                       rel=1e-5)
    with Image.open(out / "accuracy_vs_speed.png") as img:
        img.verify()
    assert "torchreid: 0.2.5" in (out / "results.md").read_text()
    mtimes = {r["model"]: (out / r["model"] / "result.json").stat().st_mtime_ns for r in rows}
    assert tool.main(["--resume", *argv]) == 0
    assert mtimes == {m: (out / m / "result.json").stat().st_mtime_ns for m in mtimes}
