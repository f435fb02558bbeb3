"""The pseudo-label refinement loop: source model, then N steps of
extract -> camera-normalise -> sparse Jaccard distance -> DBSCAN -> fine-tune.

Every step ends by evaluating the new model on the target test split and writing its weights
and then ``<save_dir>/uda_state.pth`` atomically (``reid_ext.checkpoint.save_atomic``); a run
killed at any point restarts from the last finished step (a step is re-seeded with
``train.seed + step``, so a resumed step does what the killed one would have done, up to
non-deterministic kernels). Each step is logged to stdout and TensorBoard (``<save_dir>/tb``):
clusters, outlier fraction, eps, NMI/ARI of the pseudo-labels against the target's own labels
(when the target has them), target mAP/R1 with raw and with camera-normalised features, and the
epoch-mean of every loss term, with a warning when a margin loss sits at its margin or the ID
loss at ``ln C`` (the collapse seen training triplet + CE + center from scratch on real data).
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from torch.utils.data import DataLoader, Dataset
from yacs.config import CfgNode

from reid_ext import host
from reid_ext.checkpoint import is_head_tensor, load_checkpoint, save_atomic
from reid_ext.config import host_loss_mode, loss_terms_from_config
from reid_ext.data.options import set_dataset_options
from reid_ext.engine import ReidEngine
from reid_ext.evaluation import evaluate, pairwise_distance_squared
from reid_ext.models.factory import build_model
from reid_ext.runner import (
    apply_dataset_options,
    build_datamanager,
    imagedata_kwargs,
    lr_scheduler_kwargs,
    optimizer_kwargs,
)
from reid_ext.uda.camera_norm import CameraStats, fit_camera_stats
from reid_ext.uda.cluster import OUTLIER_MODES, cluster_dbscan, sparse_jaccard_distance
from reid_ext.uda.pseudo_dataset import PSEUDO_DATASET, write_pseudo_labels

STATE_FILE = "uda_state.pth"
MARGIN_TOLERANCE = 0.02  # relative distance to the margin / ln C counted as "sitting at it"


# --- training with per-epoch loss means ------------------------------------------------------
class UdaEngine(ReidEngine):
    """:class:`ReidEngine` that keeps the mean of every logged value over the current epoch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sums: dict[str, float] = {}
        self._count = 0

    def forward_backward(self, data: Mapping[str, Any]) -> dict[str, float]:
        summary = super().forward_backward(data)
        for key, value in summary.items():
            self._sums[key] = self._sums.get(key, 0.0) + float(value)
        self._count += 1
        return summary

    def pop_epoch_means(self) -> dict[str, float]:
        means = {k: v / max(1, self._count) for k, v in self._sums.items()}
        self._sums, self._count = {}, 0
        return means


def train_epochs(engine: UdaEngine, epochs: int, print_freq: int, warmup: int = 0
                 ) -> dict[str, float]:
    """``epochs`` epochs of the host loop; returns the last epoch's mean loss terms.

    ``warmup`` > 0 ramps the learning rate linearly over the first ``warmup`` epochs
    (``lr * (e + 1) / warmup``) before the host's step schedule takes over; the schedule's
    milestones should come after the warm-up.
    """
    engine.max_epoch = epochs
    means: dict[str, float] = {}
    base = [g.get("initial_lr", g["lr"]) for g in engine.optimizer.param_groups]
    for engine.epoch in range(epochs):
        if engine.epoch <= warmup and warmup > 0:
            factor = min(1.0, (engine.epoch + 1) / warmup)
            for group, lr in zip(engine.optimizer.param_groups, base):
                group["lr"] = lr * factor
        engine.train(print_freq=print_freq)
        means = engine.pop_epoch_means()
        print(f"  epoch {engine.epoch + 1}/{epochs}: "
              + ", ".join(f"{k} {v:.4f}" for k, v in means.items()))
    return means


def margin_warnings(means: Mapping[str, float], terms: Sequence[Mapping[str, Any]],
                    num_classes: int) -> list[str]:
    """Loss terms whose epoch mean sits at their margin (or the ID loss at ``ln C``).

    A margin-based triplet loss equal to its margin means anchor-positive and anchor-negative
    distances are equal on average: typically every embedding on one point.
    """
    found, seen = [], {}
    for term in terms:
        seen[term["name"]] = seen.get(term["name"], 0) + 1
        key = term["name"] if seen[term["name"]] == 1 else f"{term['name']}_{seen[term['name']]}"
        if key not in means:
            continue
        value, kwargs = means[key], dict(term.get("kwargs") or {})
        margin = kwargs.get("margin")
        if margin is None and term["name"].startswith("triplet") \
                and term["name"] != "triplet_soft_hard":
            margin = 0.3
        if margin and abs(value - margin) <= MARGIN_TOLERANCE * margin:
            found.append(f"loss term '{key}' = {value:.4f} sits at its margin {margin} "
                         f"(embeddings collapsed?)")
        if term["name"] in ("softmax", "cosine_softmax_ce") and num_classes > 1:
            chance = math.log(num_classes)
            if value >= (1 - MARGIN_TOLERANCE) * chance:
                found.append(f"loss term '{key}' = {value:.4f} is at ln C = {chance:.4f} "
                             f"(chance level: the classifier learns nothing)")
    for message in found:
        warnings.warn(message, stacklevel=2)
    return found


# --- data ------------------------------------------------------------------------------------
class _ImageList(Dataset):
    def __init__(self, items: Sequence[Sequence[Any]], transform: Any) -> None:
        self.items, self.transform = list(items), transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(Image.open(self.items[index][0]).convert("RGB"))


def target_splits(cfg: CfgNode) -> dict[str, list[tuple[str, int, int]]]:
    """The target dataset's ``train``/``query``/``gallery`` items ``(path, pid, camid)``."""
    if not cfg.uda.target:
        raise ValueError("uda.target is empty: name the target dataset (e.g. dukemtmcreid)")
    apply_dataset_options(cfg)
    datasets = host.module("data.datasets")
    dataset = datasets.init_image_dataset(cfg.uda.target, root=cfg.data.root, mode="train",
                                          transform=None, verbose=False,
                                          split_id=cfg.data.split_id,
                                          cuhk03_labeled=cfg.cuhk03.labeled_images,
                                          cuhk03_classic_split=cfg.cuhk03.classic_split,
                                          market1501_500k=cfg.market1501.use_500k_distractors)
    return {name: [(str(i[0]), int(i[1]), int(i[2])) for i in getattr(dataset, name)]
            for name in ("train", "query", "gallery")}


@torch.no_grad()
def extract(model: torch.nn.Module, items: Sequence[Sequence[Any]], cfg: CfgNode) -> torch.Tensor:
    """Eval-mode embeddings ``[N, D]`` of ``items`` with the config's test transform."""
    _, test_tf = host.module("data.transforms").build_transforms(
        cfg.data.height, cfg.data.width, transforms=None, norm_mean=list(cfg.data.norm_mean),
        norm_std=list(cfg.data.norm_std))
    loader = DataLoader(_ImageList(items, test_tf), batch_size=cfg.test.batch_size,
                        shuffle=False, num_workers=cfg.data.workers)
    device = next(model.parameters()).device
    model.eval()
    return torch.cat([model(batch.to(device)).float().cpu() for batch in loader])


# --- model -----------------------------------------------------------------------------------
def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_uda_model(cfg: CfgNode, num_classes: int, weights: str | Path | None = None
                    ) -> torch.nn.Module:
    """``model.name`` for ``num_classes`` ids, every weight but the classifier from ``weights``."""
    terms = loss_terms_from_config(cfg)
    model = build_model(cfg.model.name, num_classes=num_classes, loss=host_loss_mode(terms),
                        pretrained=cfg.model.pretrained, **dict(cfg.model.kwargs))
    if weights:
        state = load_checkpoint(weights)
        state = state.get("state_dict", state)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        # the classifier is re-initialised: the pseudo-identities change every step
        keep = {k: v for k, v in state.items() if not is_head_tensor(k)}
        missing, unexpected = model.load_state_dict(keep, strict=False)
        wrong = [k for k in missing if not is_head_tensor(k)]
        if wrong or unexpected:
            raise ValueError(f"weights '{weights}' do not fit model '{cfg.model.name}': "
                             f"missing {wrong[:5]}, unexpected {unexpected[:5]}")
    return model.to(_device())


def _engine(cfg: CfgNode, datamanager: Any, model: torch.nn.Module, lr: float | None,
            terms: list[dict[str, Any]]) -> UdaEngine:
    opt_kwargs = optimizer_kwargs(cfg)
    if lr is not None:
        opt_kwargs["lr"] = lr
    optimizer = host.optim.build_optimizer(model, **opt_kwargs)
    scheduler = None if lr is not None else host.optim.build_lr_scheduler(
        optimizer, **lr_scheduler_kwargs(cfg))
    return UdaEngine(datamanager, model, optimizer, scheduler, loss_terms=terms,
                     use_gpu=torch.cuda.is_available(), amp=cfg.train.amp, config=cfg)


# --- one step's pieces -----------------------------------------------------------------------
def evaluate_target(model: torch.nn.Module, splits: Mapping[str, Sequence[Any]], cfg: CfgNode
                    ) -> tuple[dict[str, float], torch.Tensor, CameraStats]:
    """Target mAP/R1 (raw and camera-normalised); also returns the target train features and
    the camera statistics fitted on them (stored with the model for inference)."""
    train = extract(model, splits["train"], cfg)
    stats = fit_camera_stats(train, [i[2] for i in splits["train"]])
    query = extract(model, splits["query"], cfg)
    gallery = extract(model, splits["gallery"], cfg)
    q_pids = np.array([i[1] for i in splits["query"]])
    g_pids = np.array([i[1] for i in splits["gallery"]])
    q_cams = np.array([i[2] for i in splits["query"]])
    g_cams = np.array([i[2] for i in splits["gallery"]])
    metrics = {}
    for suffix, (qf, gf) in {"": (query, gallery),
                             "_camnorm": (stats.normalize(query, q_cams),
                                          stats.normalize(gallery, g_cams))}.items():
        dist = pairwise_distance_squared(qf, gf, cfg.test.dist_metric).numpy()
        result = evaluate(dist, q_pids, g_pids, q_cams, g_cams)
        metrics[f"mAP{suffix}"] = float(result.mAP)
        metrics[f"rank1{suffix}"] = float(result.cmc[0])
    return metrics, train, stats


def pseudo_labels(features: torch.Tensor, camids: Sequence[int], cfg: CfgNode
                  ) -> tuple[np.ndarray, dict[str, float]]:
    """Cluster target features into pseudo-labels; returns the labels and clustering stats."""
    if cfg.uda.outliers not in OUTLIER_MODES:
        raise ValueError(f"uda.outliers must be one of {OUTLIER_MODES}, got {cfg.uda.outliers!r}")
    feats = fit_camera_stats(features, camids).normalize(features, camids) \
        if cfg.uda.camera_norm else features
    start = time.perf_counter()
    dist = sparse_jaccard_distance(feats, cfg.uda.k1, cfg.uda.k2, cfg.uda.num_neighbors,
                                   metric=cfg.test.dist_metric)
    quantile = cfg.uda.eps_quantile if cfg.uda.eps_quantile > 0 else None
    result = cluster_dbscan(dist, eps=None if quantile else cfg.uda.eps, eps_quantile=quantile,
                            min_samples=cfg.uda.min_samples, outliers=cfg.uda.outliers)
    return result.labels, {"clusters": result.num_clusters,
                           "outlier_fraction": result.outlier_fraction, "eps": result.eps,
                           "cluster_time_s": time.perf_counter() - start}


def label_agreement(labels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """NMI and ARI of the pseudo-labels against the true ids (outliers as one extra group)."""
    return {"nmi": float(normalized_mutual_info_score(truth, labels)),
            "ari": float(adjusted_rand_score(truth, labels))}


# --- the loop --------------------------------------------------------------------------------
def _step_cfg(cfg: CfgNode, labels_file: Path) -> CfgNode:
    step = cfg.clone()
    step.defrost()
    step.data.sources = [PSEUDO_DATASET]
    step.data.targets = [PSEUDO_DATASET]
    step.data.options[PSEUDO_DATASET] = CfgNode({"labels_file": str(labels_file)})
    step.freeze()
    return step


def _check_enough_ids(cfg: CfgNode, labels: np.ndarray, step: int) -> None:
    """A P x K sampler needs at least P pseudo-identities; say which knobs to turn if not."""
    num_ids = len(np.unique(labels[labels >= 0]))
    needed = cfg.train.batch_size // cfg.sampler.num_instances \
        if cfg.sampler.train_sampler in ("pk", "pk_camera", "RandomIdentitySampler") else 1
    if num_ids < max(needed, 2):
        raise ValueError(
            f"uda step {step}: DBSCAN gave {num_ids} pseudo-identities, fewer than the "
            f"{max(needed, 2)} a batch needs (train.batch_size {cfg.train.batch_size} // "
            f"sampler.num_instances {cfg.sampler.num_instances}); the features do not separate "
            f"at uda.eps={cfg.uda.eps} / uda.min_samples={cfg.uda.min_samples}: train the source "
            f"model longer, change eps (or uda.eps_quantile), or lower the batch size")


def _log(writer: Any, step: int, row: Mapping[str, Any]) -> None:
    print(f"[uda] step {step}: " + ", ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
        for k, v in row.items() if k != "step"))
    if writer is not None:
        for key, value in row.items():
            if isinstance(value, (int, float)):
                writer.add_scalar(f"uda/{key}", value, step)
        writer.flush()


def _summary_writer(save_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: stdout only
        print("[uda] tensorboard is not installed; logging to stdout only")
        return None
    return SummaryWriter(log_dir=str(save_dir / "tb"))


def _save_step(save_dir: Path, step: int, model: torch.nn.Module, stats: CameraStats,
               history: list[dict[str, Any]]) -> None:
    weights = save_dir / f"step{step}" / "model.pth"
    save_atomic({"state_dict": model.state_dict(), "camera_stats": stats.state_dict(),
                 "step": step}, weights)
    save_atomic({"step": step, "weights": str(weights), "history": history},
                save_dir / STATE_FILE)


def source_model(cfg: CfgNode) -> tuple[torch.nn.Module, dict[str, float]]:
    """The step-0 model: ``uda.source_checkpoint`` or ``train.max_epoch`` epochs on the source."""
    if cfg.uda.source_checkpoint:
        return build_uda_model(cfg, 1, cfg.uda.source_checkpoint), {}
    host.utils.set_random_seed(cfg.train.seed)
    datamanager = build_datamanager(cfg)
    model = build_uda_model(cfg, datamanager.num_train_pids)
    terms = loss_terms_from_config(cfg)
    engine = _engine(cfg, datamanager, model, None, terms)
    print(f"[uda] source training: {cfg.data.sources}, {cfg.train.max_epoch} epochs")
    means = train_epochs(engine, cfg.train.max_epoch, cfg.train.print_freq,
                         warmup=cfg.uda.warmup_epochs)
    margin_warnings(means, terms, datamanager.num_train_pids)
    return model, {f"loss/{k}": v for k, v in means.items()}


def run_uda(cfg: CfgNode, stop_after: int | None = None) -> list[dict[str, Any]]:
    """Run (or resume) the loop under ``data.save_dir``; returns one log row per step.

    ``stop_after`` ends the run after that step (tests use it to simulate a kill).
    """
    save_dir = Path(cfg.data.save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    splits = target_splits(cfg)
    truth = np.array([i[1] for i in splits["train"]])
    camids = [i[2] for i in splits["train"]]
    writer = _summary_writer(save_dir)
    state_path = save_dir / STATE_FILE
    features = None
    if state_path.is_file():
        state = load_checkpoint(state_path)
        step, history, weights = int(state["step"]), list(state["history"]), state["weights"]
        print(f"[uda] resuming after step {step} from '{state_path}'")
    else:
        start = time.perf_counter()
        model, losses = source_model(cfg)
        metrics, features, stats = evaluate_target(model, splits, cfg)
        row = {"step": 0, **metrics, **losses, "time_s": time.perf_counter() - start}
        history = [row]
        _log(writer, 0, row)
        _save_step(save_dir, 0, model, stats, history)
        step, weights = 0, str(save_dir / "step0" / "model.pth")
    lr = cfg.uda.lr if cfg.uda.lr > 0 else cfg.train.lr
    terms = loss_terms_from_config(cfg)
    while step < cfg.uda.steps and (stop_after is None or step < stop_after):
        step += 1
        start = time.perf_counter()
        host.utils.set_random_seed(cfg.train.seed + step)
        if features is None:  # resumed: features of the last saved model
            features = extract(build_uda_model(cfg, 1, weights), splits["train"], cfg)
        labels, row = pseudo_labels(features, camids, cfg)
        row = {"step": step, **row}
        if (truth >= 0).all() and len(np.unique(truth)) > 1:
            row.update(label_agreement(labels, truth))
        labels_file = write_pseudo_labels(save_dir / f"step{step}" / "pseudo_labels.json",
                                          splits["train"], labels, splits["query"],
                                          splits["gallery"], info=dict(row))
        _check_enough_ids(cfg, labels, step)
        step_cfg = _step_cfg(cfg, labels_file)
        set_dataset_options(PSEUDO_DATASET, labels_file=str(labels_file))
        datamanager = host.ImageDataManager(**imagedata_kwargs(step_cfg))
        model = build_uda_model(step_cfg, datamanager.num_train_pids, weights)
        engine = _engine(step_cfg, datamanager, model, lr, terms)
        print(f"[uda] step {step}: fine-tuning on {datamanager.num_train_pids} pseudo-ids "
              f"({int((labels >= 0).sum())} images), {cfg.uda.epochs_per_step} epochs")
        means = train_epochs(engine, cfg.uda.epochs_per_step, cfg.train.print_freq)
        row.update({f"loss/{k}": v for k, v in means.items()})
        row["margin_warnings"] = len(margin_warnings(means, terms, datamanager.num_train_pids))
        metrics, features, stats = evaluate_target(model, splits, cfg)
        row.update(metrics)
        row["time_s"] = time.perf_counter() - start
        history.append(row)
        _log(writer, step, row)
        _save_step(save_dir, step, model, stats, history)
        weights = str(save_dir / f"step{step}" / "model.pth")
    if writer is not None:
        writer.close()
    return history
