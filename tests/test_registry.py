"""Registries: decorator API, helpful unknown-name errors, idempotent host registration."""
from __future__ import annotations

import importlib

import pytest
import torch

import reid_ext
from reid_ext import host
from reid_ext.registry import LOSSES, Registry, UnknownNameError


def test_unknown_name_lists_closest_first():
    reg = Registry("model")
    for name in ("resnet50_bnneck", "osnet", "bignet"):
        reg.register(name, object())
    with pytest.raises(UnknownNameError) as err:
        reg.get("resnet50_bneck")
    message = str(err.value)
    assert "unknown model 'resnet50_bneck'" in message
    listed = message.split("closest first): ")[1].split(", ")
    assert listed[0] == "resnet50_bnneck" and sorted(listed) == sorted(reg.names())


def test_conflicting_registration_is_an_error_but_same_object_is_not():
    reg = Registry("loss")

    @reg.register("a")
    def first():
        return 1

    reg.register("a", first)  # same object again: no-op
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", lambda: 2)
    assert reg.get("a") is first and len(reg) == 1


def test_models_reach_torchreids_factory():
    model = host.models.build_model("resnet18_bnneck", num_classes=7, pretrained=False)
    model.eval()
    assert model(torch.rand(2, 3, 64, 32)).shape == (2, 512)
    assert "resnet18_bnneck" in host.get_host().model_factory()


def test_import_twice_and_reload_register_nothing_twice():
    table = host.get_host().model_factory()
    datasets = host.get_host().image_dataset_table()
    n_models, n_datasets = len(table), len(datasets)
    importlib.import_module("reid_ext")
    reid_ext.register_into_host()
    importlib.reload(importlib.import_module("reid_ext.models.bnneck"))
    importlib.reload(reid_ext)
    assert len(table) == n_models and len(datasets) == n_datasets
    # the sampler hook wraps the host's original, never its own wrapper
    original = host.get_host().original_build_train_sampler()
    assert not hasattr(original, "_reid_ext_original")
    hooked = host.module("data.datamanager").build_train_sampler
    assert hooked._reid_ext_original is original


def test_unknown_sampler_name_names_the_closest():
    build = host.module("data.datamanager").build_train_sampler
    with pytest.raises(ValueError, match="RandomIdentitySampler"):
        build([("a", 0, 0, 0)], "RandomIdentitySamplr")


def test_unknown_model_name_in_reid_ext_factory():
    from reid_ext.models import build_model

    with pytest.raises(UnknownNameError, match="resnet18_bnneck"):
        build_model("resnet18_bnnek", num_classes=3)


def test_host_datamanager_takes_reid_ext_dataset_and_sampler_names(tmp_path):
    from collections import Counter

    from reid_ext.data.options import set_dataset_options

    set_dataset_options("synthetic_person", num_train_ids=6, num_test_ids=3,
                        images_per_id_per_camera=2, num_cameras=2)
    try:
        dm = host.ImageDataManager(root=str(tmp_path), sources="synthetic_person", height=64,
                                   width=32, batch_size_train=8, workers=0, use_gpu=False,
                                   train_sampler="pk", num_instances=2)
    finally:
        set_dataset_options("synthetic_person")
    assert dm.num_train_pids == 6
    batch = next(iter(dm.train_loader))
    counts = Counter(batch["pid"].tolist())
    assert len(counts) == 4 and set(counts.values()) == {2}


def test_metadata_travels_with_the_registration():
    reg = Registry("loss")
    reg.register("ce", lambda: None, reads="logits")
    assert reg.meta("ce") == {"reads": "logits"}
    with pytest.raises(UnknownNameError):
        reg.meta("nope")
    assert LOSSES.meta("softmax")["reads"] == "logits"
    assert LOSSES.meta("triplet_hard")["reads"] == "feats"


def test_build_offers_context_only_to_parameters_named_in_the_signature():
    reg = Registry("loss")
    seen = {}

    @reg.register("needs_classes")
    def needs_classes(num_classes, margin=0.3):
        seen["needs"] = (num_classes, margin)

    @reg.register("catch_all")
    def catch_all(margin=0.3, **kwargs):
        seen["catch_all"] = (margin, kwargs)

    reg.build("needs_classes", context={"num_classes": 7, "use_gpu": True}, margin=0.1)
    reg.build("catch_all", context={"num_classes": 7}, margin=0.2, extra=1)
    assert seen == {"needs": (7, 0.1), "catch_all": (0.2, {"extra": 1})}
    with pytest.raises(TypeError, match="marginn"):  # the user's own kwargs are not filtered
        reg.build("needs_classes", context={"num_classes": 7}, marginn=0.1)


def test_listeners_hear_past_and_future_registrations_once():
    reg = Registry("model")
    reg.register("old", object())
    heard = []

    def listener(name, obj):
        heard.append(name)

    reg.subscribe(listener)
    reg.subscribe(listener)  # subscribing twice hears nothing twice
    reg.register("new", object())
    assert heard == ["old", "new"]
