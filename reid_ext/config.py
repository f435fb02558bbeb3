"""yacs configuration: torchreid's upstream default keys plus the reid_ext sections.

PyPI torchreid ships no default config, so the host's keys are written out here. Unknown keys
in a user's yaml or command-line overrides fail with the full key path and the closest valid
key, instead of yacs's bare ``Non-existent config key``.
"""
from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from yacs.config import CfgNode as CN  # noqa: N817 - the name every yacs user knows

from reid_ext.losses.terms import PID_TARGET, default_output
from reid_ext.registry import DATASETS

# Sections whose keys are free-form (model- or dataset-specific kwargs).
OPEN_SECTIONS = ("model.kwargs", "data.options")
LOSS_TERM_KEYS = ("name", "weight", "output", "target", "kwargs")


class ConfigError(ValueError):
    """A config file or override that does not fit the schema."""


def get_default_config() -> CN:
    """A fresh copy of every default, host keys first."""
    cfg = CN()

    cfg.model = CN()
    cfg.model.name = "resnet50"
    cfg.model.pretrained = True
    cfg.model.load_weights = ""
    cfg.model.resume = ""
    cfg.model.kwargs = CN(new_allowed=True)  # reid_ext: passed to the model factory

    cfg.data = CN()
    cfg.data.type = "image"
    cfg.data.root = "reid-data"
    cfg.data.sources = ["market1501"]
    cfg.data.targets = ["market1501"]
    cfg.data.workers = 4
    cfg.data.split_id = 0
    cfg.data.height = 256
    cfg.data.width = 128
    cfg.data.combineall = False
    cfg.data.transforms = ["random_flip"]
    cfg.data.k_tfm = 1
    cfg.data.norm_mean = [0.485, 0.456, 0.406]
    cfg.data.norm_std = [0.229, 0.224, 0.225]
    cfg.data.save_dir = "log"
    cfg.data.load_train_targets = False
    cfg.data.options = CN(new_allowed=True)  # reid_ext: per-dataset options, by dataset name
    cfg.data.skip_bad_images = False  # reid_ext: skip (and count) unreadable images, else fail

    cfg.market1501 = CN()
    cfg.market1501.use_500k_distractors = False
    cfg.cuhk03 = CN()
    cfg.cuhk03.labeled_images = False
    cfg.cuhk03.classic_split = False
    cfg.cuhk03.use_metric_cuhk03 = False

    cfg.sampler = CN()
    cfg.sampler.train_sampler = "RandomSampler"
    cfg.sampler.train_sampler_t = "RandomSampler"
    cfg.sampler.num_instances = 4
    cfg.sampler.num_cams = 1
    cfg.sampler.num_datasets = 1

    cfg.video = CN()
    cfg.video.seq_len = 15
    cfg.video.sample_method = "evenly"
    cfg.video.pooling_method = "avg"

    cfg.train = CN()
    cfg.train.optim = "adam"
    cfg.train.lr = 0.0003
    cfg.train.weight_decay = 5e-4
    cfg.train.max_epoch = 60
    cfg.train.start_epoch = 0
    cfg.train.batch_size = 32
    cfg.train.fixbase_epoch = 0
    cfg.train.open_layers = ["classifier"]
    cfg.train.staged_lr = False
    cfg.train.new_layers = ["classifier"]
    cfg.train.base_lr_mult = 0.1
    cfg.train.lr_scheduler = "single_step"
    cfg.train.stepsize = [20]
    cfg.train.gamma = 0.1
    cfg.train.poly_power = 0.9  # reid_ext: lr_scheduler 'poly' (per iteration, reid_ext.schedulers)
    cfg.train.print_freq = 20
    cfg.train.seed = 1
    cfg.train.amp = False  # reid_ext: autocast (float16 + GradScaler on CUDA, bfloat16 on CPU)
    cfg.train.deterministic = False  # reid_ext: torch.use_deterministic_algorithms
    cfg.train.checkpoint_freq = 0  # reid_ext: also checkpoint every N epochs (0: host's rule)
    # reid_ext: embedding-collapse watch (reid_ext/collapse.py): warn after `patience` collapsed
    # iterations in a row; stop_on_collapse raises instead (non-zero exit, no new checkpoint)
    cfg.train.collapse_check = True
    cfg.train.stop_on_collapse = False
    cfg.train.collapse_patience = 50
    cfg.train.collapse_min_rel_spread = 0.01
    # reid_ext: stop when the loss exceeds this many times the run's first loss (0: off);
    # non-finite losses and weights always stop the run (reid_ext.divergence)
    cfg.train.divergence_factor = 1e6

    cfg.sgd = CN()
    cfg.sgd.momentum = 0.9
    cfg.sgd.dampening = 0.0
    cfg.sgd.nesterov = False
    cfg.rmsprop = CN()
    cfg.rmsprop.alpha = 0.99
    cfg.adam = CN()
    cfg.adam.beta1 = 0.9
    cfg.adam.beta2 = 0.999

    cfg.loss = CN()
    cfg.loss.name = "softmax"
    cfg.loss.softmax = CN()
    cfg.loss.softmax.label_smooth = True
    cfg.loss.triplet = CN()
    cfg.loss.triplet.margin = 0.3
    cfg.loss.triplet.weight_t = 1.0
    cfg.loss.triplet.weight_x = 0.0
    # reid_ext: explicit loss terms [{name, weight, output, target, kwargs}]; when empty they are
    # derived from loss.name exactly as torchreid's softmax/triplet engines combine them.
    cfg.loss.terms = []

    cfg.test = CN()
    cfg.test.batch_size = 100
    cfg.test.dist_metric = "euclidean"
    cfg.test.normalize_feature = False
    cfg.test.ranks = [1, 5, 10, 20]
    cfg.test.evaluate = False
    cfg.test.eval_freq = -1
    cfg.test.start_eval = 0
    cfg.test.rerank = False
    cfg.test.visrank = False
    cfg.test.visrank_topk = 10
    # reid_ext: AlignedReID ranking by global + weight x DP local distance, for models with a
    # local_features() method (reid_ext/models/aligned.py); others keep the global distance
    cfg.test.local_distance = False
    cfg.test.local_distance_weight = 1.0
    cfg.test.multi_query = ""  # "mean"/"max": pool each (pid, camera)'s queries (market1501_mq)

    # reid_ext: deep mutual learning of several models (reid_ext.mutual_engine.MutualEngine)
    cfg.mutual = CN()
    cfg.mutual.models = []  # model names; empty: train model.name alone
    cfg.mutual.kl_weight = 1.0  # KL between softened predictions
    cfg.mutual.temperature = 1.0
    cfg.mutual.metric_weight = 1.0  # zero-gradient metric mutual loss on batch distances
    cfg.mutual.metric = "euclidean"

    # reid_ext: auxiliary maps (masks / keypoints / part regions) fed to models that take them.
    cfg.aux = CN()
    cfg.aux.mask = ""  # cache dir, "auto" (the dataset's own maps), or "" (only if the model asks)
    cfg.aux.keypoints = ""
    cfg.aux.parts = ""  # part scheme name (built from keypoints), "" for none
    cfg.aux.seg = ""  # tiger structure (I-IV): batch key 'seg', a class map from keypoints
    cfg.aux.keypoint_format = ""  # "" = the dataset's own (coco17 for people, atrw15 for tigers)
    cfg.aux.on_missing = "fallback"  # or "error"

    # reid_ext: unsupervised domain adaptation by pseudo-label refinement (tools/train_uda.py)
    cfg.uda = CN()
    cfg.uda.target = ""  # target dataset name; its train split is used without labels
    cfg.uda.source_checkpoint = ""  # start from these weights instead of training on the source
    cfg.uda.warmup_epochs = 0  # source training: linear lr warm-up before train.stepsize decay
    cfg.uda.steps = 2  # refinement steps: extract -> normalise -> cluster -> fine-tune
    cfg.uda.epochs_per_step = 2
    cfg.uda.lr = 0.0  # fine-tuning learning rate, constant within a step (0: train.lr)
    cfg.uda.camera_norm = True  # camera-guided normalisation before clustering
    cfg.uda.k1 = 20  # k-reciprocal Jaccard distance parameters
    cfg.uda.k2 = 6
    cfg.uda.num_neighbors = 40  # Jaccard distances kept per image (sparse matrix)
    cfg.uda.eps = 0.6  # DBSCAN radius on the Jaccard distance ...
    cfg.uda.eps_quantile = 0.0  # ... or, when > 0, this quantile of the kept distances
    cfg.uda.min_samples = 4
    cfg.uda.outliers = "drop"  # DBSCAN noise: "drop" or "singleton" (one pseudo-id each)
    return cfg


def load_config(path: str | Path | None = None, opts: Sequence[str] = ()) -> CN:
    """Defaults, then the yaml at ``path``, then ``KEY VALUE`` overrides; validated and frozen."""
    cfg = get_default_config()
    if path:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file '{path}' does not exist")
        with open(path) as f:
            try:
                user = yaml.safe_load(f) or {}
            except yaml.YAMLError as err:
                raise ConfigError(f"config file '{path}' is not valid yaml: {err}") from err
        if not isinstance(user, dict):
            raise ConfigError(f"config file '{path}' must hold a mapping at the top level")
        check_keys(user, cfg, source=str(path))
        cfg.merge_from_other_cfg(CN(user))
    if opts:
        if len(opts) % 2:
            raise ConfigError(f"overrides must be KEY VALUE pairs, got an odd list: {list(opts)}")
        for key, value in zip(opts[::2], opts[1::2]):
            check_key_path(key, cfg, source="command line")
            if _open_section_of(key):
                _set_open_key(cfg, key, value)
            else:
                cfg.merge_from_list([key, value])
    validate(cfg)
    cfg.freeze()
    return cfg


def check_keys(user: dict[str, Any], defaults: CN, source: str, prefix: str = "") -> None:
    """Raise :class:`ConfigError` for the first key of ``user`` that ``defaults`` lacks."""
    for key, value in user.items():
        path = f"{prefix}{key}"
        if path in OPEN_SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{path}' must be a mapping, got {value!r}")
            continue
        if key not in defaults:
            raise ConfigError(_unknown_key_message(path, defaults, prefix, source))
        if isinstance(defaults[key], CN):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{path}' is a section; expected a mapping")
            check_keys(value, defaults[key], source, prefix=f"{path}.")


def check_key_path(key: str, defaults: CN, source: str) -> None:
    node: Any = defaults
    parts = key.split(".")
    for i, part in enumerate(parts):
        prefix = ".".join(parts[:i])
        if prefix in OPEN_SECTIONS:
            return
        if not isinstance(node, CN) or part not in node:
            raise ConfigError(
                _unknown_key_message(key, node if isinstance(node, CN) else CN(),
                                     prefix + "." if prefix else "", source)
            )
        node = node[part]


def _open_section_of(key: str) -> str | None:
    return next((s for s in OPEN_SECTIONS if key.startswith(s + ".")), None)


def _set_open_key(cfg: CN, key: str, value: str) -> None:
    """Set ``model.kwargs.x.y``-style keys, which yacs's merge_from_list refuses as new."""
    node = cfg
    parts = key.split(".")
    for part in parts[:-1]:
        if part not in node:
            node[part] = CN(new_allowed=True)
        node = node[part]
    node[parts[-1]] = CN._decode_cfg_value(value)


def _unknown_key_message(path: str, node: CN, prefix: str, source: str) -> str:
    candidates = [f"{prefix}{k}" for k in node]
    close = difflib.get_close_matches(path, candidates, n=1, cutoff=0.0)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"{source}: unknown config key '{path}'{hint}"


def validate(cfg: CN) -> None:
    """Checks yacs cannot express: the shape of ``loss.terms`` and a few enumerations."""
    for i, term in enumerate(cfg.loss.terms):
        where = f"loss.terms[{i}]"
        if not isinstance(term, dict):
            raise ConfigError(
                f"{where} must be a mapping with keys {LOSS_TERM_KEYS}, got {term!r}")
        extra = set(term) - set(LOSS_TERM_KEYS)
        if extra:
            raise ConfigError(
                f"{where} has unknown keys {sorted(extra)}; allowed: {LOSS_TERM_KEYS}")
        if "name" not in term:
            raise ConfigError(f"{where} needs a 'name'")
        if not isinstance(term.get("weight", 1.0), (int, float)):
            raise ConfigError(f"{where}.weight must be a number, got {term['weight']!r}")
        if not isinstance(term.get("target", PID_TARGET) or PID_TARGET, str):
            raise ConfigError(f"{where}.target must be 'pid' or a batch key such as 'mask', "
                              f"got {term['target']!r}")
        if not isinstance(term.get("kwargs", {}) or {}, dict):
            raise ConfigError(f"{where}.kwargs must be a mapping, got {term['kwargs']!r}")
    if cfg.aux.on_missing not in ("fallback", "error"):
        raise ConfigError(
            f"aux.on_missing must be 'fallback' or 'error', got {cfg.aux.on_missing!r}")
    validate_run_values(cfg)


DIST_METRICS = ("euclidean", "cosine")
MULTI_QUERY_POOLS = ("", "mean", "max")


def _margin_of(term: dict[str, Any]) -> Any:
    return (term.get("kwargs") or {}).get("margin")


def _option_sources(dataset: str) -> tuple[str, ...]:
    """Option tables a registered dataset reads (col780_clean also reads col780's)."""
    if dataset not in DATASETS:
        return ()
    return tuple(getattr(DATASETS.get(dataset), "option_sources", ()))


def validate_run_values(cfg: CN) -> None:
    """Values used late in a run (evaluation, epochs, margins), checked before anything runs.

    Without these checks ``test.dist_metric euclid`` fails only after the whole training,
    ``test.ranks [0, 5]`` prints a meaningless "Rank-0" and ``train.max_epoch 0`` silently
    trains nothing.
    """
    if cfg.test.multi_query not in MULTI_QUERY_POOLS:
        raise ConfigError(f"test.multi_query must be one of {MULTI_QUERY_POOLS} ('' = off), got "
                          f"{cfg.test.multi_query!r}")
    if cfg.test.multi_query and (cfg.test.visrank or cfg.test.local_distance):
        raise ConfigError("test.multi_query pools the queries, so it cannot be combined with "
                          "test.visrank or test.local_distance (both need one row per image)")
    if cfg.test.dist_metric not in DIST_METRICS:
        raise ConfigError(f"test.dist_metric must be one of {DIST_METRICS}, got "
                          f"{cfg.test.dist_metric!r}")
    ranks = list(cfg.test.ranks)
    if not ranks or any(not isinstance(r, int) or isinstance(r, bool) or r < 1 for r in ranks):
        raise ConfigError(f"test.ranks must be a non-empty list of integers >= 1 (Rank-1 is the "
                          f"top match), got {ranks!r}")
    if not cfg.test.evaluate and cfg.train.max_epoch < 1:
        raise ConfigError(f"train.max_epoch must be >= 1 to train (got {cfg.train.max_epoch}); "
                          f"to only evaluate set test.evaluate True")
    if not 0 <= cfg.train.start_epoch < max(cfg.train.max_epoch, 1):
        raise ConfigError(f"train.start_epoch must be in [0, train.max_epoch), got "
                          f"{cfg.train.start_epoch} with max_epoch {cfg.train.max_epoch}")
    for key in ("train.batch_size", "test.batch_size", "sampler.num_instances",
                "test.visrank_topk"):
        section, name = key.split(".")
        if cfg[section][name] < 1:
            raise ConfigError(f"{key} must be >= 1, got {cfg[section][name]}")
    if cfg.train.divergence_factor < 0:
        raise ConfigError(f"train.divergence_factor must be >= 0 (0: off), got "
                          f"{cfg.train.divergence_factor}")
    if not (cfg.train.lr > 0 and cfg.train.lr < float("inf")):
        raise ConfigError(f"train.lr must be a positive finite number, got {cfg.train.lr}")
    if cfg.test.visrank and not cfg.test.evaluate:
        raise ConfigError("test.visrank True needs test.evaluate True (torchreid draws ranked "
                          "lists only in evaluation-only runs; use tools/test.py)")
    if cfg.loss.name == "triplet" and not cfg.loss.terms and cfg.loss.triplet.margin < 0:
        raise ConfigError(f"loss.triplet.margin must be >= 0, got {cfg.loss.triplet.margin}")
    for i, term in enumerate(cfg.loss.terms):
        margin = _margin_of(dict(term))
        if isinstance(margin, (int, float)) and margin < 0:
            raise ConfigError(f"loss.terms[{i}] ({term['name']}) kwargs.margin must be >= 0, "
                              f"got {margin}")
    datasets = {*cfg.data.sources, *cfg.data.targets}
    if cfg.uda.target:  # the domain-adaptation loop builds its target dataset too
        datasets.add(cfg.uda.target)
    datasets |= {source for name in set(datasets) for source in _option_sources(name)}
    for name in cfg.data.options:
        if name not in datasets:
            close = difflib.get_close_matches(name, sorted(datasets), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"data.options.{name}: dataset '{name}' is not in data.sources "
                              f"{list(cfg.data.sources)} or data.targets "
                              f"{list(cfg.data.targets)}{hint}")


def loss_terms_from_config(cfg: CN) -> list[dict[str, Any]]:
    """``loss.terms`` with defaults filled in, or the host-equivalent terms for ``loss.name``."""
    if cfg.loss.terms:
        terms = []
        for term in cfg.loss.terms:
            term = dict(term)
            kwargs = dict(term.get("kwargs") or {})
            terms.append({"name": term["name"], "weight": float(term.get("weight", 1.0)),
                          "output": term.get("output") or default_output(term["name"]),
                          "target": term.get("target") or PID_TARGET, "kwargs": kwargs})
        return terms
    softmax = {"name": "softmax", "weight": 1.0, "output": "logits", "target": PID_TARGET,
               "kwargs": {"label_smooth": bool(cfg.loss.softmax.label_smooth)}}
    if cfg.loss.name == "softmax":
        return [softmax]
    if cfg.loss.name == "triplet":
        triplet = {"name": "triplet", "weight": float(cfg.loss.triplet.weight_t),
                   "output": "feats", "target": PID_TARGET,
                   "kwargs": {"margin": float(cfg.loss.triplet.margin)}}
        softmax["weight"] = float(cfg.loss.triplet.weight_x)
        return [t for t in (triplet, softmax) if t["weight"] > 0]
    raise ConfigError(f"loss.name must be 'softmax' or 'triplet' (or list loss.terms), "
                      f"got {cfg.loss.name!r}")


def host_loss_mode(terms: list[dict[str, Any]]) -> str:
    """The ``loss`` argument for torchreid models: 'triplet' when a term needs features."""
    return "triplet" if any(t["output"] != "logits" for t in terms) else "softmax"
