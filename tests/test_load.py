"""Load on gunicorn: an instrumented model server against the same server bare.

One module-scoped run of ``benchmarks/load.py``'s phases, smaller than the
benchmark's comparison but with its full memory phase. Two gunicorn servers
(2 workers x 4 threads) on 127.0.0.1 serve the same Flask app, a
LogisticRegression pipeline trained on the breast cancer data set. One runs
under ``opentelemetry-instrument`` and exports over OTLP/HTTP to a receiver
in this process, and the other is plain gunicorn. The client alternates
rounds between them:

- comparison: 2,400 one-row requests per server in 8 rounds;
- memory: 1,000,000 rows per server in requests of 1,000 rows, in 10
  chunks, with each worker's VmRSS read after a warm-up and every chunk.

The tests then check the replies, the exported spans, the throughput and
p99 latency ratios and the resident set size of the workers.
"""

from __future__ import annotations

import collections
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import load  # noqa: E402 (benchmarks/load.py)
from otel_mlmon_test_support import HttpReceiver  # noqa: E402

COMPARISON_REQUESTS = 2400
COMPARISON_ROUNDS = 8
MEMORY_ROWS = 1_000_000
MEMORY_BATCH_ROWS = 1000
MEMORY_CHUNKS = 10
WARMUP_REQUESTS = 200
CONCURRENCY = 8
REQUESTS_PER_CONNECTION = 50

# Throughput ratios, instrumented over bare, that the run must reach. On a
# 2-core VM, with other test suites running (load average 7-8), this test
# and benchmarks/load.py measured 0.46-0.63 for one-row requests and
# 0.65-0.80 for 1,000-row requests. Instrumentation adds a Flask server span, the
# prediction span with 30 feature summaries, drift counting and OTLP
# encoding to a request that costs the bare server about 1 ms of CPU. The
# bounds leave room for a noisy neighbour and still fail if the
# instrumented request costs more than about three times the bare one.
MIN_THROUGHPUT_RATIO = {"comparison": 0.3, "memory": 0.35}
# p99 latency ratios, instrumented over bare: measured 1.3-3.7 for one-row
# requests and 0.76-1.9 for 1,000-row requests. The p99 of a shared machine
# moves with every neighbour's burst, so the bounds are wide; they catch
# exports that stall request threads for long.
MAX_P99_RATIO = {"comparison": 8.0, "memory": 6.0}
# VmRSS of an instrumented worker moved by up to 4 MiB between samples with
# no trend (allocator noise). It ended at most 4.7 MiB above the warm-up
# sample (8.5 MiB once, with a 100-request warm-up), and the bare workers at
# most 5.3 MiB above theirs. Each worker predicts about 500,000 rows in 500
# calls, so a leak of 32 bytes per row or 32 KiB per call would pass 16 MiB.
MAX_RSS_GROWTH_BYTES = 16 * 2**20
MAX_RSS_TREND_BYTES_PER_MILLION_ROWS = 16 * 2**20


@dataclasses.dataclass
class LoadRun:
    """Everything the run returned, read by the tests below."""

    comparison_warmup: dict[str, load.RoundResult]
    comparison: dict[str, load.RoundResult]
    memory: load.MemoryPhase
    worker_pids: dict[str, list[int]]
    instrumented_requests: int
    spans_by_pid: collections.Counter[int]
    metric_names: set[str]

    def results(self) -> dict[str, dict[str, load.RoundResult]]:
        return {
            "comparison warm-up": self.comparison_warmup,
            "comparison": self.comparison,
            "memory warm-up": self.memory.warmup,
            "memory": self.memory.totals,
        }


def _spans_by_pid(receiver: HttpReceiver) -> collections.Counter[int]:
    with receiver.received.lock:
        requests = list(receiver.received.requests["traces"])
    return load.prediction_spans_by_pid(requests)


@pytest.fixture(name="run", scope="module")
def fixture_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadRun]:
    receiver = HttpReceiver()
    model = load.load_model()
    baseline = load.save_baseline(
        model.x, tmp_path_factory.mktemp("load") / "baseline.json"
    )
    small = load.make_batches(model, 1, 64, seed=1)
    large = load.make_batches(model, MEMORY_BATCH_ROWS, 8, seed=2)
    connection = (CONCURRENCY, REQUESTS_PER_CONNECTION)
    try:
        with load.running_servers(
            receiver.endpoint, baseline, load.ServerOptions()
        ) as servers:
            worker_pids = {
                side: server.worker_pids()
                for side, server in servers.by_side().items()
            }
            warmup = load.warm_up(servers, small, WARMUP_REQUESTS, *connection)
            comparison = load.alternate_rounds(
                servers, small, COMPARISON_REQUESTS, COMPARISON_ROUNDS, *connection
            )
            memory = load.memory_phase(
                servers,
                large,
                MEMORY_ROWS,
                MEMORY_CHUNKS,
                WARMUP_REQUESTS,
                *connection,
            )
            sent = sum(
                result["instrumented"].requests
                for result in (warmup, comparison, memory.warmup, memory.totals)
            )
            # Spans leave each worker within 200 ms; metrics every 10 s.
            load.wait_for(
                lambda: sum(_spans_by_pid(receiver).values()) >= sent, timeout=30
            )
            load.wait_for(
                lambda: "ml.model.predictions" in receiver.received.metric_names(),
                timeout=15,
            )
            yield LoadRun(
                comparison_warmup=warmup,
                comparison=comparison,
                memory=memory,
                worker_pids=worker_pids,
                instrumented_requests=sent,
                spans_by_pid=_spans_by_pid(receiver),
                metric_names=receiver.received.metric_names(),
            )
    finally:
        receiver.close()


PHASES = ["comparison warm-up", "comparison", "memory warm-up", "memory"]


@pytest.mark.parametrize("side", load.SIDES)
@pytest.mark.parametrize("phase", PHASES)
def test_load_requests_all_succeed(run: LoadRun, phase: str, side: str) -> None:
    result = run.results()[phase][side]
    assert result.errors == []
    assert result.checked == result.requests


@pytest.mark.parametrize("side", load.SIDES)
@pytest.mark.parametrize("phase", PHASES)
def test_load_outputs_equal_bare_model(run: LoadRun, phase: str, side: str) -> None:
    assert run.results()[phase][side].mismatches == []


@pytest.mark.parametrize("side", load.SIDES)
def test_load_both_workers_served(run: LoadRun, side: str) -> None:
    served = run.comparison[side].pids + run.memory.totals[side].pids
    assert len(run.worker_pids[side]) == 2
    assert sorted(served) == run.worker_pids[side]


def test_load_spans_from_both_workers(run: LoadRun) -> None:
    print(f"prediction spans by worker pid: {dict(run.spans_by_pid)}")
    assert sorted(run.spans_by_pid) == run.worker_pids["instrumented"]


def test_load_every_prediction_exported(run: LoadRun) -> None:
    assert sum(run.spans_by_pid.values()) == run.instrumented_requests


def test_load_metrics_exported(run: LoadRun) -> None:
    assert "ml.model.predictions" in run.metric_names


def _comparison_of(run: LoadRun, phase: str, show: bool = True) -> load.Comparison:
    totals = run.comparison if phase == "comparison" else run.memory.totals
    comparison = load.compare(totals)
    if show:
        print(f"{phase}: ratio is instrumented / bare")
        print("\n".join(load.format_comparison(comparison)))
    return comparison


@pytest.mark.parametrize("phase", ["comparison", "memory"])
def test_load_throughput_ratio_bounded(run: LoadRun, phase: str) -> None:
    comparison = _comparison_of(run, phase)
    assert comparison.throughput_ratio >= MIN_THROUGHPUT_RATIO[phase]


@pytest.mark.parametrize("phase", ["comparison", "memory"])
def test_load_p99_ratio_bounded(run: LoadRun, phase: str) -> None:
    comparison = _comparison_of(run, phase, show=False)
    print(
        f"{phase}: p99 {comparison.p99['instrumented'] * 1e3:.1f} ms instrumented, "
        f"{comparison.p99['bare'] * 1e3:.1f} ms bare, "
        f"ratio {comparison.p99_ratio:.3f}"
    )
    assert comparison.p99_ratio <= MAX_P99_RATIO[phase]


def test_load_memory_phase_million_rows(run: LoadRun) -> None:
    assert run.memory.totals["instrumented"].rows >= MEMORY_ROWS
    assert run.memory.samples["instrumented"].rows[-1] >= MEMORY_ROWS


def test_load_worker_rss_flat(run: LoadRun) -> None:
    for side in load.SIDES:
        print(f"{side} workers, VmRSS in MiB after warm-up and each chunk:")
        print("\n".join(load.format_memory(run.memory.samples[side])))
    samples = run.memory.samples["instrumented"]
    for pid in run.worker_pids["instrumented"]:
        assert len(samples.by_pid[pid]) == MEMORY_CHUNKS + 1, pid
        assert samples.growth(pid) < MAX_RSS_GROWTH_BYTES, pid
        assert samples.slope(pid) < MAX_RSS_TREND_BYTES_PER_MILLION_ROWS, pid
