"""A profile of the training data that live inputs are compared against.

A baseline stores, per numeric feature, quantile bin edges with open outer
bins, the training count in each bin and in a missing-value bin, and the
mean, std, min, max and null rate. Per categorical feature it stores the
most frequent categories with their counts, an "other" count for the rest
and a missing count. It can also profile the model's predictions and their
confidence at training time. It is saved as versioned JSON: version 2
writes all of this, and version 1 files (numeric features only) still load.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from otel_mlmon.inputs import read_input
from otel_mlmon.stats.binning import counting_edges, drift_bins, slot_counts

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SCHEMA = "otel_mlmon.baseline"
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
_MAX_BINS = 100
_MAX_LABELS = 100
_OUTPUT_BINS = 10
MAX_CATEGORIES = 20
"""Categories of a categorical feature kept by name; the rest are "other"."""
MAX_KNOWN_CATEGORIES = 10_000
"""Training categories beyond the top ones that a baseline lists at most.

A live value in this list counts as "other"; a value in neither list counts
as unseen in training. Past this many, every value outside the top ones
counts as "other", and the unseen bin stays empty.
"""


class BaselineError(ValueError):
    """A baseline cannot be built or read; the message names the fix."""


@dataclasses.dataclass(frozen=True, eq=False)
class CategoricalProfile:
    """Training counts of one categorical feature.

    ``counts`` has one entry per category in ``categories`` (most frequent
    first), then "other", then "unseen" (always 0 in training), then
    missing.
    """

    name: str
    categories: tuple[str, ...]
    counts: IntArray
    known_other: tuple[str, ...] | None
    distinct: int

    @property
    def bin_labels(self) -> tuple[str, ...]:
        """Labels of the bins on metrics: indexes, never category values."""
        return (
            *(str(i) for i in range(len(self.categories))),
            "other",
            "unseen",
            "missing",
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the profile as a JSON-ready feature entry."""
        return {
            "name": self.name,
            "kind": "categorical",
            "categories": list(self.categories),
            "counts": self.counts[:-3].tolist(),
            "other": int(self.counts[-3]),
            "missing": int(self.counts[-1]),
            "known_other": (
                None if self.known_other is None else list(self.known_other)
            ),
            "distinct": self.distinct,
        }

    @classmethod
    def fit(cls, name: str, values: Any) -> CategoricalProfile:
        """Profile a column of category values; None and NaN are missing."""
        import pandas as pd

        column = pd.Series(values, dtype="object")
        missing = int(column.isna().sum())
        frequencies = column.dropna().astype(str).value_counts(sort=True)
        top = frequencies.iloc[:MAX_CATEGORIES]
        rest = frequencies.iloc[MAX_CATEGORIES:]
        known = (
            tuple(sorted(str(v) for v in rest.index))
            if len(rest) <= MAX_KNOWN_CATEGORIES
            else None
        )
        counts = np.array(
            [*top.tolist(), int(rest.sum()), 0, missing], dtype=np.int64
        )
        return cls(
            name=name,
            categories=tuple(str(v) for v in top.index),
            counts=counts,
            known_other=known,
            distinct=int(len(frequencies)),
        )

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> CategoricalProfile:
        """Rebuild a profile from :meth:`to_dict` output."""
        categories = tuple(str(c) for c in entry["categories"])
        counts = [int(c) for c in entry["counts"]]
        if len(counts) != len(categories):
            raise ValueError(f"categories and counts of {entry['name']!r}")
        known = entry.get("known_other")
        return cls(
            name=str(entry["name"]),
            categories=categories,
            counts=np.array(
                [*counts, int(entry["other"]), 0, int(entry["missing"])],
                dtype=np.int64,
            ),
            known_other=None if known is None else tuple(map(str, known)),
            distinct=int(entry.get("distinct", len(categories))),
        )


@dataclasses.dataclass(frozen=True, eq=False)
class Baseline:
    """Training-time profile of a model's numeric inputs and outputs.

    Build one with :meth:`fit`, or read one with :meth:`load`.
    """

    feature_names: tuple[str, ...]
    inner_edges: FloatArray
    low: FloatArray
    high: FloatArray
    counts: IntArray
    mean: FloatArray
    std: FloatArray
    rows: int
    predictions: dict[str, Any] | None = None
    categorical: tuple[CategoricalProfile, ...] = ()
    confidence: dict[str, Any] | None = None

    @property
    def bins(self) -> int:
        """Drift bins per feature, not counting the missing-value bin."""
        return int(self.inner_edges.shape[1]) + 1

    @property
    def null_rate(self) -> FloatArray:
        """Share of missing or non-finite training values per feature."""
        return self.counts[:, -1] / max(self.rows, 1)

    @property
    def fractions(self) -> FloatArray:
        """Training share of each bin, the missing bin last."""
        return self.counts / max(self.rows, 1)

    def counting_edges(self) -> FloatArray:
        """Return the edges that :func:`slot_counts` counts live data with."""
        return counting_edges(self.inner_edges, self.low, self.high)

    @classmethod
    def fit(
        cls,
        data: Any,
        feature_names: Sequence[str] | None = None,
        bins: int = 10,
        predictions: Any = None,
        confidence: Any = None,
        categorical: Sequence[str] = (),
    ) -> Baseline:
        """Profile training data.

        Args:
            data: Training inputs: a 2-D numpy array, a pandas DataFrame of
                numeric, bool, string and categorical columns, a list of
                rows, or a sparse matrix (densified here, since this runs
                once, offline). String and categorical columns of a
                DataFrame become categorical features.
            feature_names: Names of the columns of an array or list.
            bins: Quantile bins per numeric feature, 2 to 100.
            predictions: The model's outputs on the training data, to judge
                prediction drift later: labels or numbers, one per row.
            confidence: The model's confidence on the training data, to
                judge confidence drift: one highest class probability per
                row, or the 2-D ``predict_proba`` output.
            categorical: Numeric DataFrame columns to profile as categories
                instead, such as integer codes.

        Raises:
            BaselineError: The data are empty or of an unsupported type, a
                name in ``categorical`` is not a column, or ``bins`` is out
                of range.
        """
        if isinstance(bins, bool) or not isinstance(bins, int):
            raise BaselineError(f"Invalid bins={bins!r}: expected 2 to 100.")
        if not 2 <= bins <= _MAX_BINS:
            raise BaselineError(f"Invalid bins={bins}: expected 2 to 100.")
        data, profiles = _split_categorical(data, categorical)
        values, names = _training_matrix(data, feature_names, bool(profiles))
        finite = np.isfinite(values)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            masked = np.where(finite, values, np.nan)
            quantiles = np.nanquantile(
                masked, np.linspace(0.0, 1.0, bins + 1)[1:-1], axis=0
            ).T
            low = np.nanmin(masked, axis=0)
            high = np.nanmax(masked, axis=0)
            mean = np.nanmean(masked, axis=0)
            std = np.nanstd(masked, axis=0)
        empty = ~finite.any(axis=0)
        for array in (quantiles, low, high, mean, std):
            array[empty] = 0.0
        edges = counting_edges(quantiles, low, high)
        counts = drift_bins(slot_counts(values, edges))
        return cls(
            feature_names=names,
            inner_edges=np.ascontiguousarray(quantiles),
            low=low,
            high=high,
            counts=counts.astype(np.int64),
            mean=mean,
            std=std,
            rows=int(values.shape[0]),
            predictions=_profile_predictions(predictions),
            categorical=profiles,
            confidence=_profile_confidence(confidence),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the baseline as a JSON-ready dict with its schema version."""
        features: list[dict[str, Any]] = []
        for index, name in enumerate(self.feature_names):
            features.append(
                {
                    "name": name,
                    "kind": "numeric",
                    "edges": self.inner_edges[index].tolist(),
                    "counts": self.counts[index, :-1].tolist(),
                    "missing": int(self.counts[index, -1]),
                    "min": float(self.low[index]),
                    "max": float(self.high[index]),
                    "mean": float(self.mean[index]),
                    "std": float(self.std[index]),
                }
            )
        features.extend(profile.to_dict() for profile in self.categorical)
        return {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "rows": self.rows,
            "bins": self.bins,
            "features": features,
            "predictions": self.predictions,
            "confidence": self.confidence,
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the baseline as JSON, replacing ``path`` atomically."""
        target = Path(path)
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False)
        folder = target.parent if str(target.parent) else Path(".")
        with tempfile.NamedTemporaryFile(
            "w", dir=folder, prefix=f".{target.name}.", delete=False
        ) as handle:
            handle.write(text)
        os.replace(handle.name, target)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Baseline:
        """Read a baseline written by :meth:`save`.

        Raises:
            BaselineError: The file is missing, empty, not JSON, of another
                schema version, or malformed.
        """
        source = Path(path)
        rebuild = f"build one with: otel-mlmon baseline TRAIN.csv --out {path}"
        try:
            text = source.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BaselineError(
                f"Baseline file not found: {path}; {rebuild}"
            ) from None
        except OSError as error:
            raise BaselineError(
                f"Cannot read baseline file {path}: {error.strerror}"
            ) from None
        except UnicodeDecodeError as error:
            raise BaselineError(
                f"Baseline file {path} is not UTF-8 text ({error.reason} at "
                f"byte {error.start}); {rebuild}"
            ) from None
        if not text.strip():
            raise BaselineError(f"Baseline file {path} is empty; {rebuild}")
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            # The file exists and may be the user's data (a training CSV
            # passed in the baseline's place), so the advice must not name
            # it as the output.
            raise BaselineError(
                f"Baseline file {path} is not valid JSON ({error.msg} at "
                f"line {error.lineno}); pass the JSON file that "
                "otel-mlmon baseline TRAIN.csv --out baseline.json writes"
            ) from None
        except RecursionError:
            raise BaselineError(
                f"Baseline file {path} is JSON nested too deeply to be a "
                f"baseline; {rebuild}"
            ) from None
        return cls.from_dict(document, str(path))

    @classmethod
    def from_dict(cls, document: Any, source: str = "<dict>") -> Baseline:
        """Rebuild a baseline from :meth:`to_dict` output.

        Raises:
            BaselineError: The schema or its version is not this one, or a
                field is missing or of the wrong shape.
        """
        if not isinstance(document, dict) or document.get("schema") != SCHEMA:
            raise BaselineError(
                f"{source} is not an otel_mlmon baseline (no "
                f'"schema": "{SCHEMA}" field); build one with '
                "otel-mlmon baseline"
            )
        version = document.get("version")
        if version not in READABLE_VERSIONS:
            raise BaselineError(
                f"{source} has baseline schema version {version!r}, but this "
                f"otel_mlmon reads versions 1 and 2; rebuild the "
                "baseline with this version's otel-mlmon baseline command, "
                "or install the otel_mlmon that wrote it"
            )
        try:
            return _from_features(document)
        except (KeyError, TypeError, ValueError) as error:
            raise BaselineError(
                f"{source} is a malformed baseline ({error!r}); rebuild it "
                "with otel-mlmon baseline"
            ) from None


def _from_features(document: dict[str, Any]) -> Baseline:
    entries = document["features"]
    if not entries:
        raise ValueError("no features")
    features = [f for f in entries if f.get("kind", "numeric") == "numeric"]
    categorical = tuple(
        CategoricalProfile.from_dict(f)
        for f in entries
        if f.get("kind") == "categorical"
    )
    if not features:
        return _categorical_only(document, categorical)
    edges = np.array([f["edges"] for f in features], dtype=np.float64)
    counts = np.array(
        [list(f["counts"]) + [f["missing"]] for f in features],
        dtype=np.int64,
    )
    if edges.ndim != 2 or counts.shape != (edges.shape[0], edges.shape[1] + 2):
        raise ValueError("edges and counts do not match")
    if np.any(np.diff(edges, axis=1) < 0):
        raise ValueError("edges are not sorted")
    return Baseline(
        feature_names=tuple(str(f["name"]) for f in features),
        inner_edges=edges,
        low=np.array([f["min"] for f in features], dtype=np.float64),
        high=np.array([f["max"] for f in features], dtype=np.float64),
        counts=counts,
        mean=np.array([f["mean"] for f in features], dtype=np.float64),
        std=np.array([f["std"] for f in features], dtype=np.float64),
        rows=int(document["rows"]),
        predictions=_output_profile(document.get("predictions")),
        categorical=categorical,
        confidence=_output_profile(document.get("confidence")),
    )


def _categorical_only(
    document: dict[str, Any], categorical: tuple[CategoricalProfile, ...]
) -> Baseline:
    empty = np.zeros((0, int(document.get("bins", 10)) - 1))
    nothing = np.zeros(0)
    return Baseline(
        feature_names=(),
        inner_edges=empty,
        low=nothing,
        high=nothing.copy(),
        counts=np.zeros((0, empty.shape[1] + 2), dtype=np.int64),
        mean=nothing.copy(),
        std=nothing.copy(),
        rows=int(document["rows"]),
        predictions=_output_profile(document.get("predictions")),
        categorical=categorical,
        confidence=_output_profile(document.get("confidence")),
    )


def _output_profile(profile: Any) -> dict[str, Any] | None:
    # Version 1 numeric profiles have edges but no counts, so they cannot
    # be compared with live outputs; they load without output drift.
    if profile is None:
        return None
    if profile.get("kind") == "numeric" and "counts" not in profile:
        return None
    if profile.get("kind") == "labels" and "counts" not in profile:
        rows = int(profile["rows"])
        counts = [round(f * rows) for f in profile["fractions"]]
        return {**profile, "counts": counts, "other": rows - sum(counts)}
    return dict(profile)


def _split_categorical(
    data: Any, categorical: Sequence[str]
) -> tuple[Any, tuple[CategoricalProfile, ...]]:
    """Split string, categorical and named columns off a DataFrame."""
    if not type(data).__module__.startswith("pandas") or not hasattr(
        data, "select_dtypes"
    ):
        if categorical:
            raise BaselineError(
                "categorical= names DataFrame columns, but the data is a "
                f"{type(data).__name__}; pass a pandas DataFrame"
            )
        return data, ()
    columns = [str(c) for c in data.columns]
    absent = [name for name in categorical if name not in columns]
    if absent:
        raise BaselineError(
            f"Categorical column {absent[0]!r} is not in the data; "
            f"its columns are: {', '.join(columns)}"
        )
    textual = data.select_dtypes(include=["object", "string", "category"])
    chosen = [c for c in data.columns if str(c) in set(categorical)]
    chosen += [c for c in textual.columns if c not in chosen]
    profiles = tuple(CategoricalProfile.fit(str(c), data[c]) for c in chosen)
    return data.drop(columns=chosen), profiles


def _training_matrix(
    data: Any, feature_names: Sequence[str] | None, allow_empty: bool = False
) -> tuple[FloatArray, tuple[str, ...]]:
    if type(data).__module__.startswith("scipy.sparse"):
        data = data.toarray()
    view = read_input(data, feature_names)
    if view.categorical is not None:
        raise BaselineError(
            f"Column {view.categorical.names[0]!r} is not numeric; encode it "
            "as numbers or drop it before fitting the baseline"
        )
    if view.numeric is None:
        raise BaselineError(
            f"Cannot fit a baseline on this data: {view.skipped}; pass a 2-D "
            "array or a DataFrame of numeric columns"
        )
    values: FloatArray = view.numeric
    if allow_empty and values.shape[0] > 0 and values.shape[1] == 0:
        return values, view.names
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise BaselineError(
            f"Cannot fit a baseline on data of shape {values.shape}: it "
            "needs at least one row and one numeric column"
        )
    if feature_names is not None and len(feature_names) != values.shape[1]:
        raise BaselineError(
            f"feature_names has {len(feature_names)} names but the data has "
            f"{values.shape[1]} columns; pass one name per column"
        )
    return values, view.names


def _profile_predictions(predictions: Any) -> dict[str, Any] | None:
    if predictions is None:
        return None
    array = np.asarray(predictions)
    if array.ndim != 1 or array.size == 0:
        raise BaselineError(
            f"predictions has shape {array.shape}; pass one output per "
            "training row as a 1-D array"
        )
    if array.dtype.kind == "f":
        return _numeric_profile("predictions", array)
    labels, counts = np.unique(array.astype(str), return_counts=True)
    order = np.argsort(-counts, kind="stable")[:_MAX_LABELS]
    return {
        "kind": "labels",
        "rows": int(array.size),
        "labels": labels[order].tolist(),
        "fractions": (counts[order] / array.size).tolist(),
        "counts": counts[order].tolist(),
        "other": int(array.size - counts[order].sum()),
    }


def _profile_confidence(confidence: Any) -> dict[str, Any] | None:
    if confidence is None:
        return None
    array = np.asarray(confidence, dtype=np.float64)
    if array.ndim == 2:
        array = array.max(axis=1)
    if array.ndim != 1 or array.size == 0:
        raise BaselineError(
            f"confidence has shape {array.shape}; pass one value per "
            "training row, or the 2-D predict_proba output"
        )
    return _numeric_profile("confidence", array)


def _numeric_profile(name: str, array: FloatArray) -> dict[str, Any]:
    """Profile one numeric output with quantile bins, as features are."""
    values = np.asarray(array, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise BaselineError(f"{name} has no finite value")
    quantiles = np.quantile(finite, np.linspace(0, 1, _OUTPUT_BINS + 1)[1:-1])
    index = np.searchsorted(quantiles, finite, side="right")
    counts = np.bincount(index, minlength=_OUTPUT_BINS)
    return {
        "kind": "numeric",
        "rows": int(values.size),
        "edges": quantiles.tolist(),
        "counts": counts.tolist(),
        "missing": int(values.size - finite.size),
        "min": float(finite.min()),
        "max": float(finite.max()),
        "mean": float(finite.mean()),
        "std": float(finite.std()),
    }

