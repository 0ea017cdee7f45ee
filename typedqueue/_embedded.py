"""A Celery worker in a thread of the dispatching process.

Used when no broker is configured: jobs go through Celery's in-memory
transport to a real Celery worker running in this process, serialized and
retried exactly as on a server, so the quickstart and a user's own tests need
no Redis.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from celery import Celery, signals
from celery.worker import WorkController
from celery.worker.consumer import Consumer

from typedqueue._errors import TypedQueueError

_START_TIMEOUT_S = 30.0


class _WorkController(WorkController):
    """A worker that says when its consumer is ready."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: Consumer) -> None:
        self.ready.set()


class EmbeddedWorker:
    """Starts on the first dispatch and counts the jobs it has yet to finish."""

    def __init__(self, app: Celery) -> None:
        self._app = app
        self._worker: _WorkController | None = None
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()
        self._idle = threading.Condition(self._mutex)
        self._pending: set[str] = set()
        signals.task_postrun.connect(self._on_postrun, weak=False)

    def start(self) -> None:
        """Start the worker thread unless it runs already."""
        with self._mutex:
            if self._thread is not None and self._thread.is_alive():
                return
            # A handler that raised SystemExit stops the worker; start anew.
            # Celery's worker threads (its timer among them) look tasks up in
            # the process's default app, as under `celery worker`.
            self._app.set_default()
            self._app.finalize()
            worker = _WorkController(
                app=self._app,
                pool="solo",
                concurrency=1,
                without_heartbeat=True,
                without_mingle=True,
                without_gossip=True,
            )
            thread = threading.Thread(
                target=worker.start, name="typedqueue-worker", daemon=True
            )
            thread.start()
            self._worker, self._thread = worker, thread

        if not worker.ready.wait(_START_TIMEOUT_S):
            raise TypedQueueError(
                f"the embedded worker did not start within {_START_TIMEOUT_S:.0f} s"
            )

    def track(self, job_id: str) -> None:
        """Count ``job_id`` as pending until its last attempt has run."""
        with self._mutex:
            self._pending.add(job_id)

    def forget(self, job_id: str) -> None:
        """Stop counting ``job_id``, which was never published."""
        with self._idle:
            self._pending.discard(job_id)
            self._idle.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every tracked job has finished; return whether they did."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
            return True

    def stop(self) -> None:
        """Stop the worker thread, letting the running jobs finish."""
        with self._mutex:
            worker, self._worker, self._thread = self._worker, None, None
        if worker is not None:
            worker.stop(in_sighandler=False)

    def _on_postrun(self, task_id: str, state: str | None = None, **_: Any) -> None:
        # A retry or the hop of a long delay also ends in postrun; only
        # success or final failure end the job.
        if state in ("RETRY", "IGNORED"):
            return
        self.forget(task_id)
