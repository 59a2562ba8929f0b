"""Misbehaviour the local TOS server injects on demand: latency, 5xx answers (at random or
in a burst), dropped connections, a corrupted CRC header, a bandwidth cap per connection,
policy actions denied to the test's key."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

FaultOutcome = Literal["drop", "error"] | None


@dataclass
class Faults:
    """Misbehaviour to inject; assign fields (or a new Faults) at runtime to change it.

    ``error_rate`` and ``drop_rate`` are shares of requests in [0, 1]; a seeded random
    draw per request keeps a sequential test reproducible.
    """

    latency: float = 0.0  # seconds slept before answering each request
    error_rate: float = 0.0  # share of requests answered with error_status
    error_status: int = 503
    drop_rate: float = 0.0  # share of requests whose connection is closed without answer
    corrupt_crc: bool = False  # answer a wrong x-tos-hash-crc64ecma everywhere
    bandwidth: float = 0.0  # bytes a second each connection moves, either way; 0: no cap
    methods: frozenset[str] = frozenset()  # HTTP methods errors and drops hit; empty: all
    # The next this many requests (of ``methods``) are answered with error_status, as during
    # a short outage; counts down.
    error_burst: int = 0
    # Policy actions the key may not call ("ListMultipartUploads" for tos:ListMultipartUploads,
    # see operations.POLICY_ACTIONS): a signed request for one is answered 403 AccessDenied,
    # as TOS answers a key whose bucket or IAM policy lacks the action.
    denied: frozenset[str] = frozenset()
    seed: int = 0
    drops: int = field(default=0, init=False)  # how many were injected, for tests to check
    errors: int = field(default=0, init=False)
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _lock: threading.Lock = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw(self, method: str) -> FaultOutcome:
        if self.methods and method not in self.methods:
            return None
        with self._lock:
            if self.error_burst > 0:
                self.error_burst -= 1
                self.errors += 1
                return "error"
            roll = self._rng.random()
            if roll < self.drop_rate:
                self.drops += 1
                return "drop"
            if roll < self.drop_rate + self.error_rate:
                self.errors += 1
                return "error"
        return None


class Throttle:
    """Paces one connection's transfer of a request body or a reply to ``rate`` bytes a
    second (0: no cap), as a slow link would."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._start = time.monotonic()
        self._bytes = 0

    def pace(self, count: int) -> None:
        if self.rate <= 0:
            return
        self._bytes += count
        delay = self._start + self._bytes / self.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
