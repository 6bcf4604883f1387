"""Instrumentor for XGBoost, registered as ``xgboost``.

Traces ``Booster.predict``, ``Booster.inplace_predict`` and the prediction
methods of the scikit-learn-style classes (``XGBClassifier``,
``XGBRegressor``, ``XGBRanker`` and their subclasses).
``XGBClassifier.predict`` calls its booster inside its own span, and that
inner call gets no span of its own.
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
from otel_mlmon.package import _instruments_xgboost


def _is_xgboost(cls: type) -> bool:
    return cls.__module__.partition(".")[0] == "xgboost"


class XGBoostInstrumentor(FrameworkInstrumentor):
    """Traces XGBoost boosters and estimators."""

    framework = "xgboost"
    requirements = _instruments_xgboost
    trigger_modules = ("xgboost",)

    def _patch(
        self, module: types.ModuleType, monitors: MonitorMap, patches: Patches
    ) -> None:
        core = importlib.import_module("xgboost.core")
        wrap_methods(
            [core.Booster],
            ("predict", "inplace_predict"),
            monitors,
            patches,
            _is_xgboost,
        )
        estimators = importlib.import_module("xgboost.sklearn")
        wrap_methods(
            all_subclasses(estimators.XGBModel),
            PREDICTION_METHODS,
            monitors,
            patches,
            _is_xgboost,
        )
