"""Machinery shared by the per-framework instrumentors of the launcher.

Each instrumentor patches methods on framework classes, so a model object
the app creates needs no wrapping. The first traced call of a model object
creates its :class:`ModelMonitor`. Monitors are kept in a map of weak
references keyed by the object's identity, so each model keeps its own
drift windows, and a model that is garbage-collected takes its monitor
with it.

Patching waits for the framework's own import (a post-import hook), so
start-up never pays for importing a framework the app does not use. For the
same reason this module imports the core (and so numpy) only when a
framework is patched.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import types
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import wrapt
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from otel_mlmon import environment_variables as env
from otel_mlmon.config import ConfigError, MonitorConfig

if TYPE_CHECKING:
    from otel_mlmon.baseline import Baseline
    from otel_mlmon.instrumentation._core import ModelMonitor

_logger = logging.getLogger(__name__)

ORIGINAL_ATTRIBUTE = "__otel_mlmon_original__"
"""Attribute of a patched method that stores the method it replaced."""

PREDICTION_METHODS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
)
"""Estimator methods traced, the same ones that wrap_model traces."""

_ABSENT = object()
_DEFAULT_KEY = "*"
_MAX_UNTRACEABLE_LOGS = 8


def parse_per_class(text: str | None) -> tuple[str | None, dict[str, str]]:
    """Parse a per-class setting into a default and per-class values.

    ``"value"`` applies to every class. ``"A=x,B=y,*=z"`` gives class ``A``
    the value ``x``, class ``B`` the value ``y`` and any other class ``z``.
    The mapping form is used when every comma-separated entry starts with a
    class name (a Python identifier) or ``*``, followed by ``=``. So a
    single value such as a path needs the form ``*=value`` only when it
    starts like such an entry.
    """
    if text is None or not text.strip():
        return None, {}
    entries = [entry.strip() for entry in text.split(",") if entry.strip()]
    keys = [entry.partition("=")[0].strip() for entry in entries]
    if not all(_is_class_entry(entry) for entry in entries):
        return text.strip(), {}
    values = {
        key: entry.partition("=")[2].strip() for entry, key in zip(entries, keys)
    }
    return values.pop(_DEFAULT_KEY, None), values


def _is_class_entry(entry: str) -> bool:
    key = entry.partition("=")[0].strip()
    return "=" in entry and (key == _DEFAULT_KEY or key.isidentifier())


def _read_per_class(
    environ: Mapping[str, str], variable: str
) -> tuple[str | None, dict[str, str]]:
    """Parse a per-class variable, warning when its entries mix both forms.

    ``"A=x,B"`` is read as one value for every model, because ``B`` is not
    a ``ClassName=value`` entry. That is almost always a typo.
    """
    text = environ.get(variable)
    setting = parse_per_class(text)
    if text is None or setting[1] or setting[0] is None:
        return setting
    entries = [entry.strip() for entry in text.split(",") if entry.strip()]
    if any(_is_class_entry(entry) for entry in entries):
        _logger.warning(
            "%s=%r mixes ClassName=value entries with other entries, so the "
            "whole value applies to every model; write each entry as "
            "ClassName=value, or *=value for the other classes",
            variable,
            text,
        )
    return setting


class ModelIdentity:
    """Name, version and baseline of models the app never wrapped.

    Read from ``OTEL_MLMON_MODEL_NAME``, ``OTEL_MLMON_MODEL_VERSION`` and
    ``OTEL_MLMON_BASELINE``, each either one value for every model or
    ``ClassName=value`` entries (see :func:`parse_per_class`).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        source = os.environ if environ is None else environ
        self._names = _read_per_class(source, env.OTEL_MLMON_MODEL_NAME)
        self._versions = _read_per_class(source, env.OTEL_MLMON_MODEL_VERSION)
        self._baselines = _read_per_class(source, env.OTEL_MLMON_BASELINE)
        self._loaded: dict[str, Baseline | None] = {}
        self._lock = threading.Lock()

    def name_for(self, model: Any) -> str:
        return _lookup(self._names, model) or type(model).__name__

    def version_for(self, model: Any) -> str:
        return _lookup(self._versions, model) or "unknown"

    def baseline_for(self, model: Any) -> Baseline | None:
        """Load the model's baseline once per path; None when it fails.

        A baseline that cannot be read is logged at WARNING once per path,
        and the model is traced without drift detection, because raising in
        the middle of a request would break the app.
        """
        path = _lookup(self._baselines, model)
        if path is None:
            return None
        from otel_mlmon.baseline import Baseline, BaselineError

        with self._lock:
            if path not in self._loaded:
                try:
                    self._loaded[path] = Baseline.load(path)
                except (BaselineError, OSError, ValueError) as error:
                    _logger.warning(
                        "otel_mlmon could not load the baseline %s from %s "
                        "for %s, so its drift is not checked: %s",
                        path,
                        env.OTEL_MLMON_BASELINE,
                        type(model).__name__,
                        error,
                    )
                    self._loaded[path] = None
            return self._loaded[path]


def _lookup(setting: tuple[str | None, dict[str, str]], model: Any) -> str | None:
    default, per_class = setting
    return per_class.get(type(model).__name__, default)


class MonitorMap:
    """One :class:`ModelMonitor` per model object, held weakly.

    Keyed by identity, not equality, because two equal models still need
    their own drift windows. A model that cannot be weakly referenced is
    called untraced, and that is logged.
    """

    def __init__(
        self,
        framework: str,
        config: MonitorConfig,
        identity: ModelIdentity,
        tracer_provider: TracerProvider | None,
        meter_provider: MeterProvider | None,
    ) -> None:
        self.framework = framework
        self._config = config
        self._identity = identity
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._monitors: dict[int, tuple[weakref.ref[Any], ModelMonitor | None]] = {}
        self._lock = threading.Lock()
        self._untraceable: set[str] = set()

    def get(self, model: Any) -> ModelMonitor | None:
        """Return the monitor of ``model``, created on first use."""
        entry = self._monitors.get(id(model))
        if entry is not None and entry[0]() is model:
            return entry[1]
        with self._lock:
            entry = self._monitors.get(id(model))
            if entry is not None and entry[0]() is model:
                return entry[1]
            from otel_mlmon.instrumentation._core import ModelMonitor

            key = id(model)
            try:
                reference = weakref.ref(model, lambda _: self._forget(key))
            except TypeError:
                self._log_untraceable(model)
                return None
            monitor: ModelMonitor | None
            try:
                monitor = ModelMonitor(
                    model,
                    name=self._identity.name_for(model),
                    version=self._identity.version_for(model),
                    framework=self.framework,
                    config=self._config,
                    baseline=self._identity.baseline_for(model),
                    tracer_provider=self._tracer_provider,
                    meter_provider=self._meter_provider,
                )
            except Exception as error:  # pylint: disable=broad-except
                # The model's call must go on, untraced. None is kept for
                # the model, so the failure is not retried on every call.
                self._log_unmonitored(model, error)
                monitor = None
            else:
                # The monitor must not keep its model alive, or the map
                # entry would never be dropped.
                monitor.model = weakref.proxy(model)
            self._monitors[key] = (reference, monitor)
            return monitor

    def __len__(self) -> int:
        return len(self._monitors)

    def _forget(self, key: int) -> None:
        self._monitors.pop(key, None)

    def _log_unmonitored(self, model: Any, error: Exception) -> None:
        # Imported here: _redact imports numpy, which start-up must not.
        from otel_mlmon._redact import redact_message

        kind = type(model).__qualname__
        key = f"monitor:{kind}"
        if key in self._untraceable or len(self._untraceable) > _MAX_UNTRACEABLE_LOGS:
            return
        self._untraceable.add(key)
        _logger.warning(
            "otel_mlmon failed to set up monitoring for %s objects, so they "
            "are not traced; their predictions go on untouched: %s: %s",
            kind,
            type(error).__name__,
            redact_message(str(error)),
        )

    def _log_untraceable(self, model: Any) -> None:
        kind = type(model).__qualname__
        if kind in self._untraceable or len(self._untraceable) > _MAX_UNTRACEABLE_LOGS:
            return
        self._untraceable.add(kind)
        _logger.warning(
            "otel_mlmon cannot trace %s objects, because they do not support "
            "weak references; wrap them with wrap_model instead",
            kind,
        )


class Patches:
    """Class attributes replaced by an instrumentor, to put back exactly."""

    def __init__(self) -> None:
        self._originals: list[tuple[type, str, Any]] = []
        self._lock = threading.RLock()

    def replace(self, owner: type, name: str, replacement: Any) -> None:
        """Set ``owner.name`` to ``replacement``, remembering the original."""
        with self._lock:
            original = owner.__dict__.get(name, _ABSENT)
            setattr(owner, name, replacement)
            self._originals.append((owner, name, original))

    def wrap(
        self, owner: type, name: str, make: Callable[[Any], Any]
    ) -> bool:
        """Replace ``owner.name`` by ``make(original)`` unless already done.

        Only a method that ``owner`` itself defines is wrapped, so a method
        inherited from a base class is wrapped once, on that base.
        """
        with self._lock:
            original = owner.__dict__.get(name, _ABSENT)
            if original is _ABSENT or is_patched(original):
                return False
            self.replace(owner, name, make(original))
            return True

    def restore(self) -> None:
        """Put back every replaced attribute, last replaced first."""
        with self._lock:
            while self._originals:
                owner, name, original = self._originals.pop()
                if original is _ABSENT:
                    if name in owner.__dict__:
                        delattr(owner, name)
                else:
                    setattr(owner, name, original)

    def __len__(self) -> int:
        return len(self._originals)


def is_patched(attribute: Any) -> bool:
    """Tell whether a class attribute is a traced replacement."""
    return ORIGINAL_ATTRIBUTE in getattr(attribute, "__dict__", {}) or isinstance(
        attribute, TracedDescriptor
    )


def traced_function(
    original: Callable[..., Any], operation: str, monitors: MonitorMap
) -> Callable[..., Any]:
    """Return a function to put on a class in place of method ``original``.

    A call made while another traced call runs (a Pipeline calling its
    final estimator, XGBClassifier calling its Booster) goes straight to
    the original, so one user-facing call gives one span.
    """
    from otel_mlmon.instrumentation._core import inside_prediction

    def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        if inside_prediction():
            return original(self, *args, **kwargs)
        monitor = monitors.get(self)
        if monitor is None:
            return original(self, *args, **kwargs)
        return monitor.call(
            operation, types.MethodType(original, self), args, kwargs
        )

    functools.update_wrapper(traced, original)
    setattr(traced, ORIGINAL_ATTRIBUTE, original)
    return traced


class TracedDescriptor:
    """A traced stand-in for a method descriptor that is not a function.

    scikit-learn's ``available_if`` methods are such descriptors: their
    ``__get__`` raises AttributeError when the method does not apply (a
    Pipeline whose last step has no ``predict_proba``). The original
    ``__get__`` runs first, so ``hasattr`` keeps its answer.
    """

    def __init__(
        self, original: Any, operation: str, monitors: MonitorMap
    ) -> None:
        self.__otel_mlmon_original__ = original
        self._operation = operation
        self._monitors = monitors
        self.__doc__ = getattr(original, "__doc__", None)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        bound = self.__otel_mlmon_original__.__get__(instance, owner)
        if instance is None:
            return bound
        from otel_mlmon.instrumentation._core import inside_prediction

        operation = self._operation
        monitors = self._monitors

        def traced(*args: Any, **kwargs: Any) -> Any:
            if inside_prediction():
                return bound(*args, **kwargs)
            monitor = monitors.get(instance)
            if monitor is None:
                return bound(*args, **kwargs)
            return monitor.call(operation, bound, args, kwargs)

        functools.update_wrapper(traced, bound)
        return traced


def traced_attribute(
    original: Any, operation: str, monitors: MonitorMap
) -> Any:
    """Return the traced replacement of a method found in a class's dict."""
    if isinstance(original, types.FunctionType):
        return traced_function(original, operation, monitors)
    return TracedDescriptor(original, operation, monitors)


def defining_class(cls: type, name: str) -> type | None:
    """Return the class in ``cls``'s MRO whose own dict defines ``name``."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass if klass is not object else None
    return None


def all_subclasses(cls: type) -> list[type]:
    """Return ``cls`` and every subclass of it that exists now."""
    found: list[type] = []
    pending = [cls]
    seen: set[type] = set()
    while pending:
        klass = pending.pop()
        if klass in seen:
            continue
        seen.add(klass)
        found.append(klass)
        pending.extend(type.__subclasses__(klass))
    return found


class FrameworkInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Base of the per-framework instrumentors.

    A subclass names its framework, its requirement tuple, the modules
    whose import triggers patching, and implements :meth:`_patch`.
    ``instrument()`` accepts ``tracer_provider``, ``meter_provider`` and
    ``config`` (a :class:`MonitorConfig`; read from ``OTEL_MLMON_*``
    variables by default).
    """

    framework: ClassVar[str]
    requirements: ClassVar[tuple[str, ...]]
    trigger_modules: ClassVar[tuple[str, ...]]

    _monitors: MonitorMap | None = None
    _patches: Patches | None = None
    _active: bool = False
    _failed: bool = False

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.requirements

    def _instrument(self, **kwargs: Any) -> None:
        # The launcher calls instrument() with the dependency check skipped,
        # because this distribution declares no ``instruments`` extra, so
        # check the framework here and stay idle when it is absent.
        conflict = self._check_dependency_conflicts()
        if conflict is not None:
            _logger.debug(
                "otel_mlmon %s instrumentation skipped: %s",
                self.framework,
                conflict,
            )
            return
        try:
            config = kwargs.get("config") or MonitorConfig.from_env()
        except ConfigError as error:
            _logger.error(
                "otel_mlmon %s instrumentation is off, because a setting is "
                "invalid: %s",
                self.framework,
                error,
            )
            return
        self._monitors = MonitorMap(
            self.framework,
            config,
            ModelIdentity(),
            kwargs.get("tracer_provider"),
            kwargs.get("meter_provider"),
        )
        self._patches = Patches()
        self._active = True
        self._failed = False
        for module_name in self.trigger_modules:
            wrapt.register_post_import_hook(self._on_import, module_name)

    def _uninstrument(self, **kwargs: Any) -> None:
        self._active = False
        if self._patches is not None:
            self._patches.restore()
        self._monitors = None

    def _on_import(self, module: types.ModuleType) -> None:
        # wrapt keeps hooks for good, so one registered by an earlier
        # instrument() call still fires; it must do nothing then.
        if not self._active or self._failed:
            return
        assert self._monitors is not None and self._patches is not None
        try:
            self._patch(module, self._monitors, self._patches)
        except Exception as error:  # pylint: disable=broad-except
            self.disable_after_failure(error)

    def disable_after_failure(self, error: BaseException) -> None:
        """Undo this framework's patches after a failure, logging it once.

        The other instrumentors keep working: each owns its patches.
        """
        if self._failed:
            return
        self._failed = True
        if self._patches is not None:
            self._patches.restore()
        _logger.warning(
            "otel_mlmon %s instrumentation failed and is now off; models of "
            "this framework run untraced: %s: %s",
            self.framework,
            type(error).__qualname__,
            error,
            exc_info=error,
        )

    def _patch(
        self, module: types.ModuleType, monitors: MonitorMap, patches: Patches
    ) -> None:
        raise NotImplementedError

    @property
    def monitors(self) -> MonitorMap | None:
        """The monitors of the models traced so far, while instrumented."""
        return self._monitors


def wrap_methods(
    classes: Sequence[type],
    methods: Collection[str],
    monitors: MonitorMap,
    patches: Patches,
    owned: Callable[[type], bool],
) -> None:
    """Wrap ``methods`` of ``classes`` where the class defining them is owned."""
    for cls in classes:
        for name in methods:
            owner = defining_class(cls, name)
            if owner is None or not owned(owner):
                continue
            patches.wrap(
                owner,
                name,
                functools.partial(
                    traced_attribute, operation=name, monitors=monitors
                ),
            )
