"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest

from tests.postgres_fixture import (  # noqa: F401 - fixtures of every test package
    database_url,
    postgres_server,
    postgres_url,
)


class FakeClock:
    """A clock the test moves by hand (Unix seconds)."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
