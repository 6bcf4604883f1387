"""The peer benchmark's SVG plot and added-cost arithmetic, on fixed figures."""

from __future__ import annotations

import importlib.util
import math
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from types import ModuleType

import pytest

SVG = "{http://www.w3.org/2000/svg}"


def _load_peers() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "peers.py"
    spec = importlib.util.spec_from_file_location("benchmark_peers", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


peers = _load_peers()

FIGURES = {
    "fast": {1: 1e-4, 100: 2e-4, 10_000: 5e-3},
    "slow": {1: 1e-2, 100: 3e-2, 10_000: 2e-1},
    "flat": {1: 1.0, 100: 1.0, 10_000: 1.0},
}


def _polylines(svg: str) -> list[ElementTree.Element]:
    root = ElementTree.fromstring(svg)
    return root.findall(f"{SVG}polyline")


def _points(line: ElementTree.Element) -> list[tuple[float, float]]:
    pairs = [pair.split(",") for pair in line.attrib["points"].split()]
    return [(float(x), float(y)) for x, y in pairs]


def test_svg_one_line_per_series() -> None:
    lines = _polylines(peers.render_svg(FIGURES, "t"))
    assert len(lines) == 3
    titles = [line.findtext(f"{SVG}title") for line in lines]
    assert titles == ["fast", "slow", "flat"]


def test_svg_axes_are_logarithmic() -> None:
    fast, slow, flat = (_points(line) for line in _polylines(peers.render_svg(FIGURES, "t")))
    # Rows 1, 100 and 10,000 are two decades apart, so evenly spaced in x.
    xs = [x for x, _ in fast]
    assert math.isclose(xs[1] - xs[0], xs[2] - xs[1], rel_tol=1e-3)
    # 1e-4 s to 1e-2 s and 1e-2 s to 1 s are both two decades: equal heights.
    assert math.isclose(fast[0][1] - slow[0][1], slow[0][1] - flat[0][1], rel_tol=1e-2)
    # Larger times sit higher, which is a smaller SVG y.
    assert slow[0][1] < fast[0][1]


def test_svg_drops_nonpositive_values() -> None:
    svg = peers.render_svg({"noisy": {1: -2e-5, 10: 0.0, 100: 3e-4, 1000: 1e-3}}, "t")
    (line,) = _polylines(svg)
    assert len(_points(line)) == 2


def test_svg_escapes_labels() -> None:
    svg = peers.render_svg({"a < b & c": {1: 1e-3, 10: 2e-3}}, "x & y")
    root = ElementTree.fromstring(svg)
    texts = [element.text for element in root.iter(f"{SVG}text")]
    assert "a < b & c" in texts


def test_svg_without_positive_values_raises() -> None:
    with pytest.raises(ValueError, match="positive"):
        peers.render_svg({"empty": {1: 0.0}}, "t")


def test_added_cost_pairs_rounds() -> None:
    # Round 3 is slow for both variants and round 2 for the wrapped call
    # only. Paired per round, the median added cost is 10 µs, where the
    # difference of the two medians would be 900 µs.
    samples = {
        "otel_mlmon": {
            1: {
                "bare": [100e-6, 100e-6, 1000e-6],
                "wrapped": [110e-6, 1000e-6, 1010e-6],
                "sdk": [105e-6, 105e-6, 1005e-6],
            }
        }
    }
    costs = peers._added_costs(samples)
    assert math.isclose(costs[peers.OURS][1], 10e-6, rel_tol=1e-6)
    assert math.isclose(costs["OpenTelemetry SDK floor"][1], 5e-6, rel_tol=1e-6)


def test_added_cost_whole_call_peers() -> None:
    samples = {"whylogs": {10: {"whylogs": [3e-3, 1e-3, 2e-3]}}}
    costs = peers._added_costs(samples)
    assert costs["whylogs why.log"][10] == 2e-3
