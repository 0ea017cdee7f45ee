"""Static checks of the public API, run by mypy --strict and pyright.

Nothing here runs. A line marked ``type: ignore`` is an error mypy must
report, one marked ``pyright: ignore`` an error pyright must report: both
checkers flag an ignore comment that is no longer needed, so an expected
error that disappears fails the check.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel
from typing_extensions import TypedDict, assert_type

from typedqueue import (
    DispatchOptions,
    DispatchResult,
    Job,
    JobContext,
    QueueRuntime,
    get_session,
)

Queue = Literal["default", "low"]
runtime = QueueRuntime[Queue](queues=("default", "low"))
client = runtime.create_client()


class SendEmails(BaseModel):
    email: str
    subject: str
    body: str


class Invoice(TypedDict):
    invoice_id: int
    amount: str


@runtime.job("send_emails", max_attempts=3)
def send_emails(payload: SendEmails, ctx: JobContext) -> None:
    assert_type(payload.email, str)
    assert_type(ctx.attempt, int)
    get_session()


@runtime.job("invoice", queue="low")
def invoice(payload: Invoice, ctx: JobContext) -> None:
    assert_type(payload["invoice_id"], int)


assert_type(send_emails, Job[SendEmails])
assert_type(invoice, Job[Invoice])

# Correct calls.
email = SendEmails(email="a@b.c", subject="Hi", body="Hello")
result = client.dispatch(send_emails, email)
assert_type(result, DispatchResult[Queue])
assert_type(result.queue, Queue)
assert_type(result.job_id, str)
client.dispatch(send_emails, {"email": "a@b.c", "subject": "Hi", "body": "Hello"})
client.dispatch(
    send_emails,
    email,
    max_attempts=5,
    queue="low",
    delay="30s",
    dedupe_key="welcome:42",
    meta={"source": "signup"},
    session=False,
)
client.dispatch(send_emails, email, delay=1500)
client.dispatch(send_emails, email, delay=timedelta(minutes=5))
client.dispatch(invoice, Invoice(invoice_id=1, amount="9.99"))
# pyright checks a bare dict literal against the TypedDict; mypy cannot infer
# the job's type from one, which is why the docs show the Invoice(...) form.
client.dispatch(invoice, {"invoice_id": 1, "amount": "9.99"})  # type: ignore[misc]
options: DispatchOptions[Queue] = {"queue": "low", "max_attempts": 2}
client.dispatch(send_emails, email, **options)

many = client.dispatch_many(send_emails, [email, {"email": "x"}], queue="low")
assert_type(many, list[DispatchResult[Queue]])
client.dispatch_many(invoice, [Invoice(invoice_id=1, amount="1")], dedupe_keys=["a"])

# A wrong payload type.
client.dispatch(send_emails, 42)  # type: ignore[misc]  # pyright: ignore[reportCallIssue, reportArgumentType]
client.dispatch(invoice, Invoice(invoice_id="one", amount="9.99"))  # type: ignore[typeddict-item]  # pyright: ignore[reportArgumentType]
client.dispatch(invoice, {"invoice_id": "one", "amount": "9.99"})  # type: ignore[misc]  # pyright: ignore[reportCallIssue, reportArgumentType]
client.dispatch(invoice, {"invoice_id": 1})  # type: ignore[misc]  # pyright: ignore[reportCallIssue, reportArgumentType]
client.dispatch(invoice, email)  # type: ignore[misc]  # pyright: ignore[reportCallIssue, reportArgumentType]

client.dispatch_many(send_emails, [42])  # type: ignore[misc]  # pyright: ignore[reportCallIssue, reportArgumentType]

# A queue that was not declared.
client.dispatch(send_emails, email, queue="lwo")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
client.dispatch_many(send_emails, [email], queue="lwo")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
bad_options: DispatchOptions[Queue] = {"queue": "high"}  # type: ignore[typeddict-item]  # pyright: ignore[reportAssignmentType]

# A wrong option type, and an option that does not exist.
client.dispatch(send_emails, email, max_attempts="3")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
client.dispatch(send_emails, email, delay=[1])  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
client.dispatch(send_emails, email, dedupe_key=42)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
client.dispatch(send_emails, email, dely="1s")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]


# A job whose own queue was not declared.
@runtime.job("wrong_queue", queue="high")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
def wrong_queue(payload: SendEmails, ctx: JobContext) -> None: ...
