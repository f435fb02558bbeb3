"""One model's benchmark, run in its own (spawned) child process.

The child trains the model through the reid_ext engine (or loads its weights), evaluates it,
measures cost and speed (see :mod:`reid_ext.benchmarking.measure`) and writes
``<out>/<model>/result.json`` atomically. A model that cannot run (a missing aux-map cache)
or that fails writes ``status.json`` instead, so ``--resume`` retries it next time.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from reid_ext.benchmarking import measure
from reid_ext.benchmarking.report import atomic_write_json, empty_row
from reid_ext.benchmarking.specs import Job, ModelSpec
from reid_ext.checkpoint import load_matching_weights
from reid_ext.config import host_loss_mode, load_config, loss_terms_from_config
from reid_ext.models.factory import build_model
from reid_ext.registry import MODELS
from reid_ext.runner import (
    aux_keys_for,
    build_datamanager,
    build_engine,
    engine_run_kwargs,
    seed_everything,
)

EXTRACTION_TOOLS = {"mask": "tools/extract_masks.py", "keypoints": "tools/extract_keypoints.py"}


class ModelSkippedError(Exception):
    """The model cannot be benchmarked on this data; the message says why and what to run."""


# --- output redirection -------------------------------------------------------------------
@contextlib.contextmanager
def output_to(path: Path, redirect_fds: bool) -> Iterator[None]:
    """Send this model's training log to ``path``; ``redirect_fds`` also catches C-level output.

    File descriptors are only redirected in a child process: doing it in-process would hijack
    the caller's terminal.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    with open(path, "a", buffering=1, encoding="utf-8") as log:
        if redirect_fds:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield


# --- config and model ---------------------------------------------------------------------
def origin_of(name: str) -> str:
    """'reid_ext' for models of reid_ext's registry, 'torchreid' for the host's own."""
    return "reid_ext" if name in MODELS else "torchreid"


def declared_input_size(model: torch.nn.Module) -> tuple[int, int] | None:
    """A fixed input size the model declares (``input_size = (H, W)``), if any."""
    size = getattr(getattr(model, "module", model), "input_size", None)
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return int(size[0]), int(size[1])
    return None


def resolve_config(job: Job) -> Any:
    """The job's config, with the input size settled.

    Precedence: ``name@HxW`` (then passed to the model as ``height``/``width`` kwargs too, if
    the model declares a fixed ``input_size``), else the model's own ``input_size``, else
    ``data.height``/``data.width``.
    """
    cfg = load_config(job.config_file, job.opts)
    probe = build_model(cfg.model.name, num_classes=2,
                        loss=host_loss_mode(loss_terms_from_config(cfg)), pretrained=False,
                        **dict(cfg.model.kwargs))
    own = declared_input_size(probe)
    del probe
    extra: list[str] = []
    if job.spec.size is not None:
        height, width = job.spec.size
        if own is not None and own != job.spec.size:
            extra += ["model.kwargs.height", str(height), "model.kwargs.width", str(width)]
    elif own is not None:
        height, width = own
    else:
        return cfg
    extra += ["data.height", str(height), "data.width", str(width)]
    return load_config(job.config_file, [*job.opts, *extra])


def missing_aux_caches(cfg: Any, datamanager: Any, keys: tuple[str, ...], dataset: str
                       ) -> list[str]:
    """Reasons, one per aux-map kind the model needs but no cache directory provides."""
    kinds = []
    if "mask" in keys:
        kinds.append("mask")
    if "keypoints" in keys or "parts" in keys:
        kinds.append("keypoints")
    own_dirs = getattr(datamanager.train_loader.dataset, "aux_dirs", None) or {}
    reasons = []
    for kind in kinds:
        configured = getattr(cfg.aux, kind)
        folder = own_dirs.get(kind) if configured in ("", "auto") else configured
        if folder and Path(folder).is_dir():
            continue
        where = f"'{folder}'" if folder else "none configured and the dataset has no own maps"
        reasons.append(
            f"needs {kind} maps but the {kind} cache is missing ({where}); run "
            f"`python {EXTRACTION_TOOLS[kind]} --source <source> --dataset {dataset} --root "
            f"{cfg.data.root} --out <cache dir>` (sources: `--help`; docs/aux_maps.md), then "
            f"set aux.{kind} to that cache dir"
        )
    return reasons


def find_weights(weights_dir: Path, spec: ModelSpec) -> Path:
    """A checkpoint for ``spec`` under ``weights_dir`` (a previous benchmark's output folder).

    Looked for, in order: ``<dir>/<model>/model/model-best.pth.tar``, the highest-epoch
    ``<dir>/<model>/model/model.pth.tar-<N>``, ``<dir>/<model>.pth.tar``, ``<dir>/<model>.pth``.
    """
    model_dir = weights_dir / spec.dir_name / "model"
    best = model_dir / "model-best.pth.tar"
    if best.is_file():
        return best
    epochs = sorted(model_dir.glob("model.pth.tar-*"),
                    key=lambda p: int(p.name.rsplit("-", 1)[1])
                    if p.name.rsplit("-", 1)[1].isdigit() else -1)
    if epochs:
        return epochs[-1]
    for name in (f"{spec.dir_name}.pth.tar", f"{spec.dir_name}.pth"):
        if (weights_dir / name).is_file():
            return weights_dir / name
    raise ModelSkippedError(
        f"no checkpoint for '{spec.label}' in --weights-dir '{weights_dir}' (looked for "
        f"{model_dir}/model-best.pth.tar, {model_dir}/model.pth.tar-N, "
        f"{weights_dir}/{spec.dir_name}.pth[.tar])"
    )


def load_weights(model: torch.nn.Module, path: Path) -> str:
    """Load the tensors of ``path`` that fit ``model``; return a note for the results table."""
    report = load_matching_weights(model, path, verbose=False)
    return f"weights: {path} ({len(report.loaded)}/{len(model.state_dict())} tensors)"


# --- measurements -------------------------------------------------------------------------
def sample_batch(engine: Any, dataset: str) -> dict[str, torch.Tensor]:
    """The first query batch (image and the aux maps the model takes), for timing."""
    data = next(iter(engine.test_loader[dataset]["query"]))
    batch = {"img": data["img"]}
    batch.update({k: data[k] for k in engine.aux_keys})
    return batch


def measure_model(engine: Any, batch: dict[str, torch.Tensor], job: Job) -> dict[str, float]:
    """Parameters, FLOPs per image and inference img/s at each timing batch size."""
    model = engine.model
    model.eval()
    device = engine.device

    def forward_fn(size: int):
        tiled = {k: v.to(device) for k, v in measure.tile_batch(batch, size).items()}
        img = tiled.pop("img")
        return lambda: engine.extract_features(img, **tiled)

    out = {"params": measure.count_parameters(model),
           "flops": measure.count_flops(forward_fn(1))}
    for size in job.timing_batch_sizes:
        seconds = measure.median_seconds(forward_fn(size), job.timing_warmup,
                                         job.timing_repeats, device)
        out[f"infer_seconds_b{size}"] = seconds
        out[f"infer_img_s_b{size}"] = measure.images_per_second(size, seconds)
    return out


def rank_metrics(result: dict[str, Any]) -> dict[str, float | None]:
    """R1, R5, mAP and mINP from ``engine.last_results`` (mINP may be absent: None)."""
    cmc = list(result.get("cmc", []))
    rank5 = result.get("ranks", {}).get(5, cmc[4] if len(cmc) > 4 else None)
    minp = result.get("mINP")
    return {"rank1": float(result["rank1"]), "rank5": None if rank5 is None else float(rank5),
            "mAP": float(result["mAP"]), "mINP": None if minp is None else float(minp)}


# --- the job ------------------------------------------------------------------------------
def run_job(job: Job) -> dict[str, Any]:
    """Train (or load), evaluate and measure one model; write and return its result.

    Raises :class:`ModelSkippedError` when the model cannot run on this data.
    """
    start = time.perf_counter()
    if job.cpu_threads:
        torch.set_num_threads(job.cpu_threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    measure.reset_peak_memory(device)
    weights = find_weights(job.weights, job.spec) if job.weights else None

    cfg = resolve_config(job)
    job.out_dir.mkdir(parents=True, exist_ok=True)
    (job.out_dir / "config.yaml").write_text(cfg.dump())
    seed_everything(cfg)
    datamanager = build_datamanager(cfg)
    model = build_model(cfg.model.name, num_classes=datamanager.num_train_pids,
                        loss=host_loss_mode(loss_terms_from_config(cfg)),
                        pretrained=cfg.model.pretrained, **dict(cfg.model.kwargs))
    reasons = missing_aux_caches(cfg, datamanager, aux_keys_for(cfg, model), job.dataset)
    if reasons:
        raise ModelSkippedError("; ".join(reasons))
    note = load_weights(model, weights) if weights else ""
    engine = build_engine(cfg, datamanager=datamanager, model=model)
    meter = measure.attach_training_meter(engine, device)
    run_kwargs = engine_run_kwargs(cfg)
    run_kwargs["test_only"] = weights is not None
    run_start = time.perf_counter()
    engine.run(**run_kwargs)
    wall = time.perf_counter() - run_start

    target = list(cfg.data.targets)[0]
    if target not in engine.last_results:
        raise RuntimeError(f"the engine reported no evaluation for '{target}'")
    metrics = rank_metrics(engine.last_results[target])
    costs = measure_model(engine, sample_batch(engine, target), job)

    row = empty_row(job.spec.label, origin_of(cfg.model.name))
    row.update(metrics)
    row.update(
        input_size=f"{cfg.data.height}x{cfg.data.width}",
        params_M=costs["params"] / 1e6, gflops=costs["flops"] / 1e9,
        train_img_s=None if weights else meter.images_per_second,
        infer_img_s_b32=costs.get("infer_img_s_b32"), infer_img_s_b1=costs.get("infer_img_s_b1"),
        peak_mem_mib=measure.peak_memory_mib(device), wall_s=wall, note=note,
    )
    result = {
        "row": row,
        "details": {
            "dataset": job.dataset, "model": cfg.model.name, "epochs": cfg.train.max_epoch,
            "seed": cfg.train.seed, "batch_size": cfg.train.batch_size,
            "num_train_pids": datamanager.num_train_pids,
            "train_images": meter.images, "train_seconds": meter.seconds,
            "flops_per_image": costs["flops"], "parameters": costs["params"],
            "infer_seconds": {k: v for k, v in costs.items() if k.startswith("infer_seconds")},
            "cmc_top20": [float(x) for x in list(engine.last_results[target]["cmc"])[:20]],
            "weights": str(weights) if weights else None, "amp": bool(cfg.train.amp),
            "device": str(device), "torch_threads": torch.get_num_threads(),
            "child_seconds": time.perf_counter() - start,
        },
    }
    atomic_write_json(job.result_path, result)
    return result


def run_job_logged(job: Job, redirect_fds: bool = False) -> int:
    """:func:`run_job` with its output in ``log.txt``; skips and failures go to status.json.

    Returns a process exit code: 0 done, 3 skipped, 1 failed.
    """
    job.out_dir.mkdir(parents=True, exist_ok=True)
    with output_to(job.log_path, redirect_fds):
        try:
            run_job(job)
            return 0
        except ModelSkippedError as err:
            atomic_write_json(job.status_path, {"status": "skipped", "reason": str(err)})
            print(f"skipped: {err}")
            return 3
        except Exception as err:  # recorded for the table; the other models go on
            traceback.print_exc()
            atomic_write_json(job.status_path, {
                "status": "failed", "reason": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc(limit=8)})
            return 1


def child_main(job: Job) -> None:
    """Entry point of the spawned child process."""
    sys.exit(run_job_logged(job, redirect_fds=True))
