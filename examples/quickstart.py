"""Dispatch jobs with every option and watch them run.

    python -m examples.quickstart

With no broker configured the jobs run in a worker thread of this process.
With TYPEDQUEUE_BROKER_URL set they go to Redis, and the handlers print in the
output of `celery -A examples.app worker -Q default,low`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from examples.app import Invoice, SendEmails, charge_invoice, runtime, send_emails
from typedqueue import DispatchResult, TypedQueueError, set_session


def main() -> None:
    logging.basicConfig(stream=sys.stdout, format="  %(levelname)s %(message)s")
    logging.getLogger("typedqueue").setLevel(logging.INFO)
    client = runtime.create_client()
    set_session({"user_id": 42, "role": "admin"})

    print(f"runtime: {runtime!r}")
    print("dispatching:")
    _show(
        "defaults, session captured",
        client.dispatch(
            send_emails,
            {"email": "user@example.com", "subject": "Welcome", "body": "Hello!"},
        ),
    )
    welcome = SendEmails(email="user@example.com", subject="Welcome", body="Hello!")
    _show(
        "every option",
        client.dispatch(
            send_emails,
            welcome,
            max_attempts=5,
            queue="low",
            delay="1s",
            dedupe_key="welcome:42",
            meta={"source": "signup", "fail_first_attempt": True},
            session=False,
        ),
    )
    _show(
        "same dedupe_key while the first is pending",
        client.dispatch(send_emails, welcome, dedupe_key="welcome:42"),
    )
    _show(
        "TypedDict job, its own queue, 500 ms delay",
        client.dispatch(
            charge_invoice,
            Invoice(invoice_id=7, amount=Decimal("19.99")),
            delay=500,
            meta={"tenant": "acme"},
            session={"user_id": 7, "role": "billing"},
        ),
    )

    print("refused before anything is published:")
    # A queue name read from configuration, which no type checker can see.
    typo: Any = "lwo"
    refused: list[tuple[str, Callable[[], object]]] = [
        ("payload", lambda: client.dispatch(send_emails, {"email": "x"})),
        ("queue", lambda: client.dispatch(send_emails, welcome, queue=typo)),
        ("delay", lambda: client.dispatch(send_emails, welcome, delay="5x")),
    ]
    for label, bad in refused:
        try:
            bad()
        except (ValidationError, TypedQueueError) as exc:
            first_line = str(exc).splitlines()[0]
            print(f"  {label}: {type(exc).__name__}: {first_line}")

    if not runtime.embedded:
        print("published; the worker prints what each handler saw")
        return
    print("handlers (embedded worker):")
    finished = runtime.wait_idle(timeout_s=60)
    print("all jobs finished" if finished else "jobs still running after 60 s")
    runtime.close()


def _show(label: str, result: DispatchResult[str]) -> None:
    state = "deduplicated" if result.deduplicated else "new"
    print(f"  {label}: {result.name}[{result.job_id[:8]}] -> {result.queue} ({state})")


if __name__ == "__main__":
    main()
