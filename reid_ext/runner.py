"""Build data, model, optimizer and engine from a config: the body of tools/train.py."""
from __future__ import annotations

from typing import Any

import torch
from yacs.config import CfgNode

from reid_ext import host
from reid_ext.checkpoint import load_matching_weights
from reid_ext.config import host_loss_mode, loss_terms_from_config
from reid_ext.data.auxmaps import AUX_KEYS, attach_aux_maps
from reid_ext.data.options import clear_dataset_options, set_dataset_options
from reid_ext.distributed import (
    check_distributed_config,
    init_distributed,
    main_first,
    wrap_ddp,
)
from reid_ext.engine import ReidEngine
from reid_ext.images import BAD_IMAGES, skip_bad_images_in
from reid_ext.models.factory import build_model, model_aux_inputs
from reid_ext.preflight import check_data_ready
from reid_ext.schedulers import build_lr_scheduler


def imagedata_kwargs(cfg: CfgNode) -> dict[str, Any]:
    """torchreid ``ImageDataManager`` arguments from the config (the host's mapping)."""
    return {
        "root": cfg.data.root, "sources": list(cfg.data.sources),
        "targets": list(cfg.data.targets), "height": cfg.data.height, "width": cfg.data.width,
        "transforms": list(cfg.data.transforms), "k_tfm": cfg.data.k_tfm,
        "norm_mean": list(cfg.data.norm_mean), "norm_std": list(cfg.data.norm_std),
        "use_gpu": torch.cuda.is_available(), "split_id": cfg.data.split_id,
        "combineall": cfg.data.combineall, "load_train_targets": cfg.data.load_train_targets,
        "batch_size_train": cfg.train.batch_size, "batch_size_test": cfg.test.batch_size,
        "workers": cfg.data.workers, "num_instances": cfg.sampler.num_instances,
        "num_cams": cfg.sampler.num_cams, "num_datasets": cfg.sampler.num_datasets,
        "train_sampler": cfg.sampler.train_sampler, "train_sampler_t": cfg.sampler.train_sampler_t,
        "cuhk03_labeled": cfg.cuhk03.labeled_images,
        "cuhk03_classic_split": cfg.cuhk03.classic_split,
        "market1501_500k": cfg.market1501.use_500k_distractors,
    }


def optimizer_kwargs(cfg: CfgNode) -> dict[str, Any]:
    return {
        "optim": cfg.train.optim, "lr": cfg.train.lr, "weight_decay": cfg.train.weight_decay,
        "momentum": cfg.sgd.momentum, "sgd_dampening": cfg.sgd.dampening,
        "sgd_nesterov": cfg.sgd.nesterov, "rmsprop_alpha": cfg.rmsprop.alpha,
        "adam_beta1": cfg.adam.beta1, "adam_beta2": cfg.adam.beta2,
        "staged_lr": cfg.train.staged_lr, "new_layers": list(cfg.train.new_layers),
        "base_lr_mult": cfg.train.base_lr_mult,
    }


def lr_scheduler_kwargs(cfg: CfgNode, datamanager: Any = None) -> dict[str, Any]:
    stepsize = list(cfg.train.stepsize)
    kwargs = {
        "lr_scheduler": cfg.train.lr_scheduler,
        "stepsize": stepsize[0] if cfg.train.lr_scheduler == "single_step" else stepsize,
        "gamma": cfg.train.gamma, "max_epoch": cfg.train.max_epoch,
    }
    if cfg.train.lr_scheduler == "poly":  # reid_ext.schedulers: per-iteration decay
        kwargs = {"lr_scheduler": "poly", "max_epoch": cfg.train.max_epoch,
                  "power": cfg.train.poly_power,
                  "iters_per_epoch": len(datamanager.train_loader) if datamanager else 1}
    return kwargs


def engine_run_kwargs(cfg: CfgNode) -> dict[str, Any]:
    return {
        "save_dir": cfg.data.save_dir, "max_epoch": cfg.train.max_epoch,
        "start_epoch": cfg.train.start_epoch, "fixbase_epoch": cfg.train.fixbase_epoch,
        "open_layers": list(cfg.train.open_layers), "start_eval": cfg.test.start_eval,
        "eval_freq": cfg.test.eval_freq, "test_only": cfg.test.evaluate,
        "dist_metric": cfg.test.dist_metric, "normalize_feature": cfg.test.normalize_feature,
        "visrank": cfg.test.visrank, "visrank_topk": cfg.test.visrank_topk,
        "use_metric_cuhk03": cfg.cuhk03.use_metric_cuhk03, "ranks": list(cfg.test.ranks),
        "rerank": cfg.test.rerank, "print_freq": cfg.train.print_freq,
    }


def apply_dataset_options(cfg: CfgNode) -> None:
    """Hand ``data.options.<dataset>`` to the dataset classes torchreid will construct.

    The table is replaced, not merged, so options of an earlier config in the same process
    do not leak into this one.
    """
    clear_dataset_options()
    for name, options in cfg.data.options.items():
        set_dataset_options(name, **dict(options))


def seed_everything(cfg: CfgNode) -> None:
    host.utils.set_random_seed(cfg.train.seed)
    if cfg.train.deterministic:
        torch.use_deterministic_algorithms(True)


def aux_keys_for(cfg: CfgNode, model: torch.nn.Module) -> tuple[str, ...]:
    """Aux maps to load: what the model declares plus what the config asks for."""
    keys = list(model_aux_inputs(model))
    targets = {term.get("target") for term in loss_terms_from_config(cfg)}
    for key in AUX_KEYS:
        if (getattr(cfg.aux, key, "") or key in targets) and key not in keys:
            keys.append(key)
    return tuple(keys)


def build_datamanager(cfg: CfgNode) -> Any:
    apply_dataset_options(cfg)
    return host.ImageDataManager(**imagedata_kwargs(cfg))


def attach_aux(cfg: CfgNode, datamanager: Any, keys: tuple[str, ...]) -> None:
    """Swap the data manager's loaders for aux-map loaders when any aux key is needed; with
    ``data.skip_bad_images`` wrap every loader so unreadable images are skipped and counted."""
    if keys:
        _attach_aux_maps(cfg, datamanager, keys)
    if cfg.data.skip_bad_images:
        skip_bad_images_in(datamanager)


def _attach_aux_maps(cfg: CfgNode, datamanager: Any, keys: tuple[str, ...]) -> None:
    attach_aux_maps(
        datamanager, keys,
        mask_dir=None if cfg.aux.mask in ("", "auto") else cfg.aux.mask,
        keypoints_dir=None if cfg.aux.keypoints in ("", "auto") else cfg.aux.keypoints,
        parts_scheme=cfg.aux.parts or None,
        seg_structure=cfg.aux.seg or None,
        keypoint_format=cfg.aux.keypoint_format or None,
        on_missing=cfg.aux.on_missing,
        transforms=list(cfg.data.transforms),
        norm_mean=list(cfg.data.norm_mean), norm_std=list(cfg.data.norm_std),
    )


def _build_one(cfg: CfgNode, name: str, num_classes: int, terms: list[dict[str, Any]]
               ) -> torch.nn.Module:
    model = build_model(name, num_classes=num_classes, loss=host_loss_mode(terms),
                        pretrained=cfg.model.pretrained, **dict(cfg.model.kwargs))
    if cfg.model.load_weights:
        load_matching_weights(model, cfg.model.load_weights, model_name=name)
    return model.cuda() if torch.cuda.is_available() else model


def build_engine(cfg: CfgNode, datamanager: Any = None, model: torch.nn.Module | None = None
                 ) -> ReidEngine:
    """Everything ``tools/train.py`` needs, built from ``cfg``.

    With ``mutual.models`` listed, a :class:`~reid_ext.mutual_engine.MutualEngine` trains
    those models together; otherwise one :class:`ReidEngine` trains ``model.name``.
    """
    seed_everything(cfg)
    datamanager = datamanager or build_datamanager(cfg)
    terms = loss_terms_from_config(cfg)
    common = {"use_gpu": torch.cuda.is_available(), "amp": cfg.train.amp,
              "checkpoint_freq": cfg.train.checkpoint_freq, "config": cfg,
              "eval_protocol": "cuhk03" if cfg.cuhk03.use_metric_cuhk03 else "market"}
    if cfg.mutual.models:
        from reid_ext.mutual_engine import MutualEngine

        models = [_build_one(cfg, name, datamanager.num_train_pids, terms)
                  for name in cfg.mutual.models]
        attach_aux(cfg, datamanager, tuple(dict.fromkeys(
            k for m in models for k in aux_keys_for(cfg, m))))
        optimizers = [host.optim.build_optimizer(m, **optimizer_kwargs(cfg)) for m in models]
        schedulers = [build_lr_scheduler(o, **lr_scheduler_kwargs(cfg, datamanager))
                      for o in optimizers]
        names = [f"model{i + 1}_{name}" for i, name in enumerate(cfg.mutual.models)]
        return MutualEngine(datamanager, models, optimizers, schedulers, loss_terms=terms,
                            kl_weight=cfg.mutual.kl_weight, temperature=cfg.mutual.temperature,
                            metric_weight=cfg.mutual.metric_weight,
                            mutual_metric=cfg.mutual.metric, names=names, **common)
    if model is None:
        model = _build_one(cfg, cfg.model.name, datamanager.num_train_pids, terms)
    attach_aux(cfg, datamanager, aux_keys_for(cfg, model))
    optimizer = host.optim.build_optimizer(model, **optimizer_kwargs(cfg))
    scheduler = build_lr_scheduler(optimizer, **lr_scheduler_kwargs(cfg, datamanager))
    return ReidEngine(datamanager, model, optimizer, scheduler, loss_terms=terms, **common)


def resume(engine: ReidEngine, path: str) -> int:
    """Resume every model of ``engine``; with several models ``path`` holds ``{name}``."""
    names = engine.get_model_names()
    if len(names) > 1 and "{name}" not in path:
        raise ValueError(f"model.resume '{path}' must contain '{{name}}' to name each of the "
                         f"models {names}, e.g. log/run/{{name}}/model.pth.tar-10")
    epochs = {engine.resume(path.format(name=name), name=name) for name in names}
    if len(epochs) != 1:
        raise ValueError(f"the checkpoints under '{path}' are from different epochs {epochs}")
    return epochs.pop()


def run(cfg: CfgNode) -> ReidEngine:
    """Build, optionally resume, then train and/or evaluate as the config says."""
    BAD_IMAGES.clear()
    check_data_ready(cfg)  # missing dataset/aux cache: stop now, saying where and what to run
    init_distributed()
    check_distributed_config(cfg)
    with main_first():  # rank 0 generates/caches data first
        engine = build_engine(cfg)
    wrap_ddp(engine)
    kwargs = engine_run_kwargs(cfg)
    if cfg.model.resume:
        kwargs["start_epoch"] = resume(engine, cfg.model.resume)
    try:
        engine.run(**kwargs)
    finally:
        if cfg.data.skip_bad_images:
            print(BAD_IMAGES.summary())
    return engine
