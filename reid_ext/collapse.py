"""Embedding-collapse detection: warn (or stop) when a run has put every image on one point.

From scratch, margin losses can drive a network into a state where every embedding is the same
(typically every unit of a ReLU'd feature is dead): the batch-hard triplet then sits at exactly
its margin (``d_ap = d_an = 0``), the centre loss at ~0 and the cross entropy at ``ln(C)``
(uniform logits), and nothing sends a gradient back out (see docs/recipes.md). The engine feeds
:class:`CollapseDetector` each iteration's features and loss values; after ``patience``
consecutive collapsed iterations it logs a warning that names what happens and the remedies,
and with ``stop=True`` raises :class:`CollapseError` (tools/train.py exits non-zero and no
checkpoint of the collapsed model is written; earlier ones stay).

A batch counts as collapsed when either
* its features' mean pairwise distance is below ``min_rel_spread`` times their mean norm (or
  every feature is zero), or
* a margin loss sits at its collapse value (hinge: its margin; soft margin: ``ln 2``) within
  ``loss_tol`` while a classification loss sits at ``ln(C)`` within ``loss_tol * ln(C)``.
Healthy runs start with scattered random features and leave ``ln(C)`` within tens of
iterations, so neither test holds for ``patience`` iterations in a row.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch


def is_classification(term: Any) -> bool:
    """A term that reads class logits (its value at collapse is ln C)."""
    return term.output == "logits"


class CollapseError(RuntimeError):
    """Raised by :class:`CollapseDetector` with ``stop=True`` once a collapse is confirmed."""


class CollapseWarning(UserWarning):
    """The category of the detector's warning."""


@torch.no_grad()
def batch_stats(feats: torch.Tensor) -> dict[str, float]:
    """Spread, relative spread, effective rank, dead-unit fraction and mean norm of ``[B, D]``."""
    if feats.dim() != 2 or feats.size(0) < 2:
        raise ValueError(f"batch_stats needs features [B >= 2, D], got {list(feats.shape)}")
    feats = feats.float()
    norm = feats.norm(dim=1).mean().item()
    dist = torch.cdist(feats, feats)
    b = feats.size(0)
    spread = (dist.sum() / (b * (b - 1))).item()
    singular = torch.linalg.svdvals(feats - feats.mean(dim=0, keepdim=True))
    total = singular.sum()
    if total > 0:
        p = singular / total
        p = p[p > 0]
        erank = math.exp(-(p * p.log()).sum().item())
    else:
        erank = 0.0
    dead = (feats.abs().amax(dim=0) == 0).float().mean().item()
    rel = spread / norm if norm > 0 else 0.0
    return {"spread": spread, "rel_spread": rel, "erank": erank, "dead": dead, "norm": norm}


def metric_features(outputs: Mapping[str, Any], terms: Sequence[Any]) -> torch.Tensor:
    """The tensor to watch: the first output a non-classification term reads, else ``feats``,
    else the logits (the first part's, for part-based lists)."""
    names = [t.output for t in terms if not is_classification(t)]
    names += ["feats", *(t.output for t in terms)]
    for name in names:
        value = outputs.get(name)
        if isinstance(value, (list, tuple)) and value:
            value = value[0]
        if isinstance(value, torch.Tensor) and value.dim() == 2:
            return value
    raise KeyError(f"no [B, D] output to watch for collapse among {sorted(outputs)}")


def collapse_values(terms: Sequence[Any], num_classes: int) -> dict[str, float]:
    """Each watched term's loss value at collapse: ln(C) for CE, the margin (or ln 2) for
    margin losses; terms of other kinds are not watched."""
    values = {}
    for term in terms:
        if is_classification(term):
            values[term.key] = math.log(num_classes)
            continue
        module = getattr(term.module, "inner", term.module)  # warm-up wrappers keep the loss
        margin = getattr(module, "margin", None)
        if margin is not None:
            values[term.key] = math.log(2.0) if getattr(module, "soft_margin", False) \
                else float(margin)
    return values


@dataclass
class CollapseDetector:
    """Counts consecutive collapsed iterations; warns once, then stops if asked.

    Args:
        loss_at_collapse: ``{term key: value at collapse}`` (see :func:`collapse_values`).
        ce_terms: keys of the classification terms among them.
        patience: consecutive collapsed iterations before acting.
        min_rel_spread: relative spread below which a batch is one point.
        loss_tol: tolerance of the loss signature (absolute for margins, relative for CE).
        stop: raise :class:`CollapseError` instead of only warning.
    """

    loss_at_collapse: dict[str, float]
    ce_terms: tuple[str, ...] = ()
    patience: int = 50
    min_rel_spread: float = 0.01
    loss_tol: float = 0.002
    stop: bool = False
    streak: int = 0
    fired: bool = False
    last: dict[str, float] | None = None

    @classmethod
    def for_terms(cls, terms: Sequence[Any], num_classes: int, **kwargs: Any
                  ) -> CollapseDetector:
        values = collapse_values(terms, num_classes)
        ce = tuple(t.key for t in terms if is_classification(t))
        return cls(loss_at_collapse=values, ce_terms=ce, **kwargs)

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise ValueError(f"collapse detector: patience must be >= 1, got {self.patience}")
        if not 0 <= self.min_rel_spread < 1:
            raise ValueError(f"collapse detector: min_rel_spread must lie in [0, 1), got "
                             f"{self.min_rel_spread}")

    def loss_signature(self, losses: Mapping[str, float]) -> bool:
        """A margin term at its collapse value while a CE term sits at ln(C)."""
        margins = [k for k in self.loss_at_collapse if k not in self.ce_terms and k in losses]
        ces = [k for k in self.ce_terms if k in losses]
        if not margins or not ces:
            return False
        at_margin = any(abs(losses[k] - self.loss_at_collapse[k]) <= self.loss_tol
                        for k in margins)
        at_chance = any(abs(losses[k] - self.loss_at_collapse[k])
                        <= self.loss_tol * self.loss_at_collapse[k] for k in ces)
        return at_margin and at_chance

    def update(self, feats: torch.Tensor, losses: Mapping[str, float]) -> bool:
        """Feed one iteration; returns True while the batch looks collapsed.

        A batch with non-finite features is divergence, not collapse: it is left to the
        divergence guard (reid_ext.divergence), which names the term and stops the run.
        """
        feats = feats.detach()
        if not torch.isfinite(feats).all():
            return False
        stats = batch_stats(feats)
        collapsed = stats["rel_spread"] < self.min_rel_spread or self.loss_signature(losses)
        self.streak = self.streak + 1 if collapsed else 0
        self.last = {**stats, **{k: float(v) for k, v in losses.items()}}
        if self.streak >= self.patience and not self.fired:
            self.fired = True
            message = self.message()
            warnings.warn(message, CollapseWarning, stacklevel=2)
            print(f"WARNING: {message}", flush=True)
            if self.stop:
                raise CollapseError(message)
        return collapsed

    def message(self) -> str:
        last = self.last or {}
        at = ", ".join(f"{k} = {last.get(k, float('nan')):.4f} (collapse value {v:.4f})"
                       for k, v in self.loss_at_collapse.items())
        return (
            f"embedding collapse for {self.streak} iterations: the batch's embeddings sit on "
            f"one point (mean pairwise distance {last.get('spread', 0):.3g}, "
            f"{last.get('rel_spread', 0):.3g} of their norm {last.get('norm', 0):.3g}; "
            f"effective rank {last.get('erank', 0):.2f}; {100 * last.get('dead', 0):.0f}% of "
            f"units dead); {at}. Nothing trains from here. Remedies: give the metric terms a "
            f"BN neck (model 'bnneck' with model.kwargs.backbone <name>, or *_bnneck models: "
            f"triplet on pre-BN, CE on post-BN features), warm the metric terms up "
            f"(loss term kwargs {{warmup_epochs: 5}}), use soft_margin: true, drop the center "
            f"term, or lower train.lr. See docs/recipes.md."
        )


def detector_from_config(cfg: Any, terms: Sequence[Any], num_classes: int
                         ) -> CollapseDetector | None:
    """The detector the ``train.collapse_*`` keys ask for (None when switched off)."""
    train = getattr(cfg, "train", None)
    if train is None or not getattr(train, "collapse_check", False):
        return None
    return CollapseDetector.for_terms(
        terms, num_classes, patience=int(train.collapse_patience),
        min_rel_spread=float(train.collapse_min_rel_spread),
        stop=bool(train.stop_on_collapse))
