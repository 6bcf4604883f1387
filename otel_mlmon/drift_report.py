"""Drift statistics of a closed window, and the report that contains them.

When a window closes, every feature's live bin counts are compared with
the baseline's by all the statistics of :mod:`otel_mlmon.stats.divergence`
that apply to it. Numeric features get PSI, Jensen-Shannon distance, the
Kolmogorov-Smirnov statistic and p-value and the normalised Wasserstein
distance. Categorical features, and label predictions, get PSI,
Jensen-Shannon distance and the chi-square statistic and p-value.

One statistic gives the verdict (``drift_statistic``, PSI by default); the
others are reported as scores. Where the verdict statistic does not apply
to a feature (KS or Wasserstein on categories, chi-square on numbers), PSI
gives that feature's verdict.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from otel_mlmon.config import VERDICT_STATISTICS
from otel_mlmon.stats.divergence import (
    CHI_SQUARE_P_VALUE_THRESHOLD,
    JENSEN_SHANNON_THRESHOLD,
    KS_P_VALUE_THRESHOLD,
    WASSERSTEIN_THRESHOLD,
    chi_square,
    jensen_shannon,
    ks_binned,
    psi,
    wasserstein_binned,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

NUMERIC_STATISTICS = ("psi", "jensen_shannon", "ks", "ks_p_value", "wasserstein")
"""Scores reported for numeric features and numeric outputs."""
CATEGORICAL_STATISTICS = ("psi", "jensen_shannon", "chi_square", "chi_square_p_value")
"""Scores reported for categorical features and label predictions."""

PREDICTION_FEATURE = "ml.prediction"
"""Feature name under which the model's predictions are judged."""
CONFIDENCE_FEATURE = "ml.prediction.confidence"
"""Feature name under which the model's confidence is judged."""

# Default thresholds of the statistics other than PSI, whose default is the
# drift_threshold setting. Their sources are given in stats/divergence.py.
_DEFAULT_THRESHOLDS = {
    "jensen_shannon": JENSEN_SHANNON_THRESHOLD,
    "wasserstein": WASSERSTEIN_THRESHOLD,
    "ks": KS_P_VALUE_THRESHOLD,
    "chi_square": CHI_SQUARE_P_VALUE_THRESHOLD,
}
# The score that each verdict statistic compares with its threshold.
_VERDICT_SCORE = {
    "psi": "psi",
    "jensen_shannon": "jensen_shannon",
    "wasserstein": "wasserstein",
    "ks": "ks_p_value",
    "chi_square": "chi_square_p_value",
}
_P_VALUE_VERDICTS = frozenset({"ks", "chi_square"})


@dataclasses.dataclass(frozen=True)
class DriftSettings:
    """Window and verdict settings of a drift monitor.

    ``thresholds`` has the shape of ``MonitorConfig.drift_thresholds``:
    ``{"default": {statistic: value}, "features": {name: {statistic:
    value}}}``. A feature's own value wins over the default one, which
    wins over ``psi_threshold`` (for PSI) and the defaults of
    :mod:`otel_mlmon.stats.divergence`.
    """

    window_rows: int = 1000
    window_seconds: float = 0.0
    min_rows: int = 100
    statistic: str = "psi"
    psi_threshold: float = 0.2
    thresholds: Mapping[str, Any] | None = None
    max_bin_series: int = 1000

    def __post_init__(self) -> None:
        if self.statistic not in VERDICT_STATISTICS:
            raise ValueError(
                f"Invalid drift statistic {self.statistic!r}: expected one "
                f"of {', '.join(VERDICT_STATISTICS)}"
            )

    @classmethod
    def from_config(cls, config: Any) -> DriftSettings:
        """Take the drift settings of a ``MonitorConfig``."""
        return cls(
            window_rows=config.drift_window_rows,
            window_seconds=config.drift_window_seconds,
            min_rows=config.drift_min_rows,
            statistic=config.drift_statistic,
            psi_threshold=config.drift_threshold,
            thresholds=config.drift_thresholds,
            max_bin_series=config.drift_max_bin_series,
        )

    def threshold(self, feature: str, statistic: str) -> float:
        """Return the threshold of a verdict statistic for one feature."""
        thresholds = self.thresholds or {}
        own = thresholds.get("features", {}).get(feature, {})
        if statistic in own:
            return float(own[statistic])
        shared = thresholds.get("default", {})
        if statistic in shared:
            return float(shared[statistic])
        if statistic == "psi":
            return self.psi_threshold
        return _DEFAULT_THRESHOLDS[statistic]


@dataclasses.dataclass(frozen=True)
class FeatureDrift:
    """One feature's scores in a closed window, and its verdict.

    ``kind`` is ``numeric``, ``categorical``, ``prediction`` or
    ``confidence``. ``scores`` maps each statistic name to its value; NaN
    means no value (no live rows with a value, for example). ``drifted``
    is True when ``statistic`` crossed ``threshold``: a score above it, or
    a p-value (``ks``, ``chi_square``) below it.
    """

    name: str
    kind: str
    scores: dict[str, float]
    statistic: str
    threshold: float
    drifted: bool

    @property
    def score(self) -> float:
        """Value that the verdict compared: a score or a p-value."""
        return self.scores[_VERDICT_SCORE[self.statistic]]

    @property
    def severity(self) -> float:
        """How far past its threshold the feature is; above 1 is drift."""
        if math.isnan(self.score):
            return 0.0
        if self.statistic in _P_VALUE_VERDICTS:
            return self.threshold / max(self.score, 1e-300)
        return self.score / self.threshold

    def to_dict(self) -> dict[str, Any]:
        """Return the verdict as JSON-ready values, NaN as None."""
        return {
            "name": self.name,
            "kind": self.kind,
            "statistic": self.statistic,
            "score": _finite_or_none(self.score),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "scores": {k: _finite_or_none(v) for k, v in self.scores.items()},
        }


@dataclasses.dataclass(frozen=True)
class ScoreGroup:
    """Scores and verdicts of features of one kind, as arrays."""

    names: tuple[str, ...]
    kind: str
    scores: dict[str, FloatArray]
    statistic: str
    thresholds: FloatArray
    drifted: npt.NDArray[np.bool_]

    def feature(self, index: int) -> FeatureDrift:
        """Return one feature's verdict as an object."""
        return FeatureDrift(
            name=self.names[index],
            kind=self.kind,
            scores={key: float(value[index]) for key, value in self.scores.items()},
            statistic=self.statistic,
            threshold=float(self.thresholds[index]),
            drifted=bool(self.drifted[index]),
        )


@dataclasses.dataclass(frozen=True)
class DriftReport:
    """Drift of every feature, prediction and confidence in one window.

    ``judged`` is False when the window had fewer than ``min_rows`` rows:
    its scores are still there, but no feature is marked as drifted.
    ``closed_by`` is ``rows``, ``time`` or ``end`` (an offline check).
    ``started`` and ``ended`` are Unix times in seconds.
    """

    rows: int
    started: float
    ended: float
    closed_by: str
    judged: bool
    min_rows: int
    groups: tuple[ScoreGroup, ...] = dataclasses.field(repr=False)

    @functools.cached_property
    def features(self) -> tuple[FeatureDrift, ...]:
        """Every feature's verdict: numeric, categorical, then outputs."""
        return tuple(
            group.feature(index)
            for group in self.groups
            for index in range(len(group.names))
        )

    @property
    def drifted(self) -> list[FeatureDrift]:
        """Drifted features, worst first."""
        found = [
            group.feature(int(index))
            for group in self.groups
            for index in np.flatnonzero(group.drifted)
        ]
        return sorted(found, key=lambda feature: -feature.severity)

    @property
    def drift_detected(self) -> bool:
        """Whether any feature drifted."""
        return any(bool(group.drifted.any()) for group in self.groups)

    def feature(self, name: str) -> FeatureDrift:
        """Return one feature's verdict by name.

        Raises:
            KeyError: No feature has that name.
        """
        for group in self.groups:
            if name in group.names:
                return group.feature(group.names.index(name))
        raise KeyError(f"No feature {name!r} in this drift report")

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-ready dict."""
        return {
            "rows": self.rows,
            "started": self.started,
            "ended": self.ended,
            "closed_by": self.closed_by,
            "judged": self.judged,
            "min_rows": self.min_rows,
            "drift_detected": self.drift_detected,
            "drifted": [feature.name for feature in self.drifted],
            "features": [feature.to_dict() for feature in self.features],
        }


def numeric_scores(
    expected: IntArray,
    actual: IntArray,
    edges: FloatArray,
    low: FloatArray,
    high: FloatArray,
    scale: FloatArray,
) -> dict[str, FloatArray]:
    """Compute every numeric statistic, one value per feature.

    ``expected`` has shape (features, bins + 1), the value bins then the
    missing-value bin; ``actual`` has that shape or a leading axis of
    windows. PSI and Jensen-Shannon count missing values as a bin; KS and
    Wasserstein compare the values only.
    """
    values_expected = expected[..., :-1]
    values_actual = actual[..., :-1]
    ks = ks_binned(
        values_expected,
        values_actual,
        values_expected.sum(axis=-1),
        values_actual.sum(axis=-1),
    )
    return {
        "psi": psi(expected, actual),
        "jensen_shannon": jensen_shannon(expected, actual),
        "ks": ks.statistic,
        "ks_p_value": ks.p_value,
        "wasserstein": wasserstein_binned(
            edges, values_expected, values_actual, low=low, high=high, scale=scale
        ),
    }


def categorical_scores(
    expected: IntArray, actual: IntArray
) -> dict[str, FloatArray]:
    """Compute every categorical statistic, one value per feature.

    Rows may be padded at the end with bins that are empty on both sides.
    """
    test = chi_square(expected, actual)
    return {
        "psi": psi(expected, actual),
        "jensen_shannon": jensen_shannon(expected, actual),
        "chi_square": test.statistic,
        "chi_square_p_value": test.p_value,
    }


def verdict_statistic(settings: DriftSettings, scores: Mapping[str, Any]) -> str:
    """Return the statistic that judges features with these scores."""
    if _VERDICT_SCORE[settings.statistic] in scores:
        return settings.statistic
    return "psi"


def thresholds_for(
    names: tuple[str, ...], statistic: str, settings: DriftSettings
) -> FloatArray:
    """Return each feature's threshold for a verdict statistic."""
    return np.array([settings.threshold(name, statistic) for name in names])


def judge(
    names: tuple[str, ...],
    kind: str,
    scores: dict[str, FloatArray],
    thresholds: FloatArray,
    statistic: str,
    judged: bool,
) -> ScoreGroup:
    """Turn per-feature score arrays into verdicts, vectorised.

    NaN scores and p-values never cross a threshold.
    """
    score = scores[_VERDICT_SCORE[statistic]]
    if statistic in _P_VALUE_VERDICTS:
        crossed = score < thresholds
    else:
        crossed = score > thresholds
    return ScoreGroup(
        names=names,
        kind=kind,
        scores=scores,
        statistic=statistic,
        thresholds=thresholds,
        drifted=crossed & judged,
    )


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
