"""Config: defaults, yaml merging, helpful unknown-key errors, loss-term derivation."""
from __future__ import annotations

import pytest

from reid_ext.config import ConfigError, load_config, loss_terms_from_config


def write(tmp_path, text):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_unknown_yaml_key_names_path_and_closest(tmp_path):
    path = write(tmp_path, "train:\n  max_epochs: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "unknown config key 'train.max_epochs'" in str(err.value)
    assert "did you mean 'train.max_epoch'" in str(err.value)
    assert str(path) in str(err.value)


def test_unknown_section_and_override(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'sampler'"):
        load_config(write(tmp_path, "samplr:\n  num_instances: 4\n"))
    with pytest.raises(ConfigError, match="'test.rerank'"):
        load_config(None, ["test.reranking", "True"])


def test_open_sections_take_any_key(tmp_path):
    path = write(tmp_path, "model:\n  kwargs:\n    num_slices: 4\n"
                           "data:\n  sources: [synthetic_person]\n  targets: [synthetic_person]\n"
                           "  options:\n    synthetic_person:\n      num_train_ids: 8\n")
    cfg = load_config(path, ["model.kwargs.dropout", "0.5"])
    assert cfg.model.kwargs.num_slices == 4 and cfg.model.kwargs.dropout == 0.5
    assert cfg.data.options.synthetic_person.num_train_ids == 8


def test_loss_terms_explicit_and_derived(tmp_path):
    path = write(tmp_path, "loss:\n  terms:\n    - {name: softmax, weight: 1.0}\n"
                           "    - {name: triplet, weight: 0.5, kwargs: {margin: 0.2}}\n"
                           "    - {name: center, weight: 0.1, target: pid}\n")
    terms = loss_terms_from_config(load_config(path))
    # outputs come from each loss's registration metadata ('reads'); targets default to pid
    assert terms == [
        {"name": "softmax", "weight": 1.0, "output": "logits", "target": "pid", "kwargs": {}},
        {"name": "triplet", "weight": 0.5, "output": "feats", "target": "pid",
         "kwargs": {"margin": 0.2}},
        {"name": "center", "weight": 0.1, "output": "feats", "target": "pid", "kwargs": {}},
    ]
    cfg = load_config(None, ["loss.name", "triplet", "loss.triplet.weight_x", "0.3"])
    derived = loss_terms_from_config(cfg)
    assert [(t["name"], t["weight"]) for t in derived] == [("triplet", 1.0), ("softmax", 0.3)]


def test_bad_loss_term_shape(tmp_path):
    with pytest.raises(ConfigError, match=r"loss.terms\[0\] has unknown keys \['wieght'\]"):
        load_config(write(tmp_path, "loss:\n  terms:\n    - {name: softmax, wieght: 1}\n"))


def test_missing_file_and_odd_overrides(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="KEY VALUE"):
        load_config(None, ["train.lr"])


def test_dataset_options_do_not_leak_between_configs():
    from reid_ext.data.options import get_dataset_options, set_dataset_options
    from reid_ext.runner import apply_dataset_options

    set_dataset_options("col780", data_dir="/elsewhere")
    apply_dataset_options(load_config(None, ["data.sources", "['synthetic_person']",
                                             "data.options.synthetic_person.num_train_ids", "8"]))
    assert get_dataset_options("synthetic_person") == {"num_train_ids": 8}
    assert get_dataset_options("col780") == {}
    apply_dataset_options(load_config(None))
    assert get_dataset_options("synthetic_person") == {}
