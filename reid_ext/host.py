"""The one module that knows where torchreid keeps things.

PyPI ``torchreid`` 0.2.5 nests everything under ``torchreid.reid.*``; upstream (GitHub)
torchreid uses ``torchreid.*``. :class:`Host` finds out which layout is installed and hands
the rest of reid_ext the pieces it needs. Everything else imports torchreid through here.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

from reid_ext.images import read_rgb_image
from reid_ext.registry import (
    DATASETS,
    MODELS,
    SAMPLERS,
    Registry,
    call_accepting,
    closest_first,
    same_object,
)

_SAMPLER_HOOK_FLAG = "_reid_ext_original"


class HostNotFoundError(ImportError):
    """torchreid is missing or has neither known layout."""


class Host:
    """Resolved torchreid modules for one installed layout.

    ``root`` is the top-level package name (``torchreid``; tests pass a fake one).
    ``prefix`` is ``root + '.reid'`` for the PyPI layout and ``root`` for upstream.
    """

    def __init__(self, root: str = "torchreid") -> None:
        self.root = root
        try:
            with warnings.catch_warnings():
                # reid_ext ranks with its own vectorised code, so the host's "no Cython,
                # slow python evaluation" warning does not apply.
                warnings.filterwarnings("ignore", message="Cython evaluation")
                importlib.import_module(root)
                importlib.import_module(f"{root}.reid.metrics" if _has_reid(root)
                                        else f"{root}.metrics")
        except ImportError as err:
            raise HostNotFoundError(
                f"reid_ext needs torchreid: pip install 'torchreid==0.2.5' (or the upstream "
                f"package); importing '{root}' failed: {err}"
            ) from err
        self.prefix, self.layout = self._detect(root)

    @staticmethod
    def _detect(root: str) -> tuple[str, str]:
        for prefix, layout in ((f"{root}.reid", "pypi"), (root, "upstream")):
            try:
                importlib.import_module(f"{prefix}.models")
                importlib.import_module(f"{prefix}.data.datamanager")
            except ImportError:
                continue
            return prefix, layout
        raise HostNotFoundError(
            f"'{root}' has neither the PyPI layout ({root}.reid.models) nor the upstream "
            f"layout ({root}.models)"
        )

    def module(self, name: str) -> ModuleType:
        """Import ``<prefix>.<name>``, e.g. ``module('data.sampler')``."""
        return importlib.import_module(f"{self.prefix}.{name}")

    # --- the pieces reid_ext uses -------------------------------------------------------
    @property
    def models(self) -> ModuleType:
        return self.module("models")

    @property
    def data(self) -> ModuleType:
        return self.module("data")

    @property
    def metrics(self) -> ModuleType:
        return self.module("metrics")

    @property
    def utils(self) -> ModuleType:
        return self.module("utils")

    @property
    def losses(self) -> ModuleType:
        return self.module("losses")

    @property
    def optim(self) -> ModuleType:
        return self.module("optim")

    @property
    def Engine(self) -> type:  # noqa: N802 - mirrors the host's class name
        return self.module("engine.engine").Engine

    @property
    def ImageDataManager(self) -> type:  # noqa: N802
        return self.module("data.datamanager").ImageDataManager

    @property
    def ImageDataset(self) -> type:  # noqa: N802
        return self.module("data.datasets.dataset").ImageDataset

    def model_factory(self) -> dict[str, Callable[..., Any]]:
        """torchreid's name -> model-constructor table (a module-level private dict)."""
        return vars(self.models)["__model_factory"]

    def image_dataset_table(self) -> dict[str, type]:
        return vars(self.module("data.datasets"))["__image_datasets"]

    def build_model(self, name: str, **kwargs: Any) -> Any:
        return self.models.build_model(name, **kwargs)

    # --- registration into the host ---------------------------------------------------
    def register_model(self, name: str, factory: Callable[..., Any]) -> None:
        """Add ``factory`` to torchreid's model table; re-registering the same one is a no-op.

        torchreid calls every factory with ``num_classes, loss, pretrained, use_gpu``; the
        table holds an adapter that passes on only what ``factory`` accepts, so reid_ext
        factories need not take (and ignore) the host's extra arguments.
        """
        table = self.model_factory()
        _check_free(table, name, factory, "model")
        table[name] = host_adapter(factory)

    def register_dataset(self, name: str, dataset_cls: type) -> None:
        """Register an image dataset through torchreid's ``register_image_dataset``."""
        table = self.image_dataset_table()
        if name in table:
            _check_free(table, name, dataset_cls, "dataset")
            table[name] = dataset_cls  # same class (maybe reloaded): refresh, don't duplicate
            return
        self.data.register_image_dataset(name, dataset_cls)

    def install_sampler_hook(self, samplers: Any) -> None:
        """Wrap torchreid's ``build_train_sampler`` so its callers accept reid_ext sampler names.

        The data manager imported the function by name, so the wrapper replaces it in every
        host module that holds it. Installing twice wraps once.
        """
        sampler_mod = self.module("data.sampler")
        original = getattr(sampler_mod.build_train_sampler, _SAMPLER_HOOK_FLAG, None)
        original = original or sampler_mod.build_train_sampler

        def build_train_sampler(data_source, train_sampler, batch_size=32, num_instances=4,
                                num_cams=1, num_datasets=1, **kwargs):
            if train_sampler in samplers:
                return samplers.get(train_sampler)(
                    data_source, batch_size=batch_size, num_instances=num_instances,
                    num_cams=num_cams, num_datasets=num_datasets, **kwargs,
                )
            known = list(sampler_mod.AVAI_SAMPLERS) + samplers.names()
            if train_sampler not in sampler_mod.AVAI_SAMPLERS:
                raise ValueError(
                    f"unknown train_sampler '{train_sampler}'; known samplers (closest "
                    f"first): {', '.join(closest_first(train_sampler, known))}"
                )
            return original(data_source, train_sampler, batch_size=batch_size,
                            num_instances=num_instances, num_cams=num_cams,
                            num_datasets=num_datasets, **kwargs)

        setattr(build_train_sampler, _SAMPLER_HOOK_FLAG, original)
        for mod_name in ("data.sampler", "data.datamanager"):
            mod = self.module(mod_name)
            if hasattr(mod, "build_train_sampler"):
                mod.build_train_sampler = build_train_sampler

    def install_image_reader(self, reader: Callable[[str], Any]) -> None:
        """Make the host's datasets read images with ``reader``.

        torchreid's ``read_image`` loops forever on a file it cannot decode; its datasets
        call the name imported into ``data.datasets.dataset``, which is replaced here (the
        original stays in ``utils.tools``). Installing twice is harmless.
        """
        self.module("data.datasets.dataset").read_image = reader

    def original_build_train_sampler(self) -> Callable[..., Any]:
        fn = self.module("data.sampler").build_train_sampler
        return getattr(fn, _SAMPLER_HOOK_FLAG, fn)


def host_adapter(factory: Callable[..., Any]) -> Callable[..., Any]:
    """``factory`` called with only the keyword arguments it accepts (see ``register_model``)."""

    @functools.wraps(factory)
    def adapted(*args: Any, **kwargs: Any) -> Any:
        return call_accepting(factory, *args, **kwargs)

    return adapted


def _check_free(table: dict[str, Any], name: str, obj: Any, kind: str) -> None:
    old = table.get(name)
    old = getattr(old, "__wrapped__", old)
    if old is not None and not same_object(old, obj):
        raise ValueError(
            f"torchreid already has a {kind} called '{name}' ({old!r}); reid_ext will not "
            f"replace it with {obj!r}"
        )


def _has_reid(root: str) -> bool:
    return importlib.util.find_spec(f"{root}.reid") is not None


_HOST: Host | None = None


def get_host() -> Host:
    """The process-wide :class:`Host` for the installed torchreid."""
    global _HOST
    if _HOST is None:
        _HOST = Host()
    return _HOST


def register_into_host(samplers: Registry = SAMPLERS) -> None:
    """Connect reid_ext's MODELS, DATASETS and SAMPLERS to torchreid; safe to call again.

    Models and datasets are pushed through registry listeners, so a component registered
    after ``import reid_ext`` reaches torchreid's ``build_model`` / ``ImageDataManager`` too.
    """
    host = get_host()
    MODELS.subscribe(host.register_model)
    DATASETS.subscribe(host.register_dataset)
    host.install_sampler_hook(samplers)
    host.install_image_reader(read_rgb_image)


def __getattr__(name: str) -> Any:
    """``host.Engine``, ``host.metrics`` ... forward to the process-wide :class:`Host`."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(get_host(), name)
