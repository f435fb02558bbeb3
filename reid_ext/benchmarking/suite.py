"""Benchmark several models under one budget: one child process per model, one table, one plot.

Config layering, lowest to highest: reid_ext's defaults, the benchmark's defaults
(:data:`BENCHMARK_DEFAULTS`, each dropped where the ``--config-file`` sets that key), the config
file, the user's ``KEY VALUE`` overrides, then what the benchmark fixes for a fair comparison
(dataset, model name, output folder, ``pretrained``, and ``--epochs/--seed/--batch-size/--amp``
when given).
"""
from __future__ import annotations

import json
import multiprocessing
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

import reid_ext  # noqa: F401  (registers models and datasets)
from reid_ext import host
from reid_ext.benchmarking.environment import collect_environment
from reid_ext.benchmarking.plot import plot_accuracy_vs_speed
from reid_ext.benchmarking.report import (
    atomic_write_json,
    check_row,
    empty_row,
    is_number,
    write_csv,
    write_markdown,
)
from reid_ext.benchmarking.specs import Job, ModelSpec
from reid_ext.benchmarking.worker import child_main, origin_of, run_job_logged
from reid_ext.config import load_config, loss_terms_from_config
from reid_ext.registry import MODELS, UnknownNameError, closest_first

# Softmax + triplet (weight_x 1), P x K batches so the triplet loss has positives.
BENCHMARK_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("loss.name", "triplet"),
    ("loss.triplet.weight_x", "1.0"),
    ("sampler.train_sampler", "RandomIdentitySampler"),
    ("train.max_epoch", "10"),
)
# Keys set together: a config file that sets any key of a group keeps the whole group its own.
DEFAULT_GROUPS = {"loss.name": "loss.", "loss.triplet.weight_x": "loss."}
PLOT_NAME = "accuracy_vs_speed.png"


@dataclass
class BenchmarkOptions:
    """What ``tools/benchmark.py`` was asked to do."""

    dataset: str
    models: list[ModelSpec]
    out_dir: Path
    config_file: str | None = None
    opts: list[str] = field(default_factory=list)
    epochs: int | None = None
    seed: int | None = None
    batch_size: int | None = None
    pretrained: bool = False
    amp: bool = False
    resume: bool = False
    weights_dir: Path | None = None
    timing_warmup: int = 3
    timing_repeats: int = 10
    cpu_threads: int = 0
    isolate: bool = True
    command: str = ""


def yaml_keys(path: str | None) -> set[str]:
    """Dotted keys a yaml config sets (leaves; ``a.b`` for ``{a: {b: 1}}``)."""
    if not path:
        return set()
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    keys: set[str] = set()

    def walk(node: Any, prefix: str) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            keys.add(dotted)
            if isinstance(value, dict):
                walk(value, dotted + ".")

    if isinstance(data, dict):
        walk(data, "")
    return keys


def default_opts(config_file: str | None) -> list[str]:
    """:data:`BENCHMARK_DEFAULTS` minus the keys (or key groups) the config file sets."""
    present = yaml_keys(config_file)
    opts: list[str] = []
    for key, value in BENCHMARK_DEFAULTS:
        group = DEFAULT_GROUPS.get(key)
        if key in present or (group and any(k.startswith(group) for k in present)):
            continue
        opts += [key, value]
    return opts


def fixed_opts(options: BenchmarkOptions, spec: ModelSpec, out_dir: Path) -> list[str]:
    """The keys the benchmark fixes for every model (last, so they win)."""
    opts = ["data.sources", f"['{options.dataset}']", "data.targets", f"['{options.dataset}']",
            "model.name", spec.name, "data.save_dir", str(out_dir),
            "model.pretrained", str(options.pretrained)]
    if spec.size is not None:
        opts += ["data.height", str(spec.size[0]), "data.width", str(spec.size[1])]
    if options.epochs is not None:
        opts += ["train.max_epoch", str(options.epochs)]
    if options.seed is not None:
        opts += ["train.seed", str(options.seed)]
    if options.batch_size is not None:
        opts += ["train.batch_size", str(options.batch_size)]
    if options.amp:
        opts += ["train.amp", "True"]
    return opts


def build_jobs(options: BenchmarkOptions) -> list[Job]:
    """One :class:`Job` per model, each config validated here (fail before any training)."""
    base = default_opts(options.config_file)
    jobs = []
    for spec in options.models:
        out_dir = options.out_dir / spec.dir_name
        opts = [*base, *options.opts, *fixed_opts(options, spec, out_dir)]
        load_config(options.config_file, opts)  # raises ConfigError naming the key
        jobs.append(Job(spec=spec, dataset=options.dataset, out_dir=out_dir,
                        config_file=options.config_file, opts=opts,
                        weights=options.weights_dir, timing_warmup=options.timing_warmup,
                        timing_repeats=options.timing_repeats, cpu_threads=options.cpu_threads))
    return jobs


def check_names(options: BenchmarkOptions) -> None:
    """Unknown model or dataset names fail now, with the closest known names."""
    known_models = sorted(set(MODELS.names()) | set(host.get_host().model_factory()))
    for spec in options.models:
        if spec.name not in known_models:
            raise UnknownNameError(f"--models: unknown model '{spec.name}'; known (closest "
                                   f"first): {', '.join(closest_first(spec.name, known_models))}")
    datasets = list(host.get_host().image_dataset_table())
    if options.dataset not in datasets:
        raise UnknownNameError(f"--dataset: unknown dataset '{options.dataset}'; known (closest "
                               f"first): {', '.join(closest_first(options.dataset, datasets))}")


def run_in_child(job: Job) -> int:
    """Run ``job`` in a spawned process (own memory peak, a crash loses only this model)."""
    process = multiprocessing.get_context("spawn").Process(
        target=child_main, args=(job,), name=f"benchmark-{job.spec.dir_name}")
    process.start()
    try:
        process.join()
    except BaseException:
        process.terminate()
        process.join()
        raise
    return process.exitcode if process.exitcode is not None else 1


def run_in_process(job: Job) -> int:
    return run_job_logged(job, redirect_fds=False)


def collect_row(job: Job, exit_code: int) -> dict[str, Any]:
    """The job's table row from what it left on disk."""
    if exit_code == 0 and job.result_path.is_file():
        return load_result_row(job)
    row = empty_row(job.spec.label, origin_of(job.spec.name), status="failed")
    if job.status_path.is_file():
        status = json.loads(job.status_path.read_text())
        row.update(status=status["status"], note=status["reason"])
    else:
        row["note"] = f"child process exited with code {exit_code}; see {job.log_path}"
    return row


def load_result_row(job: Job) -> dict[str, Any]:
    row = dict(json.loads(job.result_path.read_text())["row"])
    check_row(row)
    return row


def run_settings(options: BenchmarkOptions, jobs: Sequence[Job]) -> dict[str, Any]:
    """What every model shared, from the first job's config, for the report header."""
    cfg = load_config(jobs[0].config_file, jobs[0].opts)
    terms = ", ".join(f"{t['name']} x{t['weight']:g} ({t['output']})"
                      for t in loss_terms_from_config(cfg))
    return {
        "command": options.command or "(called from Python)",
        "dataset": options.dataset,
        "models": ", ".join(s.label for s in options.models),
        "mode": f"evaluate weights from {options.weights_dir}" if options.weights_dir
        else f"train {cfg.train.max_epoch} epochs from "
             f"{'ImageNet weights' if options.pretrained else 'scratch'}",
        "default input size": f"{cfg.data.height}x{cfg.data.width} (per model: NAME@HxW or the "
                              f"model's own input_size)",
        "seed": cfg.train.seed,
        "batch size": f"{cfg.train.batch_size} ({cfg.sampler.train_sampler}, "
                      f"{cfg.sampler.num_instances} per id)",
        "optimizer": f"{cfg.train.optim}, lr {cfg.train.lr:g}, {cfg.train.lr_scheduler} "
                     f"{list(cfg.train.stepsize)}",
        "loss terms": terms,
        "amp": bool(cfg.train.amp),
        "config file": options.config_file or "(none)",
        "overrides": " ".join(options.opts) or "(none)",
        "timing_warmup": options.timing_warmup,
        "timing_repeats": options.timing_repeats,
    }


def write_reports(rows: Sequence[dict[str, Any]], out_dir: Path, environment: dict[str, Any],
                  settings: dict[str, Any]) -> dict[str, Path]:
    """results.csv, results.md, environment.json and the plot (when any row can be drawn)."""
    paths = {"csv": write_csv(rows, out_dir / "results.csv"),
             "json": atomic_write_json(out_dir / "environment.json",
                                       {"environment": environment, "settings": settings})}
    plot = plot_accuracy_vs_speed(rows, out_dir / PLOT_NAME,
                                  title=f"{settings['dataset']}: mAP against inference speed")
    if plot is not None:
        paths["plot"] = plot
    paths["md"] = write_markdown(rows, out_dir / "results.md",
                                 title=f"Model benchmark on {settings['dataset']}",
                                 environment=environment, settings=settings,
                                 plot_name=PLOT_NAME if plot is not None else None)
    return paths


def run_benchmark(options: BenchmarkOptions,
                  runner: Callable[[Job], int] | None = None) -> list[dict[str, Any]]:
    """Benchmark every model of ``options``; write the reports; return the table rows.

    ``runner`` runs one job and returns its exit code (default: a spawned child process, or
    in-process when ``options.isolate`` is False).
    """
    if options.timing_repeats < 1 or options.timing_warmup < 0:
        raise ValueError(f"--timing-repeats must be >= 1 and --timing-warmup >= 0, got "
                         f"{options.timing_repeats} and {options.timing_warmup}")
    check_names(options)
    jobs = build_jobs(options)
    runner = runner or (run_in_child if options.isolate else run_in_process)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    environment = collect_environment(device, options.cpu_threads)
    settings = run_settings(options, jobs)

    rows = []
    bar = tqdm(jobs, desc="models", unit="model", dynamic_ncols=True, file=sys.stderr)
    for job in bar:
        bar.set_postfix_str(job.spec.label)
        if options.resume and job.result_path.is_file():
            row = load_result_row(job)
            tqdm.write(f"{job.spec.label}: result exists, skipped (--resume)", file=sys.stderr)
        else:
            job.result_path.unlink(missing_ok=True)
            job.status_path.unlink(missing_ok=True)
            row = collect_row(job, runner(job))
        rows.append(row)
        tqdm.write(summary_line(row), file=sys.stderr)
    write_reports(rows, options.out_dir, environment, settings)
    return rows


def summary_line(row: dict[str, Any]) -> str:
    """One progress line per model: its accuracy and speed, or why it has none."""
    if row["status"] != "ok":
        return f"{row['model']}: {row['status']}: {row['note']}"
    parts = [f"{row['model']}:"]
    for key, text, fmt in (("rank1", "R1", "{:.1%}"), ("mAP", "mAP", "{:.1%}"),
                           ("infer_img_s_b32", "img/s (b32)", "{:.1f}")):
        value = row.get(key)
        parts.append(f"{text} {fmt.format(value) if is_number(value) else 'n/a'}")
    return " ".join(parts)


def command_line(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
