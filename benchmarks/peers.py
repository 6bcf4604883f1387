"""Added cost of otel_mlmon per call against its peers, by batch size.

One run times, on the same data, per call and per batch size (1, 10, 100,
1,000 and 10,000 rows of 20 features):

- bare: a LogisticRegression's ``predict_proba``, fitted on the first 20
  columns of scikit-learn's breast cancer data (batches are its rows, drawn
  with replacement);
- SDK floor: the span, attributes and metric records that otel_mlmon makes
  for that batch, replayed with precomputed values through the same
  processors (``benchmarks/overhead.py`` builds it);
- otel_mlmon: ``wrap_model(model, baseline=...)``, so drift runs, on numpy
  input and, as a second row, on a pandas DataFrame;
- opentelemetry-instrumentation-sklearn 0.46b0 (its last release, which
  needs scikit-learn < 1.3): ``SklearnInstrumentor().instrument_estimator``;
- whylogs: ``why.log(pandas=frame)`` on the batch;
- Evidently: a ``DataDriftPreset`` report of the batch against the training
  data.

Each tool runs in a worker process of its own. Each peer gets its own
virtual environment, created from PyPI on first use under
``${OTEL_MLMON_CACHE:-~/.cache/otel_mlmon}``. The driver
interleaves rounds across workers, so every tool meets the same machine
load. Added cost is the median over rounds of (instrumented - bare) timed
back to back in the same round. whylogs and Evidently run beside the model,
so their whole call is their added cost. After the timing, one more call of
each variant and batch size measures memory: tracemalloc's peak and the
growth of the peak resident set size.

It prints Markdown tables and writes a log-log plot of added cost against
batch size as SVG.

Run: python benchmarks/peers.py [--rounds 15] [--setup] [--skip whylogs]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import escape

BATCH_ROWS = (1, 10, 100, 1_000, 10_000)
FEATURES = 20
CACHE_ROOT = Path(
    os.environ.get("OTEL_MLMON_CACHE") or Path.home() / ".cache" / "otel_mlmon"
)
REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_SVG = REPOSITORY / "docs" / "benchmarks-added-cost.svg"

# Virtual environments of the peers, with the pins each one needs.
# opentelemetry-instrumentation-sklearn 0.46b0 is its last release: it
# imports sklearn.utils.metaestimators._IffHasAttrDescriptor, which
# scikit-learn 1.3 removed, and scikit-learn 1.2.2 is the last older release
# with Python 3.11 wheels (built against numpy 1).
PEER_ENVIRONMENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sklearn-instrumentation": (
        "bench-sklearn-instr",
        (
            "opentelemetry-instrumentation-sklearn==0.46b0",
            "opentelemetry-instrumentation==0.46b0",
            "opentelemetry-api==1.25.0",
            "opentelemetry-sdk==1.25.0",
            "scikit-learn==1.2.2",
            "numpy<2",
        ),
    ),
    # whylogs 1.6.4 pins platformdirs < 4 and uses np.unicode_, which numpy 2
    # removed.
    "whylogs": ("bench-whylogs", ("whylogs==1.6.4", "pandas<3", "numpy<2")),
    # The same environment and pins as benchmarks/drift.py.
    "evidently": ("evidently-venv", ("evidently>=0.7,<0.8", "pandas<3")),
}

# Packages whose versions each worker reports.
REPORTED_PACKAGES = {
    "otel_mlmon": ("otel_mlmon", "opentelemetry-sdk", "scikit-learn", "numpy", "pandas"),
    "sklearn-instrumentation": (
        "opentelemetry-instrumentation-sklearn",
        "opentelemetry-sdk",
        "scikit-learn",
        "numpy",
    ),
    "whylogs": ("whylogs", "whylogs-sketching", "pandas", "numpy"),
    "evidently": ("evidently", "pandas", "numpy", "scipy"),
}

# Each plotted and tabulated series: (label, worker, variant, subtracted
# variant or None when the tool's whole call is its added cost).
SERIES: tuple[tuple[str, str, str, str | None], ...] = (
    ("OpenTelemetry SDK floor", "otel_mlmon", "sdk", "bare"),
    ("otel_mlmon wrap_model", "otel_mlmon", "wrapped", "bare"),
    ("otel_mlmon wrap_model (DataFrame)", "otel_mlmon", "wrapped_frame", "bare_frame"),
    ("opentelemetry-instrumentation-sklearn", "sklearn-instrumentation", "instrumented", "bare"),
    ("whylogs why.log", "whylogs", "whylogs", None),
    ("Evidently DataDriftPreset", "evidently", "evidently", None),
)
OURS = "otel_mlmon wrap_model"


# ---------------------------------------------------------------- workers
# The worker half runs inside each tool's environment, so the module imports
# only the standard library at module level.


def _load_data(folder: Path) -> tuple[Any, Any, list[str], dict[int, Any]]:
    import numpy as np

    training = np.load(folder / "training.npy")
    target = np.load(folder / "target.npy")
    names = json.loads((folder / "names.json").read_text())
    batches = {rows: np.load(folder / f"batch-{rows}.npy") for rows in BATCH_ROWS}
    return training, target, names, batches


def _fit_model(training: Any, target: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=5000).fit(training, target)


def _otel_mlmon_variants(folder: Path) -> dict[int, dict[str, Callable[[], Any]]]:
    import pandas as pd

    from otel_mlmon import Baseline, wrap_model

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import overhead  # benchmarks/overhead.py: SDK floor and providers

    training, target, names, batches = _load_data(folder)
    model = _fit_model(training, target)
    training_frame = pd.DataFrame(training, columns=names)
    frame_model = _fit_model(training_frame, target)
    baseline = Baseline.fit(training, feature_names=names, bins=10)
    tracer_provider, meter_provider = overhead._providers()
    wrapped = wrap_model(
        model,
        name="bench",
        baseline=baseline,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )
    wrapped_frame = wrap_model(
        frame_model,
        name="bench_frame",
        baseline=baseline,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )
    variants: dict[int, dict[str, Callable[[], Any]]] = {}
    for rows, batch in batches.items():
        frame = pd.DataFrame(batch, columns=names)
        replay = overhead._sdk_floor(
            overhead._recorded_span(model, baseline, batch), rows
        )

        def bare_and_sdk(b: Any = batch, replay: Any = replay) -> None:
            model.predict_proba(b)
            replay()

        variants[rows] = {
            "bare": partial(model.predict_proba, batch),
            "sdk": bare_and_sdk,
            "wrapped": partial(wrapped.predict_proba, batch),
            "bare_frame": partial(frame_model.predict_proba, frame),
            "wrapped_frame": partial(wrapped_frame.predict_proba, frame),
        }
    return variants


def _sklearn_instrumentation_variants(
    folder: Path,
) -> dict[int, dict[str, Callable[[], Any]]]:
    from opentelemetry import trace
    from opentelemetry.instrumentation.sklearn import (  # type: ignore[import-not-found]
        SklearnInstrumentor,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class DropExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    # The same span processor as otel_mlmon's rows: a batch processor whose
    # exporter drops the spans.
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(DropExporter(), max_queue_size=100_000)
    )
    trace.set_tracer_provider(provider)
    training, target, _, batches = _load_data(folder)
    model = _fit_model(training, target)
    instrumented = _fit_model(training, target)
    SklearnInstrumentor().instrument_estimator(instrumented)
    return {
        rows: {
            "bare": partial(model.predict_proba, batch),
            "instrumented": partial(instrumented.predict_proba, batch),
        }
        for rows, batch in batches.items()
    }


def _whylogs_variants(folder: Path) -> dict[int, dict[str, Callable[[], Any]]]:
    import pandas as pd
    import whylogs as why  # type: ignore[import-not-found]

    _, _, names, batches = _load_data(folder)
    variants: dict[int, dict[str, Callable[[], Any]]] = {}
    for rows, batch in batches.items():
        frame = pd.DataFrame(batch, columns=names)
        variants[rows] = {"whylogs": partial(why.log, pandas=frame)}
    return variants


def _evidently_variants(folder: Path) -> dict[int, dict[str, Callable[[], Any]]]:
    import pandas as pd
    from evidently import (  # type: ignore[import-not-found]
        DataDefinition,
        Dataset,
        Report,
    )
    from evidently.presets import DataDriftPreset  # type: ignore[import-not-found]

    training, _, names, batches = _load_data(folder)
    definition = DataDefinition(numerical_columns=names)
    reference = Dataset.from_pandas(
        pd.DataFrame(training, columns=names), data_definition=definition
    )

    def report(current: Any) -> Any:
        dataset = Dataset.from_pandas(current, data_definition=definition)
        return Report([DataDriftPreset()]).run(dataset, reference).dict()

    return {
        rows: {"evidently": partial(report, pd.DataFrame(batch, columns=names))}
        for rows, batch in batches.items()
    }


WORKERS: dict[str, Callable[[Path], dict[int, dict[str, Callable[[], Any]]]]] = {
    "otel_mlmon": _otel_mlmon_variants,
    "sklearn-instrumentation": _sklearn_instrumentation_variants,
    "whylogs": _whylogs_variants,
    "evidently": _evidently_variants,
}


def _seconds_per_call(function: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _peak_rss_growth(function: Callable[[], Any]) -> int | None:
    """Return how far one call raises the peak resident set size, in bytes.

    Writing 5 to /proc/self/clear_refs resets the peak (Linux 4.0 and later);
    None where that is not possible.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_bytes("VmRSS")
    except (OSError, KeyError):
        return None
    function()
    return max(0, _status_bytes("VmHWM") - before)


def _tracemalloc_peak(function: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _versions(worker: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in REPORTED_PACKAGES[worker]:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _serve(worker: str, folder: Path) -> None:
    """Serve the driver's JSON-line requests, replying on the original stdout.

    Libraries that print would corrupt the protocol, so stdout is pointed at
    stderr and the protocol keeps a duplicate of the original descriptor.
    """
    protocol: IO[str] = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(message: Mapping[str, Any]) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    variants = WORKERS[worker](folder)
    send({"ready": True, "versions": _versions(worker)})
    calls: dict[tuple[int, str], int] = {}
    failed: dict[tuple[int, str], str] = {}
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            return
        rows = int(request["rows"])
        answer: dict[str, Any] = {}
        for name, function in variants[rows].items():
            key = (rows, name)
            if key in failed:
                answer[name] = {"error": failed[key]}
                continue
            try:
                if request["op"] == "time":
                    if key not in calls:
                        function()  # first call: lazy imports and caches
                        once = _seconds_per_call(function, 1)
                        calls[key] = max(
                            1, min(10_000, math.ceil(request["block_seconds"] / once))
                        )
                    answer[name] = {"seconds": _seconds_per_call(function, calls[key])}
                else:
                    answer[name] = {
                        "tracemalloc_peak": _tracemalloc_peak(function),
                        "peak_rss_growth": _peak_rss_growth(function),
                    }
            except Exception as error:  # noqa: BLE001 (reported, not hidden)
                failed[key] = f"{type(error).__name__}: {error}"[:300]
                answer[name] = {"error": failed[key]}
        send(answer)


# ---------------------------------------------------------------- driver


def _environment_python(worker: str) -> Path:
    """Create the worker's virtual environment if missing, and return its python.

    Raises RuntimeError with pip's error lines when installing fails.
    """
    if worker == "otel_mlmon":
        return Path(sys.executable)
    folder_name, requirements = PEER_ENVIRONMENTS[worker]
    folder = CACHE_ROOT / folder_name
    python = folder / "bin" / "python"
    marker = folder / "otel-mlmon-requirements.json"
    if python.exists() and marker.exists():
        if json.loads(marker.read_text()) == list(requirements):
            return python
    elif python.exists() and folder_name == "evidently-venv":
        # Created by benchmarks/drift.py with the same pins.
        return python
    print(f"Creating {folder} ({' '.join(requirements)}) from PyPI...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *requirements],
        capture_output=True,
        text=True,
    )
    if install.returncode != 0:
        errors = [
            line for line in install.stderr.splitlines() if "ERROR" in line
        ] or install.stderr.splitlines()[-5:]
        raise RuntimeError(
            f"pip install {' '.join(requirements)} failed in {folder}: "
            + " ".join(errors)
        )
    marker.write_text(json.dumps(list(requirements)))
    return python


class Worker:
    """One tool's worker process, which serves timing and memory requests."""

    def __init__(self, name: str, python: Path, folder: Path, log: IO[str]) -> None:
        self.name = name
        environment = dict(os.environ)
        # Keep the peers from sending usage statistics.
        environment["WHYLOGS_NO_ANALYTICS"] = "1"
        environment["DO_NOT_TRACK"] = "1"
        self.process = subprocess.Popen(
            [str(python), str(Path(__file__).resolve()), "--worker", name,
             "--data", str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=environment,
            cwd=REPOSITORY,
        )  # fmt: skip
        self.versions: dict[str, str] = self._receive()["versions"]

    def _receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            raise RuntimeError(f"worker {self.name} exited with status {code}")
        result: dict[str, Any] = json.loads(line)
        return result

    def request(self, message: Mapping[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        return self._receive()

    def close(self) -> None:
        if self.process.poll() is None:
            self.request_quit()
        self.process.wait(timeout=60)

    def request_quit(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
        self.process.stdin.close()


def _write_data(folder: Path) -> None:
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    dataset = load_breast_cancer()
    training = dataset.data[:, :FEATURES]
    np.save(folder / "training.npy", training)
    np.save(folder / "target.npy", dataset.target)
    names = [str(name) for name in dataset.feature_names[:FEATURES]]
    (folder / "names.json").write_text(json.dumps(names))
    rng = np.random.default_rng(0)
    for rows in BATCH_ROWS:
        if rows == 1:
            batch = training[:1].copy()
        else:
            batch = training[rng.integers(0, len(training), rows)]
        np.save(folder / f"batch-{rows}.npy", batch)


def _last_error_line(log_path: Path) -> str:
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def format_seconds(seconds: float | None) -> str:
    """Format a duration for the tables: µs below 1 ms, ms below 1 s."""
    if seconds is None or math.isnan(seconds):
        return "n/a"
    if abs(seconds) < 1e-3:
        return f"{seconds * 1e6:,.0f} µs"
    if abs(seconds) < 1:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds:,.2f} s"


def format_ratio(ratio: float) -> str:
    """Format a ratio with two significant digits below 10, whole above."""
    if abs(ratio) >= 10:
        return f"{ratio:,.0f}x"
    return f"{ratio:.2g}x"


def format_bytes(size: float | None) -> str:
    if size is None:
        return "n/a"
    if abs(size) < 1024 * 1024:
        return f"{size / 1024:,.1f} KiB"
    return f"{size / 2**20:,.1f} MiB"


def _added_costs(
    samples: Mapping[str, Mapping[int, Mapping[str, list[float]]]],
) -> dict[str, dict[int, float]]:
    """Return each series' median added seconds per call, by batch rows.

    Subtractions pair the two variants of the same round, so a slow round
    slows both.
    """
    costs: dict[str, dict[int, float]] = {}
    for label, worker, variant, subtracted in SERIES:
        if worker not in samples:
            continue
        by_rows: dict[int, float] = {}
        for rows, variants in samples[worker].items():
            measured = variants.get(variant, [])
            if not measured:
                continue
            if subtracted is None:
                by_rows[rows] = statistics.median(measured)
            else:
                base = variants[subtracted]
                by_rows[rows] = statistics.median(
                    m - b for m, b in zip(measured, base, strict=True)
                )
        costs[label] = by_rows
    return costs


def _memory_added(
    memory: Mapping[str, Mapping[int, Mapping[str, Mapping[str, Any]]]],
    field: str,
) -> dict[str, dict[int, float | None]]:
    added: dict[str, dict[int, float | None]] = {}
    for label, worker, variant, subtracted in SERIES:
        if worker not in memory:
            continue
        by_rows: dict[int, float | None] = {}
        for rows, variants in memory[worker].items():
            value = variants.get(variant, {}).get(field)
            if value is not None and subtracted is not None:
                base = variants.get(subtracted, {}).get(field)
                value = None if base is None else value - base
            by_rows[rows] = value
        added[label] = by_rows
    return added


def _tick_label(value: float, unit: str) -> str:
    if unit == "rows":
        return f"{value:,.0f}"
    for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if value >= scale * 0.999:
            return f"{value / scale:g} {suffix}"
    return f"{value * 1e9:g} ns"


def render_svg(series: Mapping[str, Mapping[int, float]], title: str) -> str:
    """Render a log-log line plot of seconds against batch rows as SVG text.

    Each series becomes one polyline with a marker per point. Values at or
    below zero cannot be placed on a log axis, so they are left out.
    """
    points = {
        label: sorted((rows, value) for rows, value in values.items() if value > 0)
        for label, values in series.items()
    }
    points = {label: p for label, p in points.items() if p}
    if not points:
        raise ValueError("render_svg needs at least one positive value")
    every_rows = [rows for p in points.values() for rows, _ in p]
    every_value = [value for p in points.values() for _, value in p]
    x_low = math.floor(math.log10(min(every_rows)))
    x_high = max(x_low + 1, math.ceil(math.log10(max(every_rows))))
    y_low = math.floor(math.log10(min(every_value)))
    y_high = max(y_low + 1, math.ceil(math.log10(max(every_value))))
    width, height = 820, 500
    left, right, top, bottom = 80, 290, 40, 60
    plot_width = width - left - right
    plot_height = height - top - bottom

    def x_of(rows: float) -> float:
        return left + (math.log10(rows) - x_low) / (x_high - x_low) * plot_width

    def y_of(value: float) -> float:
        return top + (y_high - math.log10(value)) / (y_high - y_low) * plot_height

    colours = ("#777777", "#1f77b4", "#17becf", "#ff7f0e", "#2ca02c", "#d62728",
               "#9467bd", "#8c564b")  # fmt: skip
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left + plot_width / 2:.1f}" y="22" text-anchor="middle" '
        f'font-size="14">{escape(title)}</text>',
    ]
    for exponent in range(x_low, x_high + 1):
        x = x_of(10**exponent)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_height}" '
            'stroke="#dddddd"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{top + plot_height + 18}" text-anchor="middle">'
            f"{escape(_tick_label(10**exponent, 'rows'))}</text>"
        )
    for exponent in range(y_low, y_high + 1):
        y = y_of(10.0**exponent)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_width}" y2="{y:.1f}" '
            'stroke="#dddddd"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_tick_label(10.0**exponent, 'seconds'))}</text>"
        )
    parts.append(
        f'<rect x="{left}" y="{top}" width="{plot_width}" height="{plot_height}" '
        'fill="none" stroke="black"/>'
    )
    parts.append(
        f'<text x="{left + plot_width / 2:.1f}" y="{height - 18}" '
        'text-anchor="middle">batch size (rows of 20 features)</text>'
    )
    parts.append(
        f'<text transform="translate(18 {top + plot_height / 2:.1f}) rotate(-90)" '
        'text-anchor="middle">added time per call (log scale)</text>'
    )
    for index, (label, values) in enumerate(points.items()):
        colour = colours[index % len(colours)]
        coordinates = " ".join(f"{x_of(r):.1f},{y_of(v):.1f}" for r, v in values)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
            f'points="{coordinates}"><title>{escape(label)}</title></polyline>'
        )
        for rows, value in values:
            parts.append(
                f'<circle cx="{x_of(rows):.1f}" cy="{y_of(value):.1f}" r="3" '
                f'fill="{colour}"/>'
            )
        legend_y = top + 10 + index * 22
        legend_x = left + plot_width + 16
        parts.append(
            f'<line x1="{legend_x}" y1="{legend_y}" x2="{legend_x + 24}" '
            f'y2="{legend_y}" stroke="{colour}" stroke-width="2"/>'
        )
        parts.append(
            f'<text x="{legend_x + 30}" y="{legend_y + 4}">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _markdown_tables(
    costs: Mapping[str, Mapping[int, float]],
    memory: Mapping[str, Mapping[str, Mapping[int, float | None]]],
    bare: Mapping[int, float],
    unavailable: Mapping[str, str],
) -> str:
    labels = [label for label, *_ in SERIES if label in costs]
    header = "| rows | bare model | " + " | ".join(labels) + " |"
    rule = "|---" * (len(labels) + 2) + "|"
    lines = ["Added time per call (median of rounds):", "", header, rule]

    for rows in BATCH_ROWS:
        cells = [format_seconds(costs[label].get(rows)) for label in labels]
        lines.append(
            f"| {rows:,} | {format_seconds(bare.get(rows))} | " + " | ".join(cells) + " |"
        )

    peers = [label for label in labels if label not in (OURS, "OpenTelemetry SDK floor")]
    lines += ["", f"Peer's added time over {OURS}'s (numpy input):", ""]
    lines.append("| rows | " + " | ".join(peers) + " |")
    lines.append("|---" * (len(peers) + 1) + "|")
    for rows in BATCH_ROWS:
        ours = costs[OURS].get(rows)
        cells = []
        for label in peers:
            theirs = costs[label].get(rows)
            if ours is None or theirs is None or ours <= 0:
                cells.append("n/a")
            else:
                cells.append(format_ratio(theirs / ours))
        lines.append(f"| {rows:,} | " + " | ".join(cells) + " |")

    for field, title in (
        ("tracemalloc_peak", "Added tracemalloc peak of one call"),
        ("peak_rss_growth", "Added peak resident set size growth of one call"),
    ):
        lines += ["", f"{title}:", "", "| rows | " + " | ".join(labels) + " |",
                  "|---" * (len(labels) + 1) + "|"]  # fmt: skip
        for rows in BATCH_ROWS:
            cells = [format_bytes(memory[field].get(label, {}).get(rows)) for label in labels]
            lines.append(f"| {rows:,} | " + " | ".join(cells) + " |")

    for tool, reason in unavailable.items():
        lines += ["", f"{tool}: not measured: {reason}"]
    return "\n".join(lines)


def _start_workers(
    folder: Path, skipped: Sequence[str], logs: list[IO[str]]
) -> tuple[dict[str, Worker], dict[str, str]]:
    """Start one worker per tool, and return them and the reason for each missing one."""
    workers: dict[str, Worker] = {}
    unavailable: dict[str, str] = {}
    for tool in WORKERS:
        if tool in skipped:
            unavailable[tool] = "skipped with --skip"
            continue
        try:
            python = _environment_python(tool)
        except (RuntimeError, subprocess.CalledProcessError) as error:
            unavailable[tool] = str(error)
            continue
        log_path = folder / f"{tool}.log"
        log = log_path.open("w")
        logs.append(log)
        try:
            workers[tool] = Worker(tool, python, folder, log)
        except RuntimeError as error:
            log.flush()
            unavailable[tool] = f"{error}: {_last_error_line(log_path)}"
    return workers, unavailable


def _time_rounds(
    workers: Mapping[str, Worker], rounds: int, block_seconds: float
) -> tuple[dict[str, dict[int, dict[str, list[float]]]], dict[tuple[str, int, str], str]]:
    """Time every tool's variants, interleaving tools and batch sizes per round."""
    samples: dict[str, dict[int, dict[str, list[float]]]] = {
        tool: {rows: {} for rows in BATCH_ROWS} for tool in workers
    }
    errors: dict[tuple[str, int, str], str] = {}
    for round_index in range(rounds):
        started = time.perf_counter()
        for rows in BATCH_ROWS:
            for tool, worker in workers.items():
                answer = worker.request(
                    {"op": "time", "rows": rows, "block_seconds": block_seconds}
                )
                for variant, result in answer.items():
                    if "error" in result:
                        errors[(tool, rows, variant)] = result["error"]
                    else:
                        measured = samples[tool][rows].setdefault(variant, [])
                        measured.append(result["seconds"])
        print(
            f"round {round_index + 1}/{rounds}: {time.perf_counter() - started:.1f} s",
            flush=True,
        )
    return samples, errors


def run(
    rounds: int, block_seconds: float, skipped: Sequence[str], svg_path: Path
) -> None:
    with tempfile.TemporaryDirectory(prefix="otel-mlmon-peers-") as name:
        folder = Path(name)
        _write_data(folder)
        logs: list[IO[str]] = []
        workers: dict[str, Worker] = {}
        try:
            workers, unavailable = _start_workers(folder, skipped, logs)
            if "otel_mlmon" not in workers:
                raise RuntimeError(f"otel_mlmon worker failed: {unavailable}")
            load_before = os.getloadavg()[0]
            samples, errors = _time_rounds(workers, rounds, block_seconds)
            load_after = os.getloadavg()[0]
            memory_samples = {
                tool: {
                    rows: worker.request({"op": "memory", "rows": rows})
                    for rows in BATCH_ROWS
                }
                for tool, worker in workers.items()
            }
        finally:
            for worker in workers.values():
                worker.close()
            for log in logs:
                log.close()

    costs = _added_costs(samples)
    memory = {
        field: _memory_added(memory_samples, field)
        for field in ("tracemalloc_peak", "peak_rss_growth")
    }
    bare = {
        rows: statistics.median(samples["otel_mlmon"][rows]["bare"])
        for rows in BATCH_ROWS
    }
    print()
    print(f"Machine: {os.cpu_count()} cores, {platform.platform()}, "
          f"{_processor_name()}; 1-minute load average {load_before:.1f} "
          f"before the rounds, {load_after:.1f} after")  # fmt: skip
    for tool, worker in workers.items():
        listed = ", ".join(f"{k} {v}" for k, v in worker.versions.items())
        print(f"{tool}: {listed}")
    for (tool, rows, variant), message in sorted(errors.items()):
        print(f"{tool} {variant} at {rows} rows failed: {message}")
    print()
    print(_markdown_tables(costs, memory, bare, unavailable))
    svg_path.parent.mkdir(parents=True, exist_ok=True)
    svg_path.write_text(
        render_svg(costs, "Added time per batch of predictions (median, log-log)")
    )
    print(f"\nWrote {svg_path}")


def _processor_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown processor"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=15, help="interleaved timing rounds (default 15)"
    )
    parser.add_argument(
        "--block-seconds",
        type=float,
        default=0.05,
        help="time one timing block aims at, in seconds; a block is never "
        "shorter than one call (default 0.05)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=[w for w in WORKERS if w != "otel_mlmon"],
        help="leave out a peer (repeatable)",
    )
    parser.add_argument(
        "--setup",
        action="store_true",
        help="only create the peers' virtual environments, then exit",
    )
    parser.add_argument(
        "--svg", type=Path, default=DEFAULT_SVG, help="path of the SVG plot to write"
    )
    parser.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()

    if arguments.worker:
        _serve(arguments.worker, arguments.data)
        return
    if arguments.setup:
        for worker in PEER_ENVIRONMENTS:
            if worker in arguments.skip:
                continue
            try:
                print(f"{worker}: {_environment_python(worker)}")
            except (RuntimeError, subprocess.CalledProcessError) as error:
                print(f"{worker}: failed: {error}")
        return

    run(arguments.rounds, arguments.block_seconds, arguments.skip, arguments.svg)


if __name__ == "__main__":
    main()
