"""Delays longer than the broker's visibility timeout run once, when due."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.conftest import Runs, Worker

DELAY_S = 6  # three visibility timeouts of tests.integration.vt_app


@pytest.fixture
def vt_app(app: Any) -> Any:
    from tests.integration import vt_app

    return vt_app


@pytest.fixture
def vt_workers(spawn_worker: Callable[..., Worker]) -> list[Worker]:
    """Two workers of the short-visibility-timeout app, as in a real deployment."""
    return [spawn_worker("vt", app="tests.integration.vt_app") for _ in range(2)]


def _settle(runs: Runs, tag: str) -> list[dict[str, Any]]:
    """The runs of ``tag`` once two more visibility timeouts brought no new one."""
    # Absence cannot be awaited: give a redelivered copy the time to show up.
    time.sleep(4)
    return runs.of(tag)


def test_plain_countdown_runs_repeatedly(
    vt_app: Any, vt_workers: list[Worker], runs: Runs, tag: str
) -> None:
    """Without hops, Celery runs a message due after the timeout more than once."""
    vt_app.plain_probe.apply_async(args=(tag,), countdown=DELAY_S, queue="vt")

    runs.wait(tag, 1, timeout_s=DELAY_S + 10)

    assert len(_settle(runs, tag)) > 1


def test_long_delay_runs_once_when_due(
    vt_app: Any, vt_workers: list[Worker], runs: Runs, tag: str
) -> None:
    """The same delay through dispatch runs once, no earlier than it is due."""
    client = vt_app.runtime.create_client()
    dispatched = time.time()
    result = client.dispatch(vt_app.vt_probe, {"tag": tag}, delay=f"{DELAY_S}s")

    [first] = runs.wait(tag, 1, timeout_s=DELAY_S + 10)

    assert first["ctx"].job_id == result.job_id
    assert first["started"] - dispatched >= DELAY_S
    assert len(_settle(runs, tag)) == 1
