"""The host adapter resolves torchreid in the PyPI layout and in the upstream layout."""
from __future__ import annotations

import sys
import textwrap

import pytest

from reid_ext.host import Host, HostNotFoundError


def test_pypi_layout_is_detected():
    h = Host("torchreid")
    assert h.layout == "pypi" and h.prefix == "torchreid.reid"
    assert h.Engine.__name__ == "Engine"
    assert callable(h.metrics.evaluate_rank)
    assert "resnet50" in h.model_factory()


@pytest.fixture
def fake_upstream(tmp_path, monkeypatch):
    """A package with upstream torchreid's layout (``pkg.models`` ...) re-exporting the real one."""
    root = tmp_path / "fake_upstream_torchreid"
    files = {
        "__init__.py": "",
        "models/__init__.py": """
            from torchreid.reid import models as _m
            build_model = _m.build_model
            globals()['__model_factory'] = dict(vars(_m)['__model_factory'])
        """,
        "data/__init__.py": """
            from torchreid.reid.data import ImageDataManager, register_image_dataset
        """,
        "data/datamanager.py": """
            from torchreid.reid.data.datamanager import ImageDataManager
            from fake_upstream_torchreid.data.sampler import build_train_sampler
        """,
        "data/sampler.py": """
            from torchreid.reid.data.sampler import build_train_sampler, AVAI_SAMPLERS
        """,
        "data/datasets/__init__.py": """
            from torchreid.reid.data import datasets as _d
            globals()['__image_datasets'] = dict(vars(_d)['__image_datasets'])
        """,
        "data/datasets/dataset.py":
            "from torchreid.reid.data.datasets.dataset import ImageDataset\n",
        "engine/__init__.py": "",
        "engine/engine.py": "from torchreid.reid.engine.engine import Engine\n",
        "metrics/__init__.py": "from torchreid.reid.metrics import evaluate_rank\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "fake_upstream_torchreid"
    for name in [m for m in sys.modules if m.startswith("fake_upstream_torchreid")]:
        del sys.modules[name]


def test_upstream_layout_is_detected_and_usable(fake_upstream):
    from reid_ext.registry import Registry

    h = Host(fake_upstream)
    assert h.layout == "upstream" and h.prefix == fake_upstream
    assert h.Engine.__name__ == "Engine"
    assert h.ImageDataset.__name__ == "ImageDataset"

    def factory(num_classes, pretrained=True):  # takes neither loss nor use_gpu
        return ("built", num_classes, pretrained)

    h.register_model("upstream_only_model", factory)
    h.register_model("upstream_only_model", factory)  # idempotent
    adapted = h.model_factory()["upstream_only_model"]
    assert adapted.__wrapped__ is factory
    # called as torchreid's build_model does: the host's extra arguments are dropped
    assert adapted(num_classes=3, loss="triplet", pretrained=False, use_gpu=True) == (
        "built", 3, False)
    with pytest.raises(ValueError, match="already has a model"):
        h.register_model("upstream_only_model", lambda num_classes: None)

    samplers = Registry("sampler")
    samplers.register("always_first", lambda data_source, **kw: [0] * len(data_source))
    h.install_sampler_hook(samplers)
    h.install_sampler_hook(samplers)
    hooked = h.module("data.datamanager").build_train_sampler
    assert hooked([("a", 0, 0, 0)] * 3, "always_first") == [0, 0, 0]
    assert hooked._reid_ext_original is h.original_build_train_sampler()
    assert not hasattr(hooked._reid_ext_original, "_reid_ext_original")


def test_missing_host_is_a_clear_error():
    with pytest.raises(HostNotFoundError, match="pip install"):
        Host("no_such_torchreid_package")
