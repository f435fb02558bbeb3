"""Let mmpose 1.3.x import on top of ``mmcv-lite`` (mmcv without compiled ops).

mmpose imports some ``mmcv.ops`` names eagerly (``MultiScaleDeformableAttention`` for the
ED-Pose head, ``DeformConv2d`` ...), and ``mmcv.ops`` fails to import without mmcv's compiled
extension. Top-down heatmap and RTMPose models use none of those ops, so when (and only when)
``mmcv.ops`` cannot be imported, a stand-in module is put in its place: every name it is asked
for is a placeholder class that raises, naming the op, if a model really tries to build it.
"""
from __future__ import annotations

import sys
import types
from typing import Any


class _StandInOps(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def unavailable(*args: Any, **kwargs: Any) -> None:
            raise ImportError(
                f"mmcv.ops.{name} needs mmcv built with its compiled ops (mmcv-lite has none); "
                f"this model needs the full mmcv")

        placeholder = type(name, (), {"__init__": unavailable, "__call__": unavailable})
        setattr(self, name, placeholder)
        return placeholder


def ensure_mmcv_ops() -> bool:
    """Install the stand-in if ``mmcv.ops`` does not import; True when it was installed."""
    if "mmcv.ops" in sys.modules:
        return isinstance(sys.modules["mmcv.ops"], _StandInOps)
    try:
        import mmcv.ops  # noqa: F401
        return False
    except ImportError as err:
        if "_ext" not in str(err):
            raise
    for name in [n for n in sys.modules if n == "mmcv.ops" or n.startswith("mmcv.ops.")]:
        del sys.modules[name]
    sys.modules["mmcv.ops"] = _StandInOps("mmcv.ops", __doc__)
    import mmcv

    mmcv.ops = sys.modules["mmcv.ops"]
    return True
