"""Watch a training run for embedding collapse: spread, rank, dead units, per-term gradients.

Trains one config through reid_ext's engine and, every ``--every`` iterations, measures on the
current batch (before the optimizer step):

* ``spread``: mean pairwise Euclidean distance of the metric-term features, and ``rel_spread``
  (that divided by the mean feature norm; 0 when every embedding is the same point);
* ``erank``: effective rank (exp of the entropy of the normalised singular values of the
  centred batch features; 1 = one direction, up to min(B, D));
* ``dead``: fraction of feature units that are exactly zero on every image of the batch;
* ``g_<term>``: the norm of the gradient each weighted loss term alone sends into the
  backbone (every parameter outside the classifier / neck);
* each term's value and the training accuracy.

At the end the model is scored on the config's targets (mAP, R1). One JSON line per probe
and a final summary go to ``--out`` (JSON), and a compact table is printed.

    flock /tmp/cpu.lock env OMP_NUM_THREADS=2 PYTHONPATH=. python benchmarks/collapse_probe.py \
        --config configs/strong_baseline_synthetic.yaml --epochs 10 \
        model.name osnet_x0_25 data.root ../shared/data data.sources "['col780']" \
        data.targets "['col780_clean']" data.transforms "['random_flip']"
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import reid_ext  # noqa: E402,F401
from reid_ext.collapse import batch_stats, metric_features  # noqa: E402
from reid_ext.config import load_config  # noqa: E402
from reid_ext.engine import named_outputs  # noqa: E402
from reid_ext.runner import build_engine  # noqa: E402

HEAD_PREFIXES = ("classifier", "neck", "module.classifier", "module.neck")


def backbone_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Trainable parameters outside the identity classifier and the BN neck."""
    inner = getattr(model, "backbone", None)
    named = model.named_parameters()
    if inner is not None:  # reid_ext's BNNeck wrapper: the wrapped host model is the backbone
        named = (("backbone." + n, p) for n, p in inner.named_parameters())
    return [p for n, p in named if p.requires_grad and not n.startswith(HEAD_PREFIXES)]


@torch.no_grad()
def shrink_pull(feats: torch.Tensor, pids: torch.Tensor, margin: float = 0.3
                ) -> dict[str, float]:
    """How much a batch-hard hinge triplet gains from shrinking every feature by a factor s.

    ``L(s) = mean_a relu(s (d_ap - d_an) + margin)``, so ``dL/ds`` at ``s = 1`` is the mean of
    ``d_ap - d_an`` over the anchors whose hinge is active (divided by all anchors). Positive:
    scaling the embedding towards one point lowers the loss, i.e. the triplet pulls towards
    collapse. ``hard_frac``: fraction of anchors whose hardest positive is farther than their
    hardest negative."""
    dist = torch.cdist(feats, feats)
    same = pids[:, None] == pids[None, :]
    eye = torch.eye(len(pids), dtype=torch.bool, device=pids.device)
    d_ap = dist.masked_fill(~same | eye, float("-inf")).amax(dim=1)
    d_an = dist.masked_fill(same, float("inf")).amin(dim=1)
    ok = torch.isfinite(d_ap) & torch.isfinite(d_an)
    gap = (d_ap - d_an)[ok]
    active = (gap + margin) > 0
    return {"dL_dscale": float((gap * active).sum() / max(len(gap), 1)),
            "hard_frac": float((gap > 0).float().mean()) if len(gap) else float("nan")}


def probe(engine: Any, data: Mapping[str, Any]) -> dict[str, float]:
    """Spread, rank, dead units and per-term backbone gradient norms on one batch."""
    imgs, pids = engine.parse_data_for_train(data)
    imgs, pids = imgs.to(engine.device), pids.to(engine.device)
    outputs = named_outputs(engine.model(imgs, **engine.aux_inputs(data)))
    params = backbone_parameters(engine.model)
    row: dict[str, float] = {}
    for term in engine.loss_terms:
        value = term(outputs, pids)
        row[term.key] = value.item()
        grads = torch.autograd.grad(term.weight * value.float(), params, retain_graph=True,
                                    allow_unused=True)
        row[f"g_{term.key}"] = float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads
                                                    if g is not None) + 0.0))
    feats = metric_features(outputs, engine.loss_terms)
    row.update(batch_stats(feats.detach().float()))
    row.update(shrink_pull(feats.detach().float(), pids))
    engine.optimizer.zero_grad(set_to_none=True)
    return row


def train_with_probes(cfg: Any, every: int, stream: Any = None, max_iters: int = 0
                      ) -> tuple[list[dict[str, Any]], Any]:
    """Train as the engine does, probing every ``every`` iterations; each probe row is also
    written as a JSON line to ``stream`` at once (a killed run keeps what it measured)."""
    engine = build_engine(cfg)
    engine.max_epoch = cfg.train.max_epoch
    rows: list[dict[str, Any]] = []
    iteration = 0
    for engine.epoch in range(cfg.train.max_epoch):
        engine.set_model_mode("train")
        sampler = getattr(engine.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(engine.epoch)
        for data in engine.train_loader:
            if max_iters and iteration > max_iters:
                break
            if iteration % every == 0:
                row = {"iter": iteration, "epoch": engine.epoch + 1, **probe(engine, data)}
                rows.append(row)
            summary = engine.forward_backward(data)
            if iteration % every == 0:
                rows[-1]["acc"] = summary.get("acc", float("nan"))
                if stream is not None:
                    stream.write(json.dumps(rows[-1]) + "\n")
                    stream.flush()
            iteration += 1
        engine.update_lr()
        last = rows[-1]
        print(f"epoch {engine.epoch + 1}: " + " ".join(
            f"{k} {v:.4g}" for k, v in last.items() if k not in ("iter", "epoch")), flush=True)
    return rows, engine


def evaluate(engine: Any) -> dict[str, dict[str, float]]:
    engine.test(ranks=[1, 5])
    return {name: {"mAP": r["mAP"], "R1": r["rank1"]} for name, r in engine.last_results.items()}


def print_table(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> None:
    print("| " + " | ".join(keys) + " |")
    for row in rows:
        print("| " + " | ".join(f"{row.get(k, float('nan')):.4g}" for k in keys) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/strong_baseline_synthetic.yaml")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--every", type=int, default=10, help="probe every N iterations")
    parser.add_argument("--out", default="", help="write the probe rows as JSON here")
    parser.add_argument("--label", default="", help="name of this run in the JSON")
    parser.add_argument("--iters", type=int, default=0,
                        help="stop after this many iterations (0: all epochs)")
    parser.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, [*args.opts, "train.max_epoch", str(args.epochs),
                                    "data.workers", "0", "train.print_freq", "100000",
                                    "data.save_dir", "/tmp/collapse_probe"])
    start = time.perf_counter()
    stream = open(args.out + "l", "w") if args.out else None  # noqa: SIM115 - JSON lines
    rows, engine = train_with_probes(cfg, args.every, stream, args.iters)
    train_s = time.perf_counter() - start
    scores = {} if args.no_eval else evaluate(engine)
    keys = ["iter", "epoch", *(t.key for t in engine.loss_terms), "acc", "spread", "rel_spread",
            "erank", "dead", "dL_dscale", "hard_frac", *(f"g_{t.key}" for t in engine.loss_terms)]
    print_table(rows, keys)
    print(f"train {train_s:.0f}s; scores {json.dumps(scores)}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({
            "label": args.label, "config": args.config, "opts": args.opts,
            "epochs": args.epochs, "train_s": train_s, "scores": scores, "rows": rows,
        }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
