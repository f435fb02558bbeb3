"""The poly learning-rate schedule: values, per-iteration stepping by the engine, config hook."""
from __future__ import annotations

import pytest
import torch

from reid_ext.schedulers import PolyLR, build_lr_scheduler, is_per_iteration


def _optimizer(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def test_poly_values_match_the_formula():
    opt = _optimizer(0.1)
    sched = PolyLR(opt, max_iter=10, power=0.9)
    seen = []
    for _ in range(12):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [0.1 * max(0.0, 1 - i / 10) ** 0.9 for i in range(12)]
    assert seen == pytest.approx(expected, abs=1e-12)
    assert seen[5] == pytest.approx(0.1 * 0.5 ** 0.9)  # hand value: 0.05358867...
    assert seen[5] == pytest.approx(0.0535886731, rel=1e-8)
    assert seen[10] == 0.0 and seen[11] == 0.0


def test_poly_power_one_is_linear_and_state_round_trips():
    opt = _optimizer(1.0)
    sched = PolyLR(opt, max_iter=4, power=1.0)
    for _ in range(2):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)
    state = sched.state_dict()
    opt2 = _optimizer(1.0)
    resumed = PolyLR(opt2, max_iter=4, power=1.0)
    resumed.load_state_dict(state)
    opt2.step()
    resumed.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.25)


def test_builder_names_poly_and_defers_other_names_to_torchreid():
    sched = build_lr_scheduler(_optimizer(), "poly", iters_per_epoch=5, max_epoch=3, power=2.0)
    assert isinstance(sched, PolyLR) and sched.max_iter == 15 and is_per_iteration(sched)
    host = build_lr_scheduler(_optimizer(), "single_step", stepsize=2, gamma=0.1, max_epoch=3)
    assert isinstance(host, torch.optim.lr_scheduler.StepLR) and not is_per_iteration(host)
    with pytest.raises(ValueError, match="max_iter"):
        PolyLR(_optimizer(), max_iter=0)


def test_engine_steps_poly_per_iteration_and_not_per_epoch():
    from reid_ext.engine import ReidEngine

    class _DM:
        train_loader = None
        test_loader = {}
        num_train_pids = 2

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = PolyLR(opt, max_iter=4, power=1.0)
    engine = ReidEngine(_DM(), model, opt, sched,
                        loss_terms=[{"name": "softmax", "output": "logits"}], use_gpu=False)
    for _ in range(2):
        engine.step(model(torch.randn(4, 3)).sum(), opt, engine.loss_terms)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)
    engine.update_lr()  # the host's end-of-epoch call leaves a per-iteration schedule alone
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)


def test_config_names_poly():
    from reid_ext.config import load_config
    from reid_ext.runner import lr_scheduler_kwargs

    cfg = load_config(None, ["train.lr_scheduler", "poly", "train.poly_power", "0.5",
                             "train.max_epoch", "4"])

    class _DM:
        train_loader = [0] * 7

    kwargs = lr_scheduler_kwargs(cfg, _DM())
    sched = build_lr_scheduler(_optimizer(), **kwargs)
    assert isinstance(sched, PolyLR) and sched.max_iter == 28 and sched.power == 0.5
