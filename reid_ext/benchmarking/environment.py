"""The software and hardware a benchmark ran on, for the header of its report."""
from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

import torch


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def reid_ext_version() -> str:
    """The imported package's version (it may run from a source tree, not an install)."""
    try:
        import reid_ext

        return getattr(reid_ext, "__version__", "unknown")
    except Exception as err:  # a broken import must not lose the benchmark
        return f"unavailable ({type(err).__name__})"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{cpu_name()}"


def collect_environment(device: torch.device, cpu_threads: int = 0) -> dict[str, Any]:
    """Versions, device and thread counts as a flat, json-friendly mapping."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": package_version("torchvision"),
        "torchreid": package_version("torchreid"),
        "reid_ext": reid_ext_version(),
        "device": device_description(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": cpu_threads or torch.get_num_threads(),
    }
