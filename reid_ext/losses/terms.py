"""Loss terms built from config: which loss, its weight, the model output it reads and the
target it compares with.

A term spec is ``{name, weight, output, target, kwargs}``. ``output`` names a model output
(default: the loss's registered ``reads`` metadata, ``logits`` or ``feats``); ``target`` is
``pid`` (the identity labels, default) or the name of a batch entry such as ``mask``,
``parts``, ``keypoints`` or a map the data pipeline derives (``seg``). The engine hands the
target over on the model's device; a loss that compares maps resizes the target itself.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from reid_ext.registry import LOSSES

PID_TARGET = "pid"


@dataclass
class LossTerm:
    """One weighted loss applied to one named model output and one named target."""

    name: str
    weight: float
    output: str
    module: nn.Module
    key: str  # the name it is logged under
    target: str = PID_TARGET
    optimizer: torch.optim.Optimizer | None = None
    warmup_epochs: float = 0.0  # weight ramps linearly from 0 over this many epochs

    def ramp(self, epoch_progress: float) -> float:
        """The fraction of ``weight`` applied at ``epoch_progress`` (epochs done, fractional)."""
        if self.warmup_epochs <= 0:
            return 1.0
        return min(1.0, max(0.0, epoch_progress) / self.warmup_epochs)

    def __call__(self, outputs: Mapping[str, Any],
                 targets: Mapping[str, Any] | torch.Tensor) -> torch.Tensor:
        """The loss of ``outputs[output]`` against ``targets[target]`` (a tensor: the pids)."""
        if isinstance(targets, torch.Tensor):
            targets = {PID_TARGET: targets}
        if self.output not in outputs:
            raise KeyError(
                f"loss term '{self.key}' reads model output '{self.output}', but the model "
                f"returned only {sorted(outputs)}; set the term's 'output' to one of them (for "
                f"stock torchreid models, features come only when built with loss='triplet')"
            )
        target = targets[self.target]
        value = outputs[self.output]
        if isinstance(value, (list, tuple)):  # part-based outputs: average over parts
            return sum(self.module(v, target) for v in value) / len(value)
        return self.module(value, target)

    def ensure_optimizer(self) -> None:
        """Create the term's own optimizer once, if its module owns parameters."""
        if self.optimizer is None and hasattr(self.module, "make_optimizer"):
            self.optimizer = self.module.make_optimizer()


def default_output(loss_name: str) -> str:
    """The model output a loss reads unless its term says otherwise (``reads`` metadata)."""
    return LOSSES.meta(loss_name).get("reads", "feats")


def check_targets(terms: Sequence[LossTerm], batch_keys: Sequence[str]) -> None:
    """Fail, naming the term, its target and the batch keys, when a target is not in a batch."""
    for term in terms:
        if term.target not in batch_keys:
            raise KeyError(
                f"loss term '{term.key}' compares with target '{term.target}', but the batch "
                f"holds only {sorted(batch_keys)}; load that map with the 'aux' config section "
                f"(docs/aux_maps.md) or set the term's 'target' to one of the batch keys"
            )


def build_loss_terms(specs: Sequence[Mapping[str, Any]], num_classes: int,
                     device: torch.device | str = "cpu") -> list[LossTerm]:
    """Instantiate ``[{name, weight, output, target, kwargs}]`` from the LOSSES registry.

    A factory gets ``num_classes`` only if its signature takes it; the spec's ``kwargs`` are
    passed as they are, so a misspelt one fails here, naming the term.
    """
    terms: list[LossTerm] = []
    seen: dict[str, int] = {}
    for spec in specs:
        name = spec["name"]
        kwargs = dict(spec.get("kwargs") or {})
        warmup = kwargs.pop("warmup_epochs", 0.0)  # any term: handled here, not by the loss
        if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or warmup < 0:
            raise ValueError(f"loss term '{name}': warmup_epochs must be a number >= 0, got "
                             f"{warmup!r}")
        try:
            module = LOSSES.build(name, context={"num_classes": num_classes}, **kwargs)
        except TypeError as err:
            raise TypeError(f"loss term '{name}': bad kwargs {kwargs}: {err}") from err
        seen[name] = seen.get(name, 0) + 1
        key = name if seen[name] == 1 else f"{name}_{seen[name]}"
        terms.append(LossTerm(name=name, weight=float(spec.get("weight", 1.0)),
                              output=spec.get("output") or default_output(name),
                              module=module.to(device), key=key,
                              target=spec.get("target") or PID_TARGET,
                              warmup_epochs=float(warmup)))
    if not terms:
        raise ValueError("no loss terms: list at least one in loss.terms")
    return terms
