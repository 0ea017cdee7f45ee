"""Load test: many producers, shared dedupe keys, two worker processes.

    python -m benchmarks.load [--jobs 10000]

Starts its own redis-server on a free loopback port. Producers dispatch every
job before the workers start, so each dedupe key is still held by its first
job when the others arrive: the handler must then run exactly once per
distinct key, plus once per job without a key. Prints the figures and exits
non-zero if a job was lost, run twice, or left a lock behind.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from benchmarks.servers import ROOT, redis_server

PRODUCERS = 4
SHARED_FRACTION = 0.3
JOBS_PER_KEY = 10


@dataclass
class Figures:
    jobs: int
    keyed: int
    distinct_keys: int
    deduplicated: int
    expected_runs: int
    starts: int
    distinct_ids: int
    locks_left: int
    dispatch_s: float
    drain_s: float

    @property
    def ok(self) -> bool:
        return (
            self.starts == self.distinct_ids == self.expected_runs
            and self.locks_left == 0
        )

    def report(self) -> str:
        return "\n".join(
            [
                f"jobs dispatched          {self.jobs}",
                f"  with a shared key      {self.keyed} over {self.distinct_keys} keys",
                f"  deduplicated           {self.deduplicated}",
                f"dispatch, 4 threads      {self.dispatch_s:.2f} s "
                f"({self.jobs / self.dispatch_s:,.0f} jobs/s)",
                f"drain, 2 workers         {self.drain_s:.2f} s "
                f"({self.starts / self.drain_s:,.0f} jobs/s)",
                f"handler runs             {self.starts} "
                f"(expected {self.expected_runs})",
                f"distinct job ids run     {self.distinct_ids}",
                f"dedupe locks left        {self.locks_left}",
                "result                   " + ("OK" if self.ok else "FAILED"),
            ]
        )


def _start_workers(
    count: int, env: dict[str, str], logdir: str
) -> list[subprocess.Popen[bytes]]:
    workers = []
    for index in range(count):
        log = open(Path(logdir) / f"worker{index}.log", "wb")  # noqa: SIM115
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "benchmarks.load_app", "worker"]
                + ["-Q", "load", "--pool", "solo", "--loglevel", "WARNING"]
                + ["--hostname", f"load{index}@%h", "--without-heartbeat"]
                + ["--without-mingle", "--without-gossip"],
                cwd=ROOT,
                env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    return workers


def run(jobs: int, timeout_s: float = 600) -> Figures:
    """Dispatch ``jobs`` jobs, drain them with two workers, and count."""
    with redis_server() as url, tempfile.TemporaryDirectory() as logdir:
        env = {"TYPEDQUEUE_BROKER_URL": url, "TYPEDQUEUE_REDIS_URL": url}
        os.environ.update(env)
        from benchmarks import load_app

        client = load_app.runtime.create_client()
        server = redis.Redis.from_url(url)

        keyed = int(jobs * SHARED_FRACTION)
        keys = [
            f"key:{index % max(1, keyed // JOBS_PER_KEY)}" for index in range(keyed)
        ]
        plan: list[str | None] = [*keys, *[None] * (jobs - keyed)]
        random.Random(7).shuffle(plan)
        deduplicated = 0
        counter = threading.Lock()

        def produce(share: list[str | None]) -> None:
            nonlocal deduplicated
            mine = 0
            for number, key in enumerate(share):
                options = {} if key is None else {"dedupe_key": key}
                if client.dispatch(
                    load_app.load_work, {"n": number}, **options
                ).deduplicated:
                    mine += 1
            with counter:
                deduplicated += mine

        threads = [
            threading.Thread(target=produce, args=(plan[index::PRODUCERS],))
            for index in range(PRODUCERS)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        dispatch_s = time.perf_counter() - started

        distinct = len(set(keys))
        expected = distinct + (jobs - keyed)
        workers = _start_workers(2, env, logdir)
        started = time.perf_counter()
        try:
            deadline = time.monotonic() + timeout_s
            while int(server.get("load:starts") or 0) < expected:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            drain_s = time.perf_counter() - started
            # Late duplicates would show up here.
            time.sleep(1)
            # Locks are released just after the last handler returns.
            deadline = time.monotonic() + 10
            while server.keys("typedqueue:dedupe:*") and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(30)

        return Figures(
            jobs=jobs,
            keyed=keyed,
            distinct_keys=distinct,
            deduplicated=deduplicated,
            expected_runs=expected,
            starts=int(server.get("load:starts") or 0),
            distinct_ids=int(server.scard("load:ids")),
            locks_left=len(server.keys("typedqueue:dedupe:*")),
            dispatch_s=dispatch_s,
            drain_s=drain_s,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    figures = run(parser.parse_args().jobs)
    print(figures.report())
    sys.exit(0 if figures.ok else 1)


if __name__ == "__main__":
    main()
