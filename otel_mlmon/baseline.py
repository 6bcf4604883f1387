"""A profile of the training data that live inputs are compared against.

A baseline stores, per numeric feature, quantile bin edges with open outer
bins, the training count in each bin and in a missing-value bin, and the
mean, std, min, max and null rate. It can also profile the model's outputs
at training time. It is saved as versioned JSON.
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
SCHEMA_VERSION = 1
_MAX_BINS = 100
_MAX_LABELS = 100


class BaselineError(ValueError):
    """A baseline cannot be built or read; the message names the fix."""


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
    ) -> Baseline:
        """Profile training data.

        Args:
            data: Training inputs: a 2-D numpy array, a pandas DataFrame of
                numeric and bool columns, a list of rows, or a sparse matrix
                (densified here, since this runs once, offline).
            feature_names: Names of the columns of an array or list.
            bins: Quantile bins per feature, 2 to 100.
            predictions: The model's outputs on the training data, to judge
                prediction drift later: labels or numbers, one per row.

        Raises:
            BaselineError: The data are empty, not numeric, or ``bins`` is
                out of range.
        """
        if isinstance(bins, bool) or not isinstance(bins, int):
            raise BaselineError(f"Invalid bins={bins!r}: expected 2 to 100.")
        if not 2 <= bins <= _MAX_BINS:
            raise BaselineError(f"Invalid bins={bins}: expected 2 to 100.")
        values, names = _training_matrix(data, feature_names)
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
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the baseline as a JSON-ready dict with its schema version."""
        features = []
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
        return {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "rows": self.rows,
            "bins": self.bins,
            "features": features,
            "predictions": self.predictions,
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
        if not text.strip():
            raise BaselineError(f"Baseline file {path} is empty; {rebuild}")
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise BaselineError(
                f"Baseline file {path} is not valid JSON ({error.msg} at "
                f"line {error.lineno}); {rebuild}"
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
        if version != SCHEMA_VERSION:
            raise BaselineError(
                f"{source} has baseline schema version {version!r}, but this "
                f"otel_mlmon reads version {SCHEMA_VERSION}; rebuild the "
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
    features = document["features"]
    if not features:
        raise ValueError("no features")
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
        predictions=document.get("predictions"),
    )


def _training_matrix(
    data: Any, feature_names: Sequence[str] | None
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
        finite = array[np.isfinite(array)]
        if finite.size == 0:
            raise BaselineError("predictions has no finite value")
        quantiles = np.quantile(finite, np.linspace(0, 1, 11)[1:-1])
        return {
            "kind": "numeric",
            "rows": int(array.size),
            "edges": quantiles.tolist(),
            "min": float(finite.min()),
            "max": float(finite.max()),
            "mean": float(finite.mean()),
            "std": float(finite.std()),
        }
    labels, counts = np.unique(array.astype(str), return_counts=True)
    order = np.argsort(-counts, kind="stable")[:_MAX_LABELS]
    return {
        "kind": "labels",
        "rows": int(array.size),
        "labels": labels[order].tolist(),
        "fractions": (counts[order] / array.size).tolist(),
    }

