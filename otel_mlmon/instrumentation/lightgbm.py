"""Instrumentor for LightGBM, registered as ``lightgbm``.

Traces ``Booster.predict`` and the prediction methods of
``LGBMClassifier``, ``LGBMRegressor``, ``LGBMRanker`` and their subclasses.
Their inner booster calls get no span of their own.
"""

from __future__ import annotations

import importlib
import types

from otel_mlmon.instrumentation._auto import (
    PREDICTION_METHODS,
    FrameworkInstrumentor,
    MonitorMap,
    Patches,
    all_subclasses,
    wrap_methods,
)
from otel_mlmon.package import _instruments_lightgbm


def _is_lightgbm(cls: type) -> bool:
    return cls.__module__.partition(".")[0] == "lightgbm"


class LightGBMInstrumentor(FrameworkInstrumentor):
    """Traces LightGBM boosters and estimators."""

    framework = "lightgbm"
    requirements = _instruments_lightgbm
    trigger_modules = ("lightgbm",)

    def _patch(
        self, module: types.ModuleType, monitors: MonitorMap, patches: Patches
    ) -> None:
        basic = importlib.import_module("lightgbm.basic")
        wrap_methods(
            [basic.Booster], ("predict",), monitors, patches, _is_lightgbm
        )
        estimators = importlib.import_module("lightgbm.sklearn")
        wrap_methods(
            all_subclasses(estimators.LGBMModel),
            PREDICTION_METHODS,
            monitors,
            patches,
            _is_lightgbm,
        )
