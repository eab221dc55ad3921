"""The bench's results file, page and charts from one sample run (no stack needed): the run's
figures go through `as_data` and JSON, and the page and the three PNGs are drawn from that."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench import charts, report, run
from bench.run import Options, Results, as_data
from bench.throughput import PhaseTime, SystemResult

PNG = b"\x89PNG\r\n\x1a\n"


def _sample() -> dict:
    results = Results(Options(commands=3000, rate=50, seconds=5, query_rate=100,
                              recovery_events=1000), datetime(2026, 12, 2, 8, 0, tzinfo=UTC))
    results.phases = [1000, 1500, 500]
    results.systems = [
        SystemResult("eventpipe, 1 worker", [PhaseTime(1000, 1.0), PhaseTime(1500, 2.0),
                                             PhaseTime(500, 0.5)], 300.0, {"DRAFT": 10}),
        SystemResult("Quix Streams, 1 process", [PhaseTime(1000, 2.0), PhaseTime(1500, 4.0),
                                                 PhaseTime(500, 1.0, missing=7)], 200.0),
    ]
    request = {"requests": 250, "seconds": 5.0, "achieved_rate": 50.0, "errors": 0,
               "statuses": {"201": 250}, "p50": 20.0, "p95": 40.0, "p99": 80.0, "max": 95.0,
               "distribution": {"percentiles": [0, 50, 90, 99, 100],
                                "ms": [5.0, 20.0, 35.0, 80.0, 95.0]}}
    # one without its distribution (a run from before it was kept): drawn from p50..max
    bare = {k: v for k, v in request.items() if k != "distribution"}
    results.latency = {"command": request, "bare": bare, "overload_seconds": 5,
                       "peak_rss_mb": {"worker": 250.0, "api": 120.0}}
    results.recovery = {"events": 1000, "fill_seconds": 1.0, "store_mb": 5.0,
                        "cold_seconds": 4.2, "cold_peak_rss_mb": 200.0, "warm_seconds": 1.1,
                        "warm_peak_rss_mb": 150.0}
    # as the run writes it and as the charts read it
    return json.loads(json.dumps(as_data(results, ["- machine: a test"])))


def test_the_charts_are_drawn_from_the_results_data(tmp_path: Path) -> None:
    written = charts.write(_sample(), tmp_path)
    assert sorted(p.name for p in written) == ["latency.png", "recovery.png", "throughput.png"]
    for path in written:
        data = path.read_bytes()
        assert data.startswith(PNG), path
        assert len(data) > 5000, path  # a drawn chart, not an empty canvas


def test_the_page_links_the_charts_and_shows_the_figures(tmp_path: Path) -> None:
    data = _sample()
    assert data["systems"][1]["rate"] is None  # a phase did not finish: no rate claimed
    page = report.render(data)
    for chart in ("throughput.png", "latency.png", "recovery.png"):
        assert f"]({chart})" in page
    assert "| eventpipe, 1 worker | 1.0 | 2.0 | 0.5 | 857 | 1.00 | 300 | DRAFT 10 |" in page
    assert "did not finish: 7 outcomes" in page
    assert "| cold (store empty: restores everything from the changelog) | 4.2 | 200 |" in page


def test_without_figures_of_a_step_its_chart_is_not_drawn(tmp_path: Path) -> None:
    data = _sample()
    data["recovery"] = {}
    assert sorted(p.name for p in charts.write(data, tmp_path)) == ["latency.png",
                                                                    "throughput.png"]
    assert not (tmp_path / "recovery.png").exists()


def test_a_run_writes_its_results_file_then_the_page_and_charts_from_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sample = _sample()

    def fill(opts: Options, results: Results) -> None:  # the three steps' figures at once
        full = _results_of(sample)
        results.phases, results.systems = full.phases, full.systems
        results.latency, results.recovery = full.latency, full.recovery

    monkeypatch.setattr(run, "throughput", fill)
    monkeypatch.setattr(run, "latency", lambda opts, results: None)
    monkeypatch.setattr(run, "recovery", lambda opts, results: None)
    run.main(Options(), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "RESULTS.md", "latency.png", "recovery.png", "results.json", "throughput.png"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["systems"] == sample["systems"]
    assert saved["latency"]["command"]["distribution"]["ms"] == [5.0, 20.0, 35.0, 80.0, 95.0]
    assert (tmp_path / "RESULTS.md").read_text().startswith("# Benchmark results")


def _results_of(data: dict) -> Results:
    results = Results(Options(), datetime.now(UTC))
    results.phases = data["phases"]
    results.systems = [SystemResult(s["name"], [PhaseTime(**p) for p in s["phases"]],
                                    s["peak_rss_mb"], s["statuses"]) for s in data["systems"]]
    results.latency, results.recovery = data["latency"], data["recovery"]
    return results
