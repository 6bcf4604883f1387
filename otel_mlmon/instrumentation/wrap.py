"""wrap_model and unwrap_model: per-object instrumentation through a proxy.

A proxy is used, not in-place patching, so the caller's model object stays
untouched and picklable. The proxy reports the model's class, so
``isinstance`` holds; attribute reads, writes and item access pass through.
Pickling or cloning the proxy yields the bare model, because tracer and
meter providers belong to the running process.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from collections.abc import Sequence
from typing import Any

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from otel_mlmon.baseline import Baseline
from otel_mlmon.config import MonitorConfig
from otel_mlmon.feedback.store import PredictionStore
from otel_mlmon.instrumentation._core import ModelMonitor

_logger = logging.getLogger(__name__)

TRACED_METHODS = frozenset(
    {"predict", "predict_proba", "predict_log_proba", "decision_function"}
)
"""Methods of a wrapped model that run inside a prediction span."""

_MODEL = "_otel_mlmon_model"
_MONITOR = "_otel_mlmon_monitor"


class InstrumentedModel:
    """A proxy that traces a model's prediction methods.

    ``type()`` of the proxy is this class, while ``__class__`` and so
    ``isinstance`` report the model's class. Create it with
    :func:`wrap_model`.
    """

    __slots__ = (_MODEL, _MONITOR, "__weakref__")

    def __init__(self, model: Any, monitor: ModelMonitor) -> None:
        object.__setattr__(self, _MODEL, model)
        object.__setattr__(self, _MONITOR, monitor)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # noqa: D105
        return type(object.__getattribute__(self, _MODEL))

    def __getattr__(self, name: str) -> Any:
        model = object.__getattribute__(self, _MODEL)
        value = getattr(model, name)
        if name not in TRACED_METHODS or not callable(value):
            return value
        monitor: ModelMonitor = object.__getattribute__(self, _MONITOR)
        return monitor.traced_method(name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(object.__getattribute__(self, _MODEL), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(object.__getattribute__(self, _MODEL), name)

    def __dir__(self) -> list[str]:
        return dir(object.__getattribute__(self, _MODEL))

    def __repr__(self) -> str:
        return repr(object.__getattribute__(self, _MODEL))

    def __reduce_ex__(self, protocol: Any) -> Any:
        return object.__getattribute__(self, _MODEL).__reduce_ex__(protocol)

    def __copy__(self) -> InstrumentedModel:
        model = copy.copy(object.__getattribute__(self, _MODEL))
        return type(self)(model, object.__getattribute__(self, _MONITOR))

    def __deepcopy__(self, memo: dict[int, Any]) -> InstrumentedModel:
        model = copy.deepcopy(object.__getattribute__(self, _MODEL), memo)
        return type(self)(model, object.__getattribute__(self, _MONITOR))


def _forward(name: str) -> Any:
    def special(self: InstrumentedModel, *args: Any) -> Any:
        model = object.__getattribute__(self, _MODEL)
        return getattr(model, name)(*args)

    special.__name__ = name
    return special


_FORWARDED = ("__len__", "__iter__", "__getitem__", "__contains__", "__bool__")
_proxy_classes: dict[type, type] = {}


def _proxy_class(model_type: type) -> type:
    """Return the proxy class for a model class.

    Python looks special methods up on the type, so ``len()``, iteration
    and indexing work only if the proxy class defines them. It defines
    exactly those the model's class has (a Pipeline has ``__len__``, most
    estimators do not), so ``bool()`` and ``hasattr`` match the model.
    """
    found = _proxy_classes.get(model_type)
    if found is None:
        methods = {
            name: _forward(name)
            for name in _FORWARDED
            if hasattr(model_type, name)
        }
        methods["__slots__"] = ()
        found = type("InstrumentedModel", (InstrumentedModel,), methods)
        if len(_proxy_classes) < 256:
            _proxy_classes[model_type] = found
    return found


def wrap_model(
    model: Any,
    *,
    name: str | None = None,
    version: str | None = None,
    baseline: Baseline | str | None = None,
    feature_names: Sequence[str] | None = None,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    config: MonitorConfig | None = None,
    feedback_store: PredictionStore | str | os.PathLike[str] | None = None,
) -> Any:
    """Return a proxy of ``model`` whose prediction calls are traced.

    ``predict``, ``predict_proba``, ``predict_log_proba`` and
    ``decision_function`` are traced where the model has them; ``hasattr``
    on the proxy matches the model. Wrapping a proxy again warns and returns
    it unchanged.

    Args:
        model: A fitted model with any of the traced methods.
        name: Model name on spans and metrics; the class name by default.
        version: Model version; ``"unknown"`` by default.
        baseline: A :class:`Baseline` or the path of a saved one, to detect
            drift and out-of-range inputs.
        feature_names: Names of the columns of array and list inputs.
        tracer_provider: The global tracer provider by default.
        meter_provider: The global meter provider by default.
        config: Settings; read from ``OTEL_MLMON_*`` variables by default.
        feedback_store: A :class:`~otel_mlmon.feedback.PredictionStore` or
            the path of its SQLite file, to keep each row's prediction for
            labels sent later; ``config.feedback_db`` by default. A file
            that cannot be opened is logged as an error, and the model
            serves predictions without feedback.

    Raises:
        ConfigError: A setting or variable is invalid.
        BaselineError: The baseline file cannot be read.
        TypeError: The model has none of the traced methods.
    """
    if isinstance_proxy(model):
        warnings.warn(
            "wrap_model: the model is already wrapped; returning it as is",
            stacklevel=2,
        )
        return model
    if not any(callable(getattr(model, m, None)) for m in TRACED_METHODS):
        raise TypeError(
            f"Cannot wrap {type(model).__qualname__}: it has none of the "
            f"methods {', '.join(sorted(TRACED_METHODS))}"
        )
    settings = config if config is not None else MonitorConfig.from_env()
    if isinstance(baseline, str):
        baseline = Baseline.load(baseline)
    monitor = ModelMonitor(
        model,
        name=name or type(model).__name__,
        version=version or "unknown",
        framework=framework_of(model),
        config=settings,
        baseline=baseline,
        feature_names=feature_names,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        feedback_store=feedback_store,
    )
    proxy: InstrumentedModel = _proxy_class(type(model))(model, monitor)
    return proxy


def unwrap_model(model: Any) -> Any:
    """Return the model inside a proxy from :func:`wrap_model`, or ``model``."""
    if isinstance_proxy(model):
        return object.__getattribute__(model, _MODEL)
    return model


def monitor_of(model: Any) -> ModelMonitor | None:
    """Return the monitor of a wrapped model, or None for a bare one."""
    if isinstance_proxy(model):
        monitor: ModelMonitor = object.__getattribute__(model, _MONITOR)
        return monitor
    return None


def isinstance_proxy(model: Any) -> bool:
    """Tell whether ``model`` is a proxy from :func:`wrap_model`."""
    return issubclass(type(model), InstrumentedModel)


def framework_of(model: Any) -> str:
    """Return the framework name of a model, from its class's module."""
    root = type(model).__module__.split(".")[0]
    return {"sklearn": "sklearn", "torch": "torch"}.get(root, root)
