"""Real services for the integration tests: one redis-server, real workers.

redis-server is started once per session on a free loopback port, and one
`celery worker -Q low` process serves the whole session. Tests that need a
worker of their own (one to kill, one that starts late) start it with
`spawn_worker`. A missing redis-server fails the run: these tests prove
nothing without it.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0


def wait_for(
    condition: Callable[[], Any], timeout_s: float = 15.0, what: str = "condition"
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server process on a loopback port, which tests may stop and restart."""

    def __init__(self, workdir: Path) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.fail(
                "redis-server is not installed; install it (Debian: "
                "apt-get install redis-server) to run the integration tests"
            )
        self.command = [server, "--port", str(_free_port()), "--bind", "127.0.0.1"]
        self.command += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
        self.url = f"redis://127.0.0.1:{self.command[2]}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: _pings(client), START_TIMEOUT_S, "redis-server to start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def pause(self) -> None:
        """Freeze the server: connections stay open and nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's redis-server, which every session worker uses."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, to stop, freeze and restart."""
    server = RedisServer(tmp_path)
    yield server
    if server.process is not None:
        server.resume()
    server.stop()


@pytest.fixture(scope="session")
def worker_env(redis_url: str) -> dict[str, str]:
    """The environment both this process and the workers configure from."""
    env = {
        "TYPEDQUEUE_BROKER_URL": redis_url,
        "TYPEDQUEUE_REDIS_URL": redis_url,
        "TYPEDQUEUE_RESULT_BACKEND": redis_url.rsplit("/", 1)[0] + "/1",
        "TQ_TEST_RECORD_URL": redis_url,
        # Every session a test sends is signed, and checked by the workers.
        "TYPEDQUEUE_SESSION_SECRET": "test-secret",
    }
    os.environ.update(env)
    return env


@pytest.fixture(scope="session")
def app(worker_env: dict[str, str]) -> ModuleType:
    """The test app module, imported once the environment points at Redis."""
    from tests.integration import app

    return app


class Worker:
    """A `celery worker` process of the test app."""

    def __init__(
        self,
        queues: str,
        pool: str,
        env: dict[str, str],
        log: Path,
        app: str = "tests.integration.app",
        loglevel: str = "INFO",
    ) -> None:
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", app, "worker"]
            + ["-Q", queues, "--pool", pool, "--concurrency", "1"]
            + ["--loglevel", loglevel, "--hostname", f"{uuid.uuid4().hex[:8]}@%h"]
            + ["--without-heartbeat", "--without-mingle", "--without-gossip"],
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._ready, START_TIMEOUT_S, f"a worker on {queues} to start")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"worker exited early:\n{self.output()[-5000:]}")
        return b" ready." in self.log.read_bytes()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker and every process it started."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._log_file.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log_file.close()


@pytest.fixture
def spawn_worker(
    worker_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., Worker]]:
    """Start workers of the test's own; each is stopped when the test ends."""
    started: list[Worker] = []

    def spawn(
        queues: str,
        pool: str = "solo",
        app: str = "tests.integration.app",
        env: dict[str, str] | None = None,
        loglevel: str = "INFO",
    ) -> Worker:
        log = tmp_path / f"worker{len(started)}.log"
        env = {**worker_env, **(env or {})}
        worker = Worker(queues, pool, env, log, app, loglevel)
        started.append(worker)
        return worker

    yield spawn
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session")
def worker(
    app: ModuleType,
    worker_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Worker]:
    """The session's worker: prefork, one child, consuming only "low"."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    main = Worker("low", "prefork", worker_env, log)
    yield main
    main.stop()


@pytest.fixture(scope="session")
def rdb(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def high(rdb: redis.Redis) -> Any:
    """The "high" queue, which no session worker consumes, emptied afterwards."""
    rdb.delete("high")
    yield "high"
    rdb.delete("high")


class Runs:
    """What the handlers recorded, read back from Redis."""

    def __init__(self, rdb: redis.Redis) -> None:
        self._rdb = rdb

    def of(self, tag: str) -> list[dict[str, Any]]:
        return [pickle.loads(raw) for raw in self._rdb.lrange(f"runs:{tag}", 0, -1)]

    def wait(
        self, tag: str, count: int, timeout_s: float = 15.0
    ) -> list[dict[str, Any]]:
        """Wait until ``tag`` has at least ``count`` runs; return them all."""
        wait_for(
            lambda: self._rdb.llen(f"runs:{tag}") >= count,
            timeout_s,
            f"{count} run(s) of {tag!r}",
        )
        return self.of(tag)

    def open_gate(self, tag: str) -> None:
        self._rdb.rpush(f"gate:{tag}", 1)


@pytest.fixture
def runs(rdb: redis.Redis) -> Runs:
    return Runs(rdb)


@pytest.fixture
def tag() -> str:
    """A name no other test uses, for runs, gates and dedupe keys."""
    return uuid.uuid4().hex


@pytest.fixture
def client(app: ModuleType, worker: Worker) -> Any:
    return app.runtime.create_client()


def outcome(app: ModuleType, job_id: str, timeout_s: float = 15.0) -> Any:
    """Wait until the job has succeeded or finally failed; return its result."""
    from celery.result import AsyncResult

    result = AsyncResult(job_id, app=app.runtime.celery)
    wait_for(
        lambda: result.state in ("SUCCESS", "FAILURE"),
        timeout_s,
        f"job {job_id} to finish",
    )
    return result


@pytest.fixture
def published() -> Iterator[list[str]]:
    """The ids of the jobs this process publishes while the test runs."""
    from celery.signals import before_task_publish

    ids: list[str] = []

    def count(headers: dict[str, Any], **_: Any) -> None:
        ids.append(headers["id"])

    before_task_publish.connect(count, weak=False)
    yield ids
    before_task_publish.disconnect(count)
