"""One engine for every model: loss terms from config, auxiliary inputs, fast evaluation.

:class:`ReidEngine` subclasses torchreid's ``Engine`` and keeps its ``run/train/test`` loop.
It adds what the host lacks: named model outputs, weighted loss terms from the LOSSES registry
(each logged), aux maps passed to models that declare them, AMP, atomic checkpoints with RNG
state for exact resume, and evaluation that survives galleries smaller than the largest rank.
"""
from __future__ import annotations

import contextlib
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from reid_ext import host
from reid_ext.checkpoint import (
    apply_lr_override,
    capture_rng_state,
    check_optimizer_matches,
    checkpoint_config_value,
    is_bare_state_dict,
    load_checkpoint,
    load_matching_weights,
    restore_rng_state,
    save_atomic,
)
from reid_ext.collapse import detector_from_config, metric_features
from reid_ext.distributed import gather_batches, is_main, shard_loader
from reid_ext.divergence import EXPLODE_FACTOR, DivergenceError, DivergenceGuard, all_finite
from reid_ext.evaluation.local_distance import global_local_distance
from reid_ext.evaluation.rank import pool_multi_query
from reid_ext.evaluation.report import rank_and_report
from reid_ext.evaluation.visrank import visualize_ranked_results
from reid_ext.losses.terms import PID_TARGET, LossTerm, build_loss_terms, check_targets
from reid_ext.models.factory import model_aux_inputs
from reid_ext.uda.camera_norm import CameraStats


def named_outputs(outputs: Any) -> dict[str, Any]:
    """Map any model's training output to the named-dict form.

    reid_ext models already return a dict. Stock torchreid models return ``logits`` (or a list
    of part logits) for loss='softmax' and a ``(logits, feats)`` tuple for loss='triplet'.
    """
    if isinstance(outputs, Mapping):
        return dict(outputs)
    if isinstance(outputs, tuple) and len(outputs) == 2:
        return {"logits": outputs[0], "feats": outputs[1]}
    if isinstance(outputs, (torch.Tensor, list)):
        return {"logits": outputs}
    raise TypeError(f"cannot interpret model output of type {type(outputs).__name__}; return a "
                    f"dict of named outputs")


class ReidEngine(host.get_host().Engine):
    """torchreid Engine with config-built loss terms, aux inputs and fast evaluation.

    Args:
        datamanager: a torchreid ``ImageDataManager`` (possibly with aux-map loaders).
        model: any torchreid or reid_ext model, or a ``{name: model}`` mapping of several
            (mutual learning); one model is the one-entry case, named ``model``.
        optimizer, scheduler: as for the host's engines (``scheduler`` may be None), or
            mappings with the same names as ``model``.
        loss_terms: ``[{name, weight, output, target, kwargs}]`` specs (built once per model)
            or, for one model, built :class:`LossTerm` s.
        amp: autocast the forward pass (float16 + GradScaler on CUDA, bfloat16 on CPU).
        checkpoint_freq: also save a checkpoint every this many epochs (0: only where the
            host saves, after evaluations and at the end).
        eval_protocol: 'market' or 'cuhk03' ranking protocol.
    """

    def __init__(
        self,
        datamanager: Any,
        model: nn.Module | Mapping[str, nn.Module],
        optimizer: torch.optim.Optimizer | Mapping[str, Any] | None = None,
        scheduler: Any = None,
        loss_terms: Sequence[Mapping[str, Any] | LossTerm] = (),
        use_gpu: bool = True,
        amp: bool = False,
        checkpoint_freq: int = 0,
        eval_protocol: str = "market",
        config: Any = None,
    ) -> None:
        super().__init__(datamanager, use_gpu=use_gpu)
        self.device = torch.device("cuda" if self.use_gpu else "cpu")
        models = dict(model) if isinstance(model, Mapping) else {"model": model}
        optimizers = _per_model(optimizer, models, "optimizer")
        schedulers = _per_model(scheduler, models, "scheduler")
        specs = list(loss_terms)
        if any(isinstance(t, LossTerm) for t in specs) and len(models) > 1:
            raise TypeError("with several models pass loss_terms as {name, weight, output, "
                            "target, kwargs} specs; each model gets its own instances")
        self.terms_by_model: dict[str, list[LossTerm]] = {}
        for name, net in models.items():
            self.register_model(name, net.to(self.device), optimizers[name], schedulers[name])
            self.terms_by_model[name] = (
                specs if not specs or isinstance(specs[0], LossTerm)
                else build_loss_terms(specs, datamanager.num_train_pids, self.device))
        first = next(iter(models))
        self.model = self._models[first]
        self.optimizer = self._optims[first]
        self.scheduler = self._scheds[first]
        self.loss_terms: list[LossTerm] = self.terms_by_model[first]
        self.aux_keys = model_aux_inputs(self.model)
        self.amp = amp
        self.scaler = torch.amp.GradScaler("cuda") if amp and self.use_gpu else None
        self.checkpoint_freq = checkpoint_freq
        self.eval_protocol = eval_protocol
        self.config = config
        self.save_dir = "log"
        self.last_results: dict[str, dict[str, Any]] = {}
        self._rng_after_epoch: dict[str, Any] | None = None
        # embedding-collapse watch (train.collapse_* keys; reid_ext/collapse.py)
        self.collapse = detector_from_config(config, self.loss_terms, datamanager.num_train_pids)
        self._targets_checked = False
        self.divergence = DivergenceGuard(
            float(config.train.divergence_factor) if config is not None else EXPLODE_FACTOR)
        # --- Market-1501 multiple query (test.multi_query: "", "mean" or "max") -------------
        self.multi_query = str(getattr(getattr(config, "test", None), "multi_query", "") or "")
        # --- camera-guided normalisation of test features (a UDA step's statistics) --------
        self.camera_stats: CameraStats | None = None  # set by tools/test.py --camera-norm
        # --- AlignedReID local distance (test.local_distance): its weight, 0.0 = off ---------
        test_cfg = getattr(config, "test", None)
        self.local_distance_weight = (
            float(test_cfg.local_distance_weight)
            if test_cfg is not None and test_cfg.get("local_distance", False) else 0.0)

    # --- training ------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.amp:
            return contextlib.nullcontext()
        dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype)

    def aux_inputs(self, data: Mapping[str, Any], model: nn.Module | None = None
                   ) -> dict[str, torch.Tensor]:
        """The batch entries the model declared in ``aux_inputs``, on the model's device."""
        keys = self.aux_keys if model is None else model_aux_inputs(model)
        missing = [k for k in keys if k not in data]
        if missing:
            raise KeyError(
                f"the model needs aux inputs {list(keys)} but the batch lacks {missing}; load "
                f"them with the 'aux' config section (see docs/aux_maps.md)"
            )
        return {k: data[k].to(self.device, non_blocking=True) for k in keys}

    def all_terms(self) -> list[LossTerm]:
        return [t for terms in self.terms_by_model.values() for t in terms]

    def loss_targets(self, data: Mapping[str, Any], pids: torch.Tensor
                     ) -> dict[str, torch.Tensor]:
        """``pid`` plus every batch entry a loss term compares with, on the model's device.

        The first batch is checked before any step: a term whose target the batch lacks fails
        naming the term, the target and the batch keys.
        """
        terms = self.all_terms()
        if not self._targets_checked:
            check_targets(terms, [PID_TARGET, *data.keys()])
            self._targets_checked = True
        targets = {PID_TARGET: pids}
        for key in {t.target for t in terms} - {PID_TARGET}:
            targets[key] = data[key].to(self.device, non_blocking=True)
        return targets

    def epoch_progress(self) -> float:
        """Epochs done, fractional within the current one (for loss-term warm-ups)."""
        batches = getattr(self, "num_batches", 0) or 1
        return self.epoch + getattr(self, "batch_idx", 0) / batches

    def compute_loss_terms(self, outputs: Mapping[str, Any],
                           targets: Mapping[str, torch.Tensor] | torch.Tensor,
                           terms: Sequence[LossTerm] | None = None
                           ) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted sum of the loss terms and each term's (unweighted) value for the log.

        ``targets`` is :meth:`loss_targets`'s mapping (a bare tensor means the pids).
        """
        if isinstance(targets, torch.Tensor):
            targets = {PID_TARGET: targets}
        total = torch.zeros((), device=targets[PID_TARGET].device)
        summary: dict[str, float] = {}
        progress = self.epoch_progress()
        for term in self.loss_terms if terms is None else terms:
            value = term(outputs, targets)
            total = total + term.weight * term.ramp(progress) * value.float()
            summary[term.key] = value.item()
        self.divergence.record_terms(summary)
        return total, summary

    def forward_backward(self, data: Mapping[str, Any]) -> dict[str, float]:
        imgs, pids = self.parse_data_for_train(data)
        imgs, pids = imgs.to(self.device, non_blocking=True), pids.to(self.device)
        targets = self.loss_targets(data, pids)
        with self.autocast():
            outputs = named_outputs(self.model(imgs, **self.aux_inputs(data)))
            total, summary = self.compute_loss_terms(outputs, targets)
        if self.collapse is not None:  # warns, or raises CollapseError before the step
            self.collapse.update(metric_features(outputs, self.loss_terms), summary)
        self.step(total, self.optimizer, self.loss_terms)
        summary["loss"] = total.item()
        logits = outputs.get("logits")
        if isinstance(logits, torch.Tensor):
            summary["acc"] = host.metrics.accuracy(logits.detach().float(), pids)[0].item()
        return summary

    def step(self, total: torch.Tensor,
             optimizers: torch.optim.Optimizer | Sequence[torch.optim.Optimizer],
             terms: Sequence[LossTerm]) -> None:
        """One backward of ``total``, then the models' optimizers and the loss terms' own.

        A term's own parameters (e.g. centres) get their gradient divided by the term weight,
        so their learning rate does not depend on how much the term counts in the total.
        Under AMP every optimizer is unscaled first and skipped on inf/nan gradients.
        """
        if isinstance(optimizers, torch.optim.Optimizer):
            optimizers = [optimizers]
        where = (getattr(self, "epoch", 0), getattr(self, "batch_idx", 0))
        self.divergence.check_loss(total, *where, amp_scaler=self.scaler is not None)
        for term in terms:
            term.ensure_optimizer()
        own = [t for t in terms if t.optimizer is not None]
        everything = [*optimizers, *(t.optimizer for t in own)]
        for opt in everything:
            opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(total).backward()
            for opt in everything:
                self.scaler.unscale_(opt)
        else:
            total.backward()
        for term in own:
            if term.weight > 0:
                for p in term.module.parameters():
                    if p.grad is not None:
                        p.grad.mul_(1.0 / term.weight)
        for opt in everything:
            if self.scaler is not None:
                self.scaler.step(opt)
            else:
                opt.step()
        if self.scaler is not None:
            scale = self.scaler.get_scale()
            self.scaler.update()
            self.divergence.after_scaler_update(scale, self.scaler.get_scale(), *where)
        self.divergence.check_weights(self._models, *where)
        self.step_iteration_schedulers()

    def step_iteration_schedulers(self) -> None:
        """Step the schedulers that decay per iteration (``per_iteration = True``, e.g. poly)."""
        for sched in self._scheds.values():
            if getattr(sched, "per_iteration", False):
                sched.step()

    def update_lr(self, names: Any = None) -> None:
        """The host's per-epoch scheduler step, skipping per-iteration schedulers."""
        for name in self.get_model_names(names):
            sched = self._scheds[name]
            if sched is not None and not getattr(sched, "per_iteration", False):
                sched.step()

    def run(self, save_dir: str = "log", **kwargs: Any) -> None:  # noqa: D102
        self.save_dir = save_dir
        super().run(save_dir=save_dir, **kwargs)
        if self.scaler is not None:
            print(self.divergence.summary())

    def train(self, print_freq: int = 10, fixbase_epoch: int = 0, open_layers: Any = None
              ) -> None:
        """One epoch of the host loop; then snapshot RNG state for an exact resume."""
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)
        super().train(print_freq=print_freq, fixbase_epoch=fixbase_epoch, open_layers=open_layers)
        self._rng_after_epoch = capture_rng_state()
        last = (self.epoch + 1) == self.max_epoch  # saved before the final evaluation too
        if last or (self.checkpoint_freq > 0 and (self.epoch + 1) % self.checkpoint_freq == 0):
            self.save_model(self.epoch, 0.0, self.save_dir)

    # --- checkpoints ---------------------------------------------------------------------
    def checkpoint_state(self, name: str, epoch: int, rank1: float) -> dict[str, Any]:
        sched = self._scheds[name]
        optim = self._optims[name]
        return {
            "state_dict": self._models[name].state_dict(),
            "epoch": epoch + 1,
            "rank1": float(rank1),
            "optimizer": optim.state_dict() if optim is not None else None,
            "optimizer_class": type(optim).__name__ if optim is not None else None,
            "scheduler": sched.state_dict() if sched is not None else None,
            "loss_terms": {t.key: {"module": t.module.state_dict(),
                                   "optimizer": t.optimizer.state_dict() if t.optimizer else None}
                           for t in self.terms_of(name)},
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": self._rng_after_epoch or capture_rng_state(),
            "config": self.config.dump() if hasattr(self.config, "dump") else None,
        }

    def terms_of(self, name: str) -> list[LossTerm]:
        """The loss terms that belong to model ``name``."""
        return self.terms_by_model[name]

    def save_model(self, epoch: int, rank1: float, save_dir: str, is_best: bool = False) -> None:
        """Atomic checkpoint per model: ``<save_dir>/<name>/model.pth.tar-<epoch>``."""
        if not is_main():  # under torchrun only rank 0 writes
            return
        for name in self.get_model_names():
            if not all_finite(self._models[name].state_dict().values()):
                raise DivergenceError(f"model '{name}' holds non-finite weights at epoch "
                                      f"{epoch + 1}; not overwriting the last good checkpoint")
            path = Path(save_dir) / name / f"model.pth.tar-{epoch + 1}"
            save_atomic(self.checkpoint_state(name, epoch, rank1), path)
            print(f'Checkpoint saved to "{path}"')
            if is_best:
                best = path.with_name("model-best.pth.tar")
                tmp = best.with_name(best.name + ".tmp")
                shutil.copyfile(path, tmp)
                tmp.replace(best)

    def resume(self, path: str | Path, name: str = "model") -> int:
        """Restore model, optimizer, scheduler, loss terms and RNG; return the next epoch."""
        state = load_checkpoint(path, map_location=self.device)
        if is_bare_state_dict(state):
            load_matching_weights(self._models[name], path, strict=True)
            print(f'Notice: "{path}" is a bare state dict (weights only): optimizer, scheduler '
                  f"and RNG start fresh at epoch 0")
            return 0
        self._models[name].load_state_dict(state["state_dict"])
        optim, sched = self._optims[name], self._scheds[name]
        if state.get("optimizer") is not None and optim is not None:
            check_optimizer_matches(state["optimizer"], state.get("optimizer_class"), optim, path)
            optim.load_state_dict(state["optimizer"])
        if state.get("scheduler") is not None and sched is not None:
            sched.load_state_dict(state["scheduler"])
        if optim is not None and self.config is not None:
            notice = apply_lr_override(checkpoint_config_value(state, "train.lr"),
                                       float(self.config.train.lr), optim, sched)
            if notice:
                print(notice)
        saved_terms = state.get("loss_terms") or {}
        for term in self.terms_of(name):
            if term.key not in saved_terms:
                continue
            term.module.load_state_dict(saved_terms[term.key]["module"])
            if saved_terms[term.key]["optimizer"] is not None:
                term.ensure_optimizer()
                term.optimizer.load_state_dict(saved_terms[term.key]["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if state.get("rng"):
            restore_rng_state(state["rng"])
        print(f'Resumed from "{path}" (epoch {state["epoch"]})')
        return int(state["epoch"])

    # --- evaluation ----------------------------------------------------------------------
    def embedding_models(self) -> list[tuple[str, nn.Module]]:
        """The (name, model) pairs whose embeddings are evaluated."""
        return list(self._models.items())

    def feature_sets(self, query: dict[str, torch.Tensor], gallery: dict[str, torch.Tensor]
                     ) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """(name, query, gallery) features to rank; the last one is what ``test`` returns."""
        return [(name, query[name], gallery[name]) for name, _ in self.embedding_models()]

    @torch.no_grad()
    def extract_features(self, input: torch.Tensor, model: nn.Module | None = None,
                         **aux: torch.Tensor) -> torch.Tensor:
        """Float32 embeddings of ``input`` by ``model`` (default: the engine's model)."""
        with self.autocast():
            return (self.model if model is None else model)(input, **aux).float()

    @torch.no_grad()
    def extract_loader(self, loader: Any, desc: str = "features"
                       ) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray]:
        """Every embedding model's features of a whole loader (each batch loaded once), with
        a progress bar, plus the pids and camids."""
        models = self.embedding_models()
        batches = []  # under torchrun: this rank's share of the batches, gathered to rank 0
        for data in tqdm(shard_loader(loader), desc=desc, leave=False, dynamic_ncols=True):
            imgs, batch_pids, batch_camids = self.parse_data_for_eval(data)
            imgs = imgs.to(self.device)
            feats = {name: self.extract_features(imgs, model, **self.aux_inputs(data, model)
                                                 ).cpu() for name, model in models}
            batches.append((feats, np.asarray(batch_pids), np.asarray(batch_camids)))
        batches = gather_batches(batches)
        if not batches:  # ranks other than 0
            return {}, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return ({name: torch.cat([b[0][name] for b in batches]) for name, _ in models},
                np.concatenate([b[1] for b in batches]), np.concatenate([b[2] for b in batches]))

    @torch.no_grad()
    def _evaluate(self, dataset_name: str = "", query_loader: Any = None,
                  gallery_loader: Any = None, dist_metric: str = "euclidean",
                  normalize_feature: bool = False, visrank: bool = False,
                  visrank_topk: int = 10, save_dir: str = "", use_metric_cuhk03: bool = False,
                  ranks: Sequence[int] = (1, 5, 10, 20), rerank: bool = False
                  ) -> tuple[float, float]:
        """Rank every feature set; results go to ``last_results[dataset_name]`` (the last set)
        and, with several sets, also to ``last_results[f"{dataset_name}/{name}"]``."""
        qfs, q_pids, q_camids = self.extract_loader(query_loader, f"{dataset_name} query")
        gfs, g_pids, g_camids = self.extract_loader(gallery_loader, f"{dataset_name} gallery")
        if not is_main():  # rank 0 ranks the gathered features
            return 0.0, 0.0
        if self.camera_stats is not None:
            qfs, gfs = self.camera_normalize(qfs, q_camids), self.camera_normalize(gfs, g_camids)
        if self.multi_query:
            qfs, q_pids, q_camids = self.pool_queries(qfs, q_pids, q_camids)
        if normalize_feature:
            qfs = {k: F.normalize(v, dim=1) for k, v in qfs.items()}
            gfs = {k: F.normalize(v, dim=1) for k, v in gfs.items()}
        protocol = "cuhk03" if use_metric_cuhk03 else self.eval_protocol
        local_q = self.extract_local(query_loader, f"{dataset_name} query local")
        local_g = self.extract_local(gallery_loader, f"{dataset_name} gallery local")
        sets = self.feature_sets(qfs, gfs)
        for name, qf, gf in sets:
            print(f"=> {dataset_name}: {name} (query {tuple(qf.shape)}, gallery "
                  f"{tuple(gf.shape)})")
            distmat = None
            if name in local_q:
                distmat = self.global_local_distmat(qf, gf, local_q[name], local_g[name],
                                                    dist_metric, normalize_feature)
            result = rank_and_report(qf, gf, q_pids, g_pids, q_camids, g_camids,
                                     metric=dist_metric, ranks=ranks, rerank=rerank,
                                     protocol=protocol, distmat=distmat)
            distmat = result.pop("distmat")
            if len(sets) > 1:
                self.last_results[f"{dataset_name}/{name}"] = result
        self.last_results[dataset_name] = result
        if visrank:
            visualize_ranked_results(
                distmat, self.datamanager.fetch_test_loaders(dataset_name),
                self.datamanager.data_type, width=self.datamanager.width,
                height=self.datamanager.height,
                save_dir=str(Path(save_dir) / f"visrank_{dataset_name}"), topk=visrank_topk,
            )
        return result["rank1"], result["mAP"]

    def pool_queries(self, feats: dict[str, torch.Tensor], pids: Any, camids: Any
                     ) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray]:
        """Multiple query: one ``self.multi_query``-pooled row per (pid, camera) of the query
        set (e.g. ``market1501_mq``'s gt_bbox boxes), for every feature set alike."""
        pooled = {}
        for name, value in feats.items():
            pooled[name], pooled_pids, pooled_camids = pool_multi_query(
                value, np.asarray(pids), np.asarray(camids), method=self.multi_query)
        print(f"   multiple query ({self.multi_query}): {len(np.asarray(pids))} query images -> "
              f"{len(pooled_pids)} pooled queries")
        return pooled, pooled_pids, pooled_camids

    def camera_normalize(self, feats: dict[str, torch.Tensor], camids: Any
                         ) -> dict[str, torch.Tensor]:
        """Each feature set whose width the statistics were fitted on, normalised per camera
        (``(f - mu_v) / sigma_v``, reid_ext.uda.camera_norm); other sets are left as they are."""
        width = self.camera_stats.mean.shape[1]
        out = {}
        for name, value in feats.items():
            fits = value.shape[1] == width
            out[name] = self.camera_stats.normalize(value, camids) if fits else value
            print(f"   {name}: camera-normalised with the statistics of "
                  f"{len(self.camera_stats.cameras)} cameras" if fits else
                  f"   {name}: not camera-normalised ({value.shape[1]} dims; the statistics "
                  f"have {width})")
        return out

    # --- AlignedReID local distance (test.local_distance; see reid_ext/models/aligned.py) -----
    @torch.no_grad()
    def extract_local(self, loader: Any, desc: str = "local features"
                      ) -> dict[str, torch.Tensor]:
        """Stripe features ``[N, m, c]`` of each embedding model that has ``local_features``.

        Empty when ``test.local_distance`` is off. A second pass over ``loader`` (test loaders
        are not shuffled, so rows line up with :meth:`extract_loader`'s).
        """
        models = [(name, getattr(model, "module", model))
                  for name, model in self.embedding_models()]
        models = [(name, model) for name, model in models if hasattr(model, "local_features")]
        if not self.local_distance_weight or not models:
            if self.local_distance_weight:
                print("test.local_distance: no model has local_features(); global distance only")
            return {}
        feats: dict[str, list[torch.Tensor]] = {name: [] for name, _ in models}
        for data in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True):
            imgs = self.parse_data_for_eval(data)[0].to(self.device)
            for name, model in models:
                with self.autocast():
                    feats[name].append(model.local_features(imgs).float().cpu())
        return {name: torch.cat(f) for name, f in feats.items()}

    def global_local_distmat(self, qf: torch.Tensor, gf: torch.Tensor, lq: torch.Tensor,
                             lg: torch.Tensor, dist_metric: str, normalize_feature: bool
                             ) -> np.ndarray:
        """AlignedReID's test distance: global (euclidean, not squared, or cosine) + weight x
        DP local distance; stripes are L2-normalised too when ``normalize_feature`` is set."""
        if normalize_feature:
            lq, lg = F.normalize(lq, dim=2), F.normalize(lg, dim=2)
        metric = "cosine" if dist_metric == "cosine" else "l2"
        print(f"   ranked by global ({metric}) + {self.local_distance_weight:g} x local (DP) "
              f"distance")
        return global_local_distance(qf, gf, lq, lg, weight=self.local_distance_weight,
                                     metric=metric).numpy()


def _per_model(value: Any, models: Mapping[str, nn.Module], what: str) -> dict[str, Any]:
    """``value`` as a ``{model name: value}`` mapping (one shared value for a single model)."""
    if isinstance(value, Mapping):
        if set(value) != set(models):
            raise ValueError(f"one {what} per model: models {sorted(models)}, {what}s "
                             f"{sorted(value)}")
        return dict(value)
    if len(models) > 1 and value is not None:
        raise ValueError(f"several models need a {{name: {what}}} mapping, got one {what}")
    return {name: value for name in models}
