"""Deep mutual learning: two or more models trained together, each also learning from its peers.

Model ``i``'s loss is its own loss terms (built separately for each model, so parametrised
terms such as center loss are not shared) plus

* ``kl_weight * mean_{j != i} kl_towards(logits_i, logits_j, T)`` (Zhang et al., 2018), and
* ``metric_weight * mean_{j != i} metric_towards(D_i, D_j)`` with ``D`` the batch's pairwise
  distance matrix of the ``feats`` output (AlignedReID's metric mutual loss),

where the peer's side is detached, so each model's loss only trains that model. The engine
backpropagates the sum once and steps every optimizer. Each model's values are logged under
its own name (``model1/softmax``, ``model1/kl_mutual``, ...), unlike torchreid's DML project,
which logs model 1's loss under model 2's keys.

Evaluation ranks every model's embedding and their concatenation (each model's features
L2-normalised first when ``normalize_feature`` is set); the concatenation's rank-1 is what
``test()`` returns and what checkpoints record.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from reid_ext import host
from reid_ext.engine import ReidEngine, named_outputs
from reid_ext.losses.distance import check_metric, pairwise_distance_l2
from reid_ext.losses.mutual import kl_towards, metric_towards
from reid_ext.losses.terms import LossTerm

CONCAT = "concat"


class MutualEngine(ReidEngine):
    """Train ``models`` with their own loss terms plus KL and metric mutual losses.

    Args:
        datamanager: a torchreid ``ImageDataManager``.
        models, optimizers: one optimizer per model; ``schedulers`` likewise (or None).
        loss_terms: ``[{name, weight, output, target, kwargs}]`` specs, built once per model.
        kl_weight, temperature: weight and softmax temperature of the KL mutual term
            (0 disables it); it reads the ``logits`` output.
        metric_weight, mutual_metric: weight and distance (``euclidean`` | ``cosine``) of the
            metric mutual term (0 disables it); it reads the ``feats`` output.
        names: checkpoint/log names of the models (default ``model1``, ``model2``, ...).
        use_gpu, amp, checkpoint_freq, eval_protocol, config: as for :class:`ReidEngine`.
    """

    def __init__(
        self,
        datamanager: Any,
        models: Sequence[nn.Module],
        optimizers: Sequence[torch.optim.Optimizer],
        schedulers: Sequence[Any] | None = None,
        loss_terms: Sequence[Mapping[str, Any]] = (),
        kl_weight: float = 1.0,
        temperature: float = 1.0,
        metric_weight: float = 1.0,
        mutual_metric: str = "euclidean",
        names: Sequence[str] | None = None,
        use_gpu: bool = True,
        amp: bool = False,
        checkpoint_freq: int = 0,
        eval_protocol: str = "market",
        config: Any = None,
    ) -> None:
        models, optimizers = list(models), list(optimizers)
        schedulers = [None] * len(models) if schedulers is None else list(schedulers)
        names = [f"model{i + 1}" for i in range(len(models))] if names is None else list(names)
        _check_peers(models, optimizers, schedulers, names, loss_terms)
        if kl_weight < 0 or metric_weight < 0:
            raise ValueError(f"MutualEngine: kl_weight and metric_weight must be >= 0, got "
                             f"{kl_weight} and {metric_weight}")
        if temperature <= 0:
            raise ValueError(f"MutualEngine: temperature must be > 0, got {temperature}")
        super().__init__(datamanager, dict(zip(names, models)),
                         dict(zip(names, optimizers)), dict(zip(names, schedulers)),
                         loss_terms=loss_terms, use_gpu=use_gpu, amp=amp,
                         checkpoint_freq=checkpoint_freq, eval_protocol=eval_protocol,
                         config=config)
        self.peer_names = names
        self.peers = [self._models[name] for name in names]
        self.peer_terms = self.terms_by_model
        self.kl_weight = float(kl_weight)
        self.temperature = float(temperature)
        self.metric_weight = float(metric_weight)
        self.mutual_metric = check_metric(mutual_metric)

    # --- training ------------------------------------------------------------------------
    def forward_backward(self, data: Mapping[str, Any]) -> dict[str, float]:
        imgs, pids = self.parse_data_for_train(data)
        imgs, pids = imgs.to(self.device, non_blocking=True), pids.to(self.device)
        targets = self.loss_targets(data, pids)
        summary: dict[str, float] = {}
        with self.autocast():
            outputs = [named_outputs(model(imgs, **self.aux_inputs(data, model)))
                       for model in self.peers]
            totals = []
            for i, name in enumerate(self.peer_names):
                total, own = self.compute_loss_terms(outputs[i], targets, self.peer_terms[name])
                summary.update({f"{name}/{key}": value for key, value in own.items()})
                peers = [out for j, out in enumerate(outputs) if j != i]
                if self.kl_weight > 0:
                    kl = self.mutual_term(outputs[i], peers, "logits", self.kl_towards)
                    total = total + self.kl_weight * kl
                    summary[f"{name}/kl_mutual"] = kl.item()
                if self.metric_weight > 0:
                    metric = self.mutual_term(outputs[i], peers, "feats", self.metric_towards)
                    total = total + self.metric_weight * metric
                    summary[f"{name}/metric_mutual"] = metric.item()
                summary[f"{name}/loss"] = total.item()
                logits = outputs[i].get("logits")
                if isinstance(logits, torch.Tensor):
                    summary[f"{name}/acc"] = host.metrics.accuracy(
                        logits.detach().float(), pids)[0].item()
                totals.append(total)
        terms = [t for name in self.peer_names for t in self.peer_terms[name]]
        self.step(sum(totals), [self._optims[name] for name in self.peer_names], terms)
        return summary

    def kl_towards(self, logits: torch.Tensor, peer_logits: torch.Tensor) -> torch.Tensor:
        return kl_towards(logits.float(), peer_logits.float(), self.temperature)

    def metric_towards(self, feats: torch.Tensor, peer_feats: torch.Tensor) -> torch.Tensor:
        return metric_towards(pairwise_distance_l2(feats.float(), metric=self.mutual_metric),
                              pairwise_distance_l2(peer_feats.float(), metric=self.mutual_metric))

    @staticmethod
    def mutual_term(own: Mapping[str, Any], peers: Sequence[Mapping[str, Any]], key: str,
                    pull: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Mean over peers of ``pull(own[key], peer[key])``; part lists are paired and averaged."""
        if any(key not in out for out in (own, *peers)):
            raise KeyError(f"mutual learning reads the '{key}' output of every model, but a model "
                           f"returned only {sorted(own)}; set its weight to 0 to skip this term")
        values = []
        for peer in peers:
            mine, theirs = own[key], peer[key]
            if isinstance(mine, (list, tuple)):
                values.append(sum(pull(a, b) for a, b in zip(mine, theirs)) / len(mine))
            else:
                values.append(pull(mine, theirs))
        return sum(values) / len(values)

    def two_stepped_transfer_learning(self, epoch: int, fixbase_epoch: int, open_layers: Any,
                                      model: nn.Module | None = None) -> None:
        """The host's freeze-then-open schedule, applied to every peer."""
        for peer in [model] if model is not None else self.peers:
            super().two_stepped_transfer_learning(epoch, fixbase_epoch, open_layers, model=peer)

    # --- evaluation ----------------------------------------------------------------------
    def embedding_models(self) -> list[tuple[str, nn.Module]]:
        return list(zip(self.peer_names, self.peers))

    def feature_sets(self, query: dict[str, torch.Tensor], gallery: dict[str, torch.Tensor]
                     ) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """Each peer's features, then their concatenation (what ``test`` returns)."""
        sets = super().feature_sets(query, gallery)
        concat = (CONCAT, torch.cat([q for _, q, _ in sets], dim=1),
                  torch.cat([g for _, _, g in sets], dim=1))
        return [*sets, concat]


def _check_peers(models: list, optimizers: list, schedulers: list, names: list,
                 loss_terms: Sequence[Any]) -> None:
    if len(models) < 2:
        raise ValueError(f"MutualEngine needs at least two models, got {len(models)}")
    if not len(optimizers) == len(schedulers) == len(names) == len(models):
        raise ValueError(
            f"MutualEngine: one optimizer, scheduler and name per model; got {len(models)} "
            f"models, {len(optimizers)} optimizers, {len(schedulers)} schedulers, "
            f"{len(names)} names"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"MutualEngine: model names must be distinct, got {names}")
    if any(isinstance(t, LossTerm) for t in loss_terms):
        raise TypeError("MutualEngine: pass loss_terms as {name, weight, output, kwargs} specs; "
                        "each model gets its own instances")
