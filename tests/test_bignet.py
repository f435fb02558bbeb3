"""BigNet / SliceNet1 / SliceNet2: shapes, unit-norm embeddings, slicing, errors, registration."""
from __future__ import annotations

import pytest
import torch

from reid_ext.models.bignet import (
    BigNet,
    SliceNet1,
    SliceNet2,
    bignet,
    load_local_weights,
    slicenet1,
    slicenet2,
)


def _image(batch: int = 2, height: int = 128, width: int = 48) -> torch.Tensor:
    return torch.randn(batch, 3, height, width)


def test_bignet_stage_shapes_follow_the_table():
    model = BigNet(num_classes=5).eval()
    trunk = model.trunk
    layers = {
        "conv1": trunk.stem[0], "conv2": trunk.stem[1], "pool": trunk.stage1[0],
        "res32a": trunk.stage1[1], "res32b": trunk.stage1[2],
        "res64a": trunk.stage2[0], "res64b": trunk.stage2[1],
        "res128a": trunk.stage3[0], "res128b": trunk.stage3[1], "dense": model.dense,
    }
    seen: dict[str, tuple[int, ...]] = {}
    for name, layer in layers.items():
        layer.register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, tuple(out.shape[1:]))
        )
    model(_image())
    assert seen == {
        "conv1": (32, 128, 48), "conv2": (32, 128, 48), "pool": (32, 64, 24),
        "res32a": (32, 64, 24), "res32b": (32, 64, 24),
        "res64a": (64, 32, 12), "res64b": (64, 32, 12),
        "res128a": (128, 16, 6), "res128b": (128, 16, 6), "dense": (128,),
    }
    assert trunk.output_shape == (128, 16, 6)


@pytest.mark.parametrize("build", [bignet, slicenet1, slicenet2])
def test_embeddings_are_unit_norm_in_eval_and_train(build):
    model = build(num_classes=7)
    x = _image(4)
    model.eval()
    emb = model(x)
    assert emb.shape == (4, 128)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(4))
    model.train()
    out = model(x)
    assert set(out) == {"logits", "feats"} and out["logits"].shape == (4, 7)
    torch.testing.assert_close(out["feats"].norm(dim=1), torch.ones(4))
    # the logits are the model's cosine-softmax head applied to the embedding
    torch.testing.assert_close(out["logits"], model.classifier(out["feats"]))


def test_training_reaches_every_parameter():
    model = slicenet1(num_classes=3, num_slices=2)
    out = model.train()(_image(4))
    torch.nn.functional.cross_entropy(out["logits"], torch.tensor([0, 1, 2, 0])).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert no_grad == []


@pytest.mark.parametrize("share_weights", [False, True])
def test_slicenet1_slices_tile_the_image(share_weights):
    model = SliceNet1(num_classes=3, num_slices=4, share_weights=share_weights).eval()
    taken: list[torch.Tensor] = []
    for trunk in model.trunks:
        trunk.register_forward_pre_hook(lambda _m, args: taken.append(args[0]))
    x = _image(2)
    model(x)
    bands = taken if not share_weights else list(taken[0].chunk(4, dim=0))
    assert len(bands) == 4
    torch.testing.assert_close(torch.cat(bands, dim=2), x, rtol=0, atol=0)


@pytest.mark.parametrize("share_weights", [False, True])
def test_slicenet1_slice_output_depends_only_on_its_rows(share_weights):
    model = SliceNet1(num_classes=3, num_slices=4, share_weights=share_weights).eval()
    x = _image(2).requires_grad_(True)
    rows = 128 // 4
    for k in range(4):
        (grad,) = torch.autograd.grad(model.slice_embeddings(x)[k].sum(), x)
        row_energy = grad.abs().sum(dim=(0, 1, 3))
        inside = torch.zeros(128, dtype=torch.bool)
        inside[k * rows:(k + 1) * rows] = True
        assert (row_energy[~inside] == 0).all()
        assert (row_energy[inside] > 0).all()  # every row of the band is used


def test_slicenet2_slices_partition_the_feature_map():
    model = SliceNet2(num_classes=3, num_slices=4).eval()
    feature_map = model.trunk(_image(2)).detach().requires_grad_(True)
    assert feature_map.shape[1:] == (128, 16, 6)
    for k in range(4):
        (grad,) = torch.autograd.grad(
            model.slice_embeddings_from_map(feature_map)[k].sum(), feature_map
        )
        row_energy = grad.abs().sum(dim=(0, 1, 3))
        inside = torch.zeros(16, dtype=torch.bool)
        inside[4 * k:4 * (k + 1)] = True
        assert (row_energy[~inside] == 0).all() and (row_energy[inside] > 0).all()
    # and the model's embedding is exactly the normalised concatenation of the bands
    x = _image(2)
    raw = torch.cat(model.slice_embeddings_from_map(model.trunk(x)), dim=1)
    expected = torch.nn.functional.normalize(model.embedding_norm(raw), dim=1)
    torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize(
    ("build", "k", "height"), [(slicenet1, 3, "128"), (slicenet1, 5, "128"),
                               (slicenet2, 3, "16"), (slicenet2, 32, "16")],
)
def test_slice_count_that_does_not_divide_the_height_is_rejected(build, k, height):
    with pytest.raises(ValueError, match=rf"num_slices={k} does not divide .* height {height}"):
        build(num_classes=3, num_slices=k)


def test_wrong_input_size_names_expected_and_received():
    model = bignet(num_classes=3)
    with pytest.raises(ValueError, match=r"expects input \[B, 3, 128, 48\].*\[2, 3, 256, 128\]"):
        model(torch.randn(2, 3, 256, 128))


def test_custom_input_size():
    model = slicenet2(num_classes=3, height=256, width=128, num_slices=8).eval()
    assert model.trunk.output_shape == (128, 32, 16)
    assert model(_image(1, 256, 128)).shape == (1, 128)


def test_pretrained_path_loads_weights_and_keeps_a_new_classifier(tmp_path):
    source = bignet(num_classes=5).eval()
    path = tmp_path / "bignet.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    same = bignet(num_classes=5, pretrained=str(path)).eval()
    x = _image(3)
    torch.testing.assert_close(same(x), source(x))
    other = bignet(num_classes=9, pretrained=str(path)).eval()  # new class count
    torch.testing.assert_close(other(x), source(x))
    assert other.classifier.weight.shape == (9, 128)
    assert not load_local_weights(bignet(num_classes=5), True)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        bignet(num_classes=5, pretrained=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="do not fit SliceNet2"):
        slicenet2(num_classes=5, pretrained=str(path))


def test_torchreid_build_model_knows_the_models():
    import reid_ext  # noqa: F401  (registers the models in torchreid)
    from reid_ext import host

    model = host.build_model("slicenet2", num_classes=10)
    assert isinstance(model, SliceNet2) and model.classifier.num_classes == 10
    model = host.build_model("slicenet1", num_classes=4, loss="triplet", use_gpu=False)
    assert isinstance(model, SliceNet1)
