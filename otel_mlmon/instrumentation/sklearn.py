"""Instrumentor for scikit-learn estimators, registered as ``sklearn``.

When ``sklearn.base`` is imported, the prediction methods of every existing
estimator class are traced, and a hook on
``BaseEstimator.__init_subclass__`` traces the classes created later, the
app's own estimators included. No sklearn submodule is imported for this:
classes are patched as the app's imports create them. Each method is
patched on the class that defines it, which may be a mixin such as
``LinearClassifierMixin``. Classes of xgboost and lightgbm are left to
their own instrumentors, so each can be turned off alone.
"""

from __future__ import annotations

import types
from typing import Any

from otel_mlmon.instrumentation._auto import (
    PREDICTION_METHODS,
    FrameworkInstrumentor,
    MonitorMap,
    Patches,
    all_subclasses,
    wrap_methods,
)
from otel_mlmon.package import _instruments_sklearn

_OWNED_ELSEWHERE = frozenset({"xgboost", "lightgbm"})


def _is_owned(cls: type) -> bool:
    return cls.__module__.partition(".")[0] not in _OWNED_ELSEWHERE


class SklearnInstrumentor(FrameworkInstrumentor):
    """Traces ``predict``, ``predict_proba``, ``predict_log_proba`` and
    ``decision_function`` of every scikit-learn estimator."""

    framework = "sklearn"
    requirements = _instruments_sklearn
    trigger_modules = ("sklearn.base",)

    def _patch(
        self, module: types.ModuleType, monitors: MonitorMap, patches: Patches
    ) -> None:
        base: type = module.BaseEstimator
        self._hook_subclass_creation(base, monitors, patches)
        wrap_methods(
            all_subclasses(base), PREDICTION_METHODS, monitors, patches, _is_owned
        )

    def _hook_subclass_creation(
        self, base: type, monitors: MonitorMap, patches: Patches
    ) -> None:
        own = base.__dict__.get("__init_subclass__")
        instrumentor = self
        # Typed as Any, because mypy cannot check super() on a class held
        # in a variable.
        owner: Any = base

        def init_subclass(cls: Any, /, **kwargs: Any) -> None:
            if own is None:
                super(owner, cls).__init_subclass__(**kwargs)
            else:
                own.__get__(None, cls)(**kwargs)
            if not instrumentor._active or instrumentor._failed:
                return
            try:
                wrap_methods(
                    [cls], PREDICTION_METHODS, monitors, patches, _is_owned
                )
            except Exception as error:  # pylint: disable=broad-except
                instrumentor.disable_after_failure(error)

        patches.replace(base, "__init_subclass__", classmethod(init_subclass))
