from __future__ import annotations

import pytest

from typedqueue._runtime import BROKER_URL_ENV, REDIS_URL_ENV, RESULT_BACKEND_ENV


@pytest.fixture(autouse=True)
def _no_server_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests build embedded runtimes, whatever the integration tests set."""
    for name in (BROKER_URL_ENV, REDIS_URL_ENV, RESULT_BACKEND_ENV):
        monkeypatch.delenv(name, raising=False)
