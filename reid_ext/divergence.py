"""Divergence detection: stop a run whose loss or weights stop being finite numbers.

Without it, ``train.lr 1e6`` trains on NaN losses, exits 0, prints a meaningless mAP and saves
NaN weights. :class:`DivergenceGuard` is called by the engine around each optimisation step:

* a non-finite total loss raises :class:`DivergenceError` naming the loss term(s) that went
  non-finite, the epoch and the batch, before the step (so the weights stay those of the last
  good step and the last checkpoint on disk is kept);
* a finite loss more than ``explode_factor`` times the run's first loss (floored at 1) raises
  the same way (Adam at ``lr 1e6`` reaches ~1e14 with every number finite);
* a non-finite weight after a step (e.g. Adam at an absurd learning rate) raises the same way;
* under AMP with a GradScaler, steps the scaler skips for inf/NaN gradients are counted, not
  fatal; only :data:`MAX_CONSECUTIVE_SKIPS` skipped steps in a row (the scale has then shrunk by
  2**50, so nothing is being learnt) raise.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import nn

MAX_CONSECUTIVE_SKIPS = 50
EXPLODE_FACTOR = 1e6


class DivergenceError(RuntimeError):
    """Training diverged (non-finite loss or weights); the message says where."""


def nonfinite_parameters(models: Mapping[str, nn.Module]) -> list[str]:
    """Names (``model:param``) of parameters holding a NaN or an infinity."""
    bad = []
    for model_name, model in models.items():
        params = [(n, p) for n, p in model.named_parameters()]
        if not params:
            continue
        flags = torch.stack([torch.isfinite(p.detach()).all() for _, p in params])
        if not bool(flags.all()):
            bad += [f"{model_name}:{n}" for (n, _), ok in zip(params, flags.tolist()) if not ok]
    return bad


class DivergenceGuard:
    """Per-run state: term values of the current step, skipped AMP steps, where we are."""

    def __init__(self, explode_factor: float = EXPLODE_FACTOR) -> None:
        self.explode_factor = explode_factor
        self.reference: float | None = None
        self.step_terms: dict[str, float] = {}
        self.skipped_steps = 0
        self.consecutive_skips = 0

    def where(self, epoch: int, batch: int) -> str:
        return f"epoch {epoch + 1}, batch {batch + 1}"

    def record_terms(self, values: Mapping[str, float]) -> None:
        """Remember this step's (unweighted) loss-term values."""
        self.step_terms.update(values)

    def check_loss(self, total: torch.Tensor, epoch: int, batch: int, amp_scaler: bool) -> bool:
        """True when the step may proceed; raise on a non-finite loss without a scaler.

        With a GradScaler a non-finite loss makes inf gradients that the scaler skips (and
        :meth:`after_scaler_update` counts), so the step proceeds.
        """
        terms, self.step_terms = self.step_terms, {}
        value = float(total.detach().float())
        if math.isfinite(value):
            if self.reference is None:
                self.reference = max(abs(value), 1.0)
            elif self.explode_factor > 0 and value > self.explode_factor * self.reference:
                raise DivergenceError(
                    f"training diverged at {self.where(epoch, batch)}: the loss exploded to "
                    f"{value:.3g} (> {self.explode_factor:g} x the run's first loss "
                    f"{self.reference:.3g}; terms {terms}). The step was not taken and the "
                    f"last checkpoint on disk is kept; lower train.lr and resume from it "
                    f"(train.divergence_factor 0 disables this check)")
            return True
        if amp_scaler:
            return True
        bad = [f"{k}={v}" for k, v in terms.items() if not math.isfinite(v)]
        what = ", ".join(bad) if bad else f"the total ({value}; every term finite: {terms})"
        raise DivergenceError(
            f"training diverged at {self.where(epoch, batch)}: non-finite loss from {what}. "
            f"The step was not taken and the last checkpoint on disk is kept; lower train.lr "
            f"(or enable gradient clipping/AMP) and resume from it")

    def check_weights(self, models: Mapping[str, nn.Module], epoch: int, batch: int) -> None:
        bad = nonfinite_parameters(models)
        if bad:
            raise DivergenceError(
                f"training diverged at {self.where(epoch, batch)}: {len(bad)} parameter "
                f"tensor(s) became non-finite after the optimizer step ({bad[:3]}); the last "
                f"checkpoint on disk is kept; lower train.lr and resume from it")

    def after_scaler_update(self, scale_before: float, scale_after: float, epoch: int,
                            batch: int) -> None:
        """Count a step the GradScaler skipped (its scale went down); raise after too many."""
        if scale_after < scale_before:
            self.skipped_steps += 1
            self.consecutive_skips += 1
            if self.consecutive_skips >= MAX_CONSECUTIVE_SKIPS:
                raise DivergenceError(
                    f"training diverged at {self.where(epoch, batch)}: the AMP grad scaler "
                    f"skipped {self.consecutive_skips} steps in a row for inf/NaN gradients")
        else:
            self.consecutive_skips = 0

    def summary(self) -> str:
        return f"AMP steps skipped for inf/NaN gradients: {self.skipped_steps}"


def all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    """True when every tensor is free of NaN and infinities."""
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())
