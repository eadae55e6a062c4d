"""A settable clock for tests and simulations."""

from __future__ import annotations


class FakeClock:
    """A settable clock for tests and simulations; ``advance`` moves it forward."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now
