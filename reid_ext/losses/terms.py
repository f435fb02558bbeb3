"""Loss terms built from config: which loss, its weight, and which model output it reads."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from reid_ext.registry import LOSSES


@dataclass
class LossTerm:
    """One weighted loss applied to one named model output."""

    name: str
    weight: float
    output: str
    module: nn.Module
    key: str  # the name it is logged under
    optimizer: torch.optim.Optimizer | None = None
    warmup_epochs: float = 0.0  # weight ramps linearly from 0 over this many epochs

    def ramp(self, epoch_progress: float) -> float:
        """The fraction of ``weight`` applied at ``epoch_progress`` (epochs done, fractional)."""
        if self.warmup_epochs <= 0:
            return 1.0
        return min(1.0, max(0.0, epoch_progress) / self.warmup_epochs)

    def __call__(self, outputs: Mapping[str, Any], targets: torch.Tensor) -> torch.Tensor:
        if self.output not in outputs:
            raise KeyError(
                f"loss term '{self.key}' reads model output '{self.output}', but the model "
                f"returned only {sorted(outputs)}; set the term's 'output' to one of them (for "
                f"stock torchreid models, features come only when built with loss='triplet')"
            )
        value = outputs[self.output]
        if isinstance(value, (list, tuple)):  # part-based outputs: average over parts
            return sum(self.module(v, targets) for v in value) / len(value)
        return self.module(value, targets)

    def ensure_optimizer(self) -> None:
        """Create the term's own optimizer once, if its module owns parameters."""
        if self.optimizer is None and hasattr(self.module, "make_optimizer"):
            self.optimizer = self.module.make_optimizer()


def build_loss_terms(specs: Sequence[Mapping[str, Any]], num_classes: int,
                     device: torch.device | str = "cpu") -> list[LossTerm]:
    """Instantiate ``[{name, weight, output, kwargs}]`` from the LOSSES registry."""
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
            module = LOSSES.build(name, num_classes=num_classes, **kwargs)
        except TypeError as err:
            raise TypeError(f"loss term '{name}': bad kwargs {dict(spec.get('kwargs') or {})}: "
                            f"{err}") from err
        seen[name] = seen.get(name, 0) + 1
        key = name if seen[name] == 1 else f"{name}_{seen[name]}"
        terms.append(LossTerm(name=name, weight=float(spec.get("weight", 1.0)),
                              output=spec.get("output") or "logits",
                              module=module.to(device), key=key,
                              warmup_epochs=float(warmup)))
    if not terms:
        raise ValueError("no loss terms: list at least one in loss.terms")
    return terms
