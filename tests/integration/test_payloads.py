"""Payloads survive the trip through a real broker into the handler."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest
import redis
from pydantic import ValidationError

from tests.integration.conftest import Runs


def test_types_survive_the_trip(
    client: Any, app: ModuleType, runs: Runs, tag: str
) -> None:
    """UUID, offset datetime, Decimal, Enum, nested models and None arrive equal."""
    order_id = uuid.uuid4()
    at = datetime(2026, 12, 3, 18, 30, tzinfo=timezone(timedelta(hours=2)))
    client.dispatch(
        app.order,
        {
            "tag": tag,
            "id": order_id,
            "at": at,
            "price": Decimal("30.10"),
            "color": app.Color.BLUE,
            "lines": [{"sku": "A-1", "quantity": 2}],
        },
    )

    [run] = runs.wait(tag, 1)
    payload = run["payload"]
    assert isinstance(payload.id, uuid.UUID)
    assert payload.id == order_id
    assert payload.at == at
    assert payload.at.utcoffset() == timedelta(hours=2)
    assert payload.price == Decimal("30.10")
    assert str(payload.price) == "30.10"
    assert payload.tags is None
    assert payload.color is app.Color.BLUE
    assert payload.lines == [app.Line(sku="A-1", quantity=2)]


def test_model_or_dict_give_equal_payloads(
    client: Any, app: ModuleType, runs: Runs, tag: str
) -> None:
    """A model instance and the same data as a dict reach the handler equal."""
    fields = {
        "tag": tag,
        "id": uuid.uuid4(),
        "at": datetime(2026, 1, 1, tzinfo=timezone.utc),
        "price": Decimal("1.50"),
        "tags": ["a", "b"],
    }
    client.dispatch(app.order, app.Order(**fields))
    client.dispatch(app.order, fields)

    first, second = runs.wait(tag, 2)
    assert isinstance(first["payload"], app.Order)
    assert first["payload"] == second["payload"] == app.Order(**fields)


def test_bad_payload_names_the_field_and_publishes_nothing(
    client: Any, app: ModuleType, rdb: redis.Redis, published: list[str]
) -> None:
    """{"amount": "abc"} for an int field raises at dispatch, naming the field."""
    length = rdb.llen("low")
    with pytest.raises(ValidationError) as raised:
        client.dispatch(app.mail, {"tag": "never", "email": "a@b.c", "amount": "abc"})

    [error] = raised.value.errors()
    assert error["loc"] == ("amount",)
    assert error["input"] == "abc"
    assert published == []
    assert rdb.llen("low") == length


def test_typeddict_payload_arrives_as_a_dict(
    client: Any, app: ModuleType, runs: Runs, tag: str
) -> None:
    """A TypedDict job's handler gets a validated dict, "7" coerced to 7."""
    client.dispatch(app.mail, {"tag": tag, "email": "a@b.c", "amount": "7"})

    [run] = runs.wait(tag, 1)
    assert run["payload"] == {"tag": tag, "email": "a@b.c", "amount": 7}


def test_delay_migrated_call_site_validates_too(
    app: ModuleType, worker: Any, runs: Runs, tag: str, published: list[str]
) -> None:
    """job.delay(**fields) validates and publishes like dispatch."""
    with pytest.raises(ValidationError):
        app.mail.delay(tag=tag, email="a@b.c", amount="abc")
    assert published == []

    result = app.mail.delay(tag=tag, email="a@b.c", amount=3)

    [run] = runs.wait(tag, 1)
    assert run["ctx"].job_id == result.job_id
    assert run["payload"]["amount"] == 3


def test_migrated_task_name_and_positional_delay(
    app: ModuleType, worker: Any, runs: Runs, tag: str
) -> None:
    """A dotted Celery task name works, and .delay(a, b) fills fields in order."""
    result = app.welcome.delay(tag, "a@b.c", plan="pro")

    [run] = runs.wait(tag, 1)
    assert result.name == "accounts.tasks.welcome"
    assert run["payload"] == app.Signup(tag=tag, email="a@b.c", plan="pro")


def test_delay_refuses_a_field_given_twice(app: ModuleType) -> None:
    """A field passed by position and by name is a TypeError, as for a call."""
    with pytest.raises(TypeError, match="'tag' both by position and by name"):
        app.welcome.delay("t", tag="t", email="a@b.c")
    with pytest.raises(TypeError, match="3 fields"):
        app.welcome.delay("t", "a@b.c", "pro", "extra")
