"""Instrumentor for ONNX Runtime, registered as ``onnxruntime``.

Traces ``InferenceSession.run``. The span's feature summaries come from the
2-D numeric array in the input feed, and its confidence from an output of
class probabilities where the graph has one (see ``read_output``).
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

from otel_mlmon.instrumentation._auto import (
    ORIGINAL_ATTRIBUTE,
    FrameworkInstrumentor,
    MonitorMap,
    Patches,
    defining_class,
)
from otel_mlmon.package import _instruments_onnxruntime


def _traced_run(
    original: Callable[..., Any], monitors: MonitorMap
) -> Callable[..., Any]:
    from otel_mlmon.instrumentation._core import inside_prediction

    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        if inside_prediction():
            return original(self, *args, **kwargs)
        monitor = monitors.get(self)
        if monitor is None:
            return original(self, *args, **kwargs)
        feed = args[1] if len(args) > 1 else kwargs.get("input_feed")

        # ModelMonitor reads the first argument as the model's input, so
        # the feed goes first, and the session gets its own arguments.
        def call_session(_feed: Any) -> Any:
            return original(self, *args, **kwargs)

        return monitor.call("run", call_session, (feed,), {})

    functools.update_wrapper(run, original)
    setattr(run, ORIGINAL_ATTRIBUTE, original)
    return run


class OnnxRuntimeInstrumentor(FrameworkInstrumentor):
    """Traces ONNX Runtime inference sessions."""

    framework = "onnxruntime"
    requirements = _instruments_onnxruntime
    trigger_modules = ("onnxruntime",)

    def _patch(
        self, module: types.ModuleType, monitors: MonitorMap, patches: Patches
    ) -> None:
        owner = defining_class(module.InferenceSession, "run")
        if owner is None:
            raise AttributeError("onnxruntime.InferenceSession has no run method")
        patches.wrap(
            owner, "run", lambda original: _traced_run(original, monitors)
        )
