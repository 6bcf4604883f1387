"""Instrumentor for PyTorch, registered as ``torch``.

Traces ``nn.Module.__call__`` of the outermost module: the submodules it
calls run inside its span and get none of their own. Only modules in eval
mode are traced, so training loops stay untouched, because serving code
calls ``model.eval()`` first.
"""

from __future__ import annotations

import functools
import importlib
import types
from collections.abc import Callable
from typing import Any

from otel_mlmon.instrumentation._auto import (
    ORIGINAL_ATTRIBUTE,
    FrameworkInstrumentor,
    MonitorMap,
    Patches,
)
from otel_mlmon.package import _instruments_torch


def _traced_call(
    original: Callable[..., Any], monitors: MonitorMap
) -> Callable[..., Any]:
    from otel_mlmon.instrumentation._core import inside_prediction

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if inside_prediction() or self.training:
            return original(self, *args, **kwargs)
        monitor = monitors.get(self)
        if monitor is None:
            return original(self, *args, **kwargs)
        return monitor.call(
            "forward", types.MethodType(original, self), args, kwargs
        )

    functools.update_wrapper(call, original)
    setattr(call, ORIGINAL_ATTRIBUTE, original)
    return call


class TorchInstrumentor(FrameworkInstrumentor):
    """Traces calls of PyTorch modules in eval mode."""

    framework = "torch"
    requirements = _instruments_torch
    trigger_modules = ("torch",)

    def _patch(
        self, module: types.ModuleType, monitors: MonitorMap, patches: Patches
    ) -> None:
        nn_module = importlib.import_module("torch.nn.modules.module").Module
        patches.wrap(
            nn_module,
            "__call__",
            lambda original: _traced_call(original, monitors),
        )
