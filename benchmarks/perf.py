"""Performance: typedqueue against plain Celery, side by side in one run.

    python -m benchmarks.perf [--quick]

Starts its own redis-server on loopback and its own workers. Every figure is
a median over rounds that alternate the contenders, and the report quotes
ratios: absolute numbers drift on a shared machine, ratios far less. Writes
benchmarks/results.json, benchmarks/results.md and benchmarks/throughput.png;
with --quick it only prints.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from benchmarks.servers import ROOT, redis_server

PAYLOAD = {"email": "user@example.com", "subject": "Welcome", "body": "Hello!"}
OUT = Path(__file__).resolve().parent
Results = dict[str, Any]


def per_call_us(call: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - started) / count * 1e6


def median_of(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}


def bench_dispatch(perf: Any, server: redis.Redis, rounds: int, count: int) -> Results:
    """1 and 2: one dispatch, with and without dedupe, against apply_async."""
    client = perf.runtime.create_client()

    def dispatch_then_set_nx() -> None:
        client.dispatch(perf.perf_typed, PAYLOAD)
        server.set(f"nx:{uuid.uuid4().hex}", "1", nx=True, px=60_000)

    contenders: dict[str, Callable[[], object]] = {
        "celery_apply_async": lambda: perf.perf_plain.apply_async(
            kwargs=PAYLOAD, queue="perf"
        ),
        "dispatch": lambda: client.dispatch(perf.perf_typed, PAYLOAD),
        "dispatch_dedupe": lambda: client.dispatch(
            perf.perf_typed, PAYLOAD, dedupe_key=uuid.uuid4().hex
        ),
        "dispatch_then_set_nx": dispatch_then_set_nx,
    }
    for call in contenders.values():
        per_call_us(call, 200)  # warm up connections and caches
    measured = []
    for _ in range(rounds):
        measured.append(
            {name: per_call_us(call, count) for name, call in contenders.items()}
        )
        server.flushdb()
    us = median_of(measured)
    return {
        "per_call_us": us,
        "dispatch_vs_apply_async": us["dispatch"] / us["celery_apply_async"],
        "dedupe_vs_dispatch": us["dispatch_dedupe"] / us["dispatch"],
        "dedupe_vs_dispatch_then_set_nx": us["dispatch_dedupe"]
        / us["dispatch_then_set_nx"],
    }


def bench_bulk(perf: Any, server: redis.Redis, rounds: int, count: int) -> Results:
    """3: dispatch_many against a loop of apply_async."""
    client = perf.runtime.create_client()
    payloads = [PAYLOAD] * count
    measured = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(count):
            perf.perf_plain.apply_async(kwargs=PAYLOAD, queue="perf")
        loop_s = time.perf_counter() - started
        server.flushdb()
        started = time.perf_counter()
        client.dispatch_many(perf.perf_typed, payloads)
        bulk_s = time.perf_counter() - started
        server.flushdb()
        measured.append(
            {"apply_async_loop": count / loop_s, "dispatch_many": count / bulk_s}
        )
    per_s = median_of(measured)
    return {
        "jobs": count,
        "jobs_per_s": per_s,
        "dispatch_many_vs_loop": per_s["dispatch_many"] / per_s["apply_async_loop"],
    }


@contextmanager
def worker(env: dict[str, str], pool: str, concurrency: int) -> Iterator[None]:
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "benchmarks.perf_app", "worker"]
        + ["-Q", "perf", "--pool", pool, "--concurrency", str(concurrency)]
        + ["--loglevel", "WARNING", "--without-heartbeat", "--without-mingle"]
        + ["--without-gossip", "--hostname", f"perf-{uuid.uuid4().hex[:6]}@%h"],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.terminate()
        process.wait(30)


def fill(perf: Any, kind: str, count: int, mark: str | None = None) -> None:
    """Queue ``count`` jobs of one kind in one pipeline."""
    if kind == "typed":
        payload = {**PAYLOAD, "mark": mark}
        perf.runtime.create_client().dispatch_many(perf.perf_typed, [payload] * count)
        return
    with perf.app.producer_or_acquire() as producer, producer.batch(max_size=2 * count):
        for _ in range(count):
            perf.perf_plain.apply_async(kwargs=PAYLOAD, queue="perf", producer=producer)


def drain_rate(server: redis.Redis, kind: str, count: int, timeout_s: float) -> float:
    """Jobs per second from the first job done to the last."""
    key = f"done:{kind}"
    deadline = time.monotonic() + timeout_s
    while int(server.get(key) or 0) < 1:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {kind} job ran")
        time.sleep(0.002)
    first = time.perf_counter()
    while int(server.get(key) or 0) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{kind} jobs did not finish")
        time.sleep(0.002)
    return (count - 1) / (time.perf_counter() - first)


def bench_worker(
    perf: Any, server: redis.Redis, env: dict[str, str], rounds: int, count: int
) -> Results:
    """4: a worker draining trivial jobs, typed against plain."""
    results: Results = {}
    for pool, concurrency in (("solo", 1), ("prefork", 2)):
        measured = []
        for _ in range(rounds):
            rates = {}
            for kind in ("plain", "typed"):
                server.flushdb()
                fill(perf, kind, count)
                with worker(env, pool, concurrency):
                    rates[kind] = drain_rate(server, kind, count, timeout_s=300)
            measured.append(rates)
        per_s = median_of(measured)
        results[f"{pool}_c{concurrency}"] = {
            "jobs_per_s": per_s,
            "typed_vs_plain": per_s["typed"] / per_s["plain"],
        }
    server.flushdb()
    return results


def bench_latency(
    perf: Any, server: redis.Redis, env: dict[str, str], samples: int
) -> Results:
    """5: dispatch to handler start, one idle worker."""
    client = perf.runtime.create_client()
    latencies: dict[str, list[float]] = {"plain": [], "typed": []}
    with worker(env, "solo", 1):
        time.sleep(2)
        for index in range(samples * 2 + 20):
            kind = "typed" if index % 2 else "plain"
            mark = uuid.uuid4().hex
            sent = time.time()
            if kind == "typed":
                client.dispatch(perf.perf_typed, {**PAYLOAD, "mark": mark})
            else:
                perf.perf_plain.apply_async(
                    kwargs={**PAYLOAD, "mark": mark}, queue="perf"
                )
            _, started = server.blpop([f"started:{mark}"], timeout=10) or (None, None)
            if started is None:
                raise TimeoutError("a latency probe did not run")
            if index >= 20:  # the first ones warm the worker up
                latencies[kind].append((float(started) - sent) * 1000)
    report: Results = {}
    for kind, values in latencies.items():
        values.sort()
        report[kind] = {
            "p50_ms": values[len(values) // 2],
            "p99_ms": values[int(len(values) * 0.99) - 1],
        }
    report["p50_typed_vs_plain"] = report["typed"]["p50_ms"] / report["plain"]["p50_ms"]
    report["p99_typed_vs_plain"] = report["typed"]["p99_ms"] / report["plain"]["p99_ms"]
    server.flushdb()
    return report


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def bench_memory(perf: Any, server: redis.Redis, total: int) -> Results:
    """6: a producer's resident memory after 1,000 dispatches and after ``total``."""
    client = perf.runtime.create_client()
    for index in range(total):
        client.dispatch(perf.perf_typed, PAYLOAD, dedupe_key=str(index))
        if index + 1 == 1000:
            early = rss_kib()
        if index % 20_000 == 0:
            server.flushdb()
    late = rss_kib()
    server.flushdb()
    return {
        "rss_kib_after_1000": early,
        f"rss_kib_after_{total}": late,
        "growth": late / early - 1,
    }


def bench_peers(url: str, rounds: int, count: int) -> Results:
    """7: rq's enqueue and dramatiq's send of the same payload, for context."""
    try:
        import dramatiq
        from dramatiq.brokers.redis import RedisBroker
        from rq import Queue
    except ImportError:
        return {
            "skipped": "rq and dramatiq are not installed (benchmarks/requirements.txt)"
        }

    rq_queue = Queue("rq-perf", connection=redis.Redis.from_url(url))
    broker = RedisBroker(url=url)
    dramatiq.set_broker(broker)

    @dramatiq.actor(queue_name="dramatiq-perf")
    def send_email(email: str, subject: str, body: str) -> None: ...

    contenders: dict[str, Callable[[], object]] = {
        "rq_enqueue": lambda: rq_queue.enqueue(
            "benchmarks.perf_app.perf_plain", **PAYLOAD
        ),
        "dramatiq_send": lambda: send_email.send_with_options(kwargs=PAYLOAD),
    }
    measured = [
        {name: per_call_us(call, count) for name, call in contenders.items()}
        for _ in range(rounds)
    ]
    redis.Redis.from_url(url).flushdb()
    return {"per_call_us": median_of(measured)}


def report(results: Results) -> str:
    d, b, w, lat, mem = (
        results[k] for k in ("dispatch", "bulk", "worker", "latency", "memory")
    )
    us = d["per_call_us"]
    rows = [
        (
            "1. dispatch vs apply_async, per call",
            f"{us['dispatch']:.0f} vs {us['celery_apply_async']:.0f} µs",
            d["dispatch_vs_apply_async"],
            "<= 1.10",
        ),
        (
            "2. dispatch with dedupe vs without",
            f"{us['dispatch_dedupe']:.0f} vs {us['dispatch']:.0f} µs",
            d["dedupe_vs_dispatch"],
            "<= 1.30",
        ),
        (
            "2. dedupe vs dispatch + one SET NX",
            f"{us['dispatch_dedupe']:.0f} vs {us['dispatch_then_set_nx']:.0f} µs",
            d["dedupe_vs_dispatch_then_set_nx"],
            "<= 1.10",
        ),
        (
            f"3. dispatch_many vs apply_async loop, {b['jobs']:,} jobs",
            f"{b['jobs_per_s']['dispatch_many']:,.0f} vs "
            f"{b['jobs_per_s']['apply_async_loop']:,.0f} jobs/s",
            b["dispatch_many_vs_loop"],
            ">= 5",
        ),
    ]
    for pool, figures in w.items():
        per_s = figures["jobs_per_s"]
        rows.append(
            (
                f"4. worker drain, {pool}",
                f"{per_s['typed']:,.0f} vs {per_s['plain']:,.0f} jobs/s",
                figures["typed_vs_plain"],
                ">= 0.90",
            )
        )
    rows += [
        (
            "5. latency p50, typed vs plain",
            f"{lat['typed']['p50_ms']:.2f} vs {lat['plain']['p50_ms']:.2f} ms",
            lat["p50_typed_vs_plain"],
            "<= 1.10",
        ),
        (
            "5. latency p99, typed vs plain",
            f"{lat['typed']['p99_ms']:.2f} vs {lat['plain']['p99_ms']:.2f} ms",
            lat["p99_typed_vs_plain"],
            "<= 1.10",
        ),
    ]
    late_key = next(
        k for k in mem if k.startswith("rss_kib_after_") and k != "rss_kib_after_1000"
    )
    rows.append(
        (
            f"6. producer RSS, {late_key.rsplit('_', 1)[1]} vs 1,000 dispatches",
            f"{mem[late_key] / 1024:.1f} vs {mem['rss_kib_after_1000'] / 1024:.1f} MiB",
            1 + mem["growth"],
            "<= 1.05",
        )
    )
    lines = ["| figure | measured | ratio | target |", "|---|---|---|---|"]
    lines += [
        f"| {name} | {value} | {ratio:.2f} | {target} |"
        for name, value, ratio, target in rows
    ]
    peers = results["peers"]
    if "per_call_us" in peers:
        lines.append("")
        lines.append("| peer, same payload and Redis | per call |")
        lines.append("|---|---|")
        lines += [
            f"| {name} | {value:.0f} µs |"
            for name, value in peers["per_call_us"].items()
        ]
    return "\n".join(lines)


def plot(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    us = results["dispatch"]["per_call_us"]
    bars = {
        "Celery\napply_async": 1e6 / us["celery_apply_async"],
        "typedqueue\ndispatch": 1e6 / us["dispatch"],
        "typedqueue\ndispatch+dedupe": 1e6 / us["dispatch_dedupe"],
        "typedqueue\ndispatch_many": results["bulk"]["jobs_per_s"]["dispatch_many"],
    }
    for name, value in results["peers"].get("per_call_us", {}).items():
        bars[name.replace("_", "\n")] = 1e6 / value
    figure, axes = plt.subplots(figsize=(9, 4.5))
    axes.bar(
        list(bars),
        list(bars.values()),
        color=["#888"] + ["#2a6"] * 3 + ["#69c"] * (len(bars) - 4),
    )
    axes.set_ylabel("jobs published per second")
    axes.set_title("Publishing one small job to Redis (higher is better)")
    for index, value in enumerate(bars.values()):
        axes.text(index, value, f"{value:,.0f}", ha="center", va="bottom")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, for a smoke run"
    )
    quick = parser.parse_args().quick
    rounds = 3 if quick else 5

    with redis_server() as url:
        env = {"TYPEDQUEUE_BROKER_URL": url, "TYPEDQUEUE_REDIS_URL": url}
        os.environ.update(env)
        from benchmarks import perf_app

        server = redis.Redis.from_url(url)
        results: Results = {}
        results["dispatch"] = bench_dispatch(
            perf_app, server, rounds, 300 if quick else 1000
        )
        results["bulk"] = bench_bulk(perf_app, server, 3, 2000 if quick else 10_000)
        results["worker"] = bench_worker(
            perf_app, server, env, 1 if quick else 2, 1000 if quick else 5000
        )
        results["latency"] = bench_latency(perf_app, server, env, 50 if quick else 200)
        results["memory"] = bench_memory(perf_app, server, 10_000 if quick else 100_000)
        results["peers"] = bench_peers(url, rounds, 300 if quick else 1000)

    table = report(results)
    print(table)
    if quick:
        # A smoke run's figures are not the ones BENCHMARKS.md quotes.
        return
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (OUT / "results.md").write_text(table + "\n")
    plot(results, OUT / "throughput.png")


if __name__ == "__main__":
    main()
