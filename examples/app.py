"""An example app: two jobs on two queues.

Run its worker against Redis with::

    export TYPEDQUEUE_BROKER_URL=redis://localhost:6379/0
    celery -A examples.app worker -Q default,low

With no TYPEDQUEUE_BROKER_URL the runtime is embedded and examples.quickstart
runs these jobs in its own process.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel
from typing_extensions import TypedDict

from typedqueue import Backoff, JobContext, QueueRuntime

Queue = Literal["default", "low"]

runtime = QueueRuntime[Queue](queues=("default", "low"))
app = runtime.celery


class SendEmails(BaseModel):
    email: str
    subject: str
    body: str


class Invoice(TypedDict):
    invoice_id: int
    amount: Decimal


@runtime.job("send_emails", max_attempts=3, backoff=Backoff(first_s=0.5))
def send_emails(payload: SendEmails, ctx: JobContext) -> None:
    _show(ctx, f"to={payload.email} subject={payload.subject!r}")
    if ctx.meta.get("fail_first_attempt") and ctx.attempt == 1:
        raise ConnectionError("mail server busy (on purpose, to show a retry)")


@runtime.job("charge_invoice", queue="low")
def charge_invoice(payload: Invoice, ctx: JobContext) -> None:
    amount = payload["amount"]
    _show(ctx, f"invoice={payload['invoice_id']} amount={amount!r}")


def _show(ctx: JobContext, what: str) -> None:
    print(
        f"  ran {ctx.name}[{ctx.job_id[:8]}] on {ctx.queue!r}, attempt "
        f"{ctx.attempt}/{ctx.max_attempts}: {what} meta={dict(ctx.meta)} "
        f"session={ctx.session}",
        flush=True,
    )
