"""``warmup_epochs`` in a loss term's kwargs: the term's weight ramps from 0 over epochs."""
from __future__ import annotations

import math

import pytest
from test_engine import tiny_cfg
from tiny_models import TinyNet

import reid_ext  # noqa: F401
from reid_ext.losses.terms import build_loss_terms
from reid_ext.runner import build_engine

TERMS = ("loss.terms", "[{'name': 'softmax'}, "
         "{'name': 'triplet_hard', 'output': 'feats', 'kwargs': {'warmup_epochs': 2}}]")


def test_ramp_is_linear_then_flat():
    (term,) = build_loss_terms([{"name": "triplet_hard", "output": "feats",
                                 "kwargs": {"margin": 0.3, "warmup_epochs": 4}}], 5)
    assert term.module.margin == 0.3  # the other kwargs still reach the loss
    assert [term.ramp(p) for p in (0, 1, 2.5, 4, 9)] == [0.0, 0.25, 0.625, 1.0, 1.0]
    (plain,) = build_loss_terms([{"name": "softmax"}], 5)
    assert plain.ramp(0) == 1.0


def test_bad_warmup_is_a_clear_error():
    with pytest.raises(ValueError, match="warmup_epochs must be a number >= 0"):
        build_loss_terms([{"name": "softmax", "kwargs": {"warmup_epochs": -1}}], 5)


def test_engine_weighs_the_term_by_its_ramp(tmp_path):
    engine = build_engine(tiny_cfg(tmp_path, *TERMS), model=TinyNet(6))
    data = next(iter(engine.train_loader))
    engine.epoch, engine.batch_idx, engine.num_batches = 0, 0, 4
    first = engine.forward_backward(data)
    assert first["triplet_hard"] > 0
    assert math.isclose(first["loss"], first["softmax"], rel_tol=1e-6)  # ramp 0: CE alone
    engine.epoch, engine.batch_idx = 1, 2  # 1.5 epochs of 2: ramp 0.75
    later = engine.forward_backward(data)
    assert math.isclose(later["loss"], later["softmax"] + 0.75 * later["triplet_hard"],
                        rel_tol=1e-5)
