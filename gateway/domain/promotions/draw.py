"""Lucky draw: a prize table, a recorded random source, and a result anyone can replay.

Each draw is decided by a number, the *roll*, in ``0 <= roll < 1_000_000``, derived from a
secret ``seed`` (chosen once per promotion with :func:`new_seed` and stored) and a ``draw_key``
that names the draw (e.g. the sale id). Nothing else goes in: no clock, no process state. So the
same table, seed, key and stock always give the same result, and an auditor who is shown the seed
after the promotion can check every draw.

Prizes occupy consecutive ranges of the million in table order; the rest means no prize:

| prize       | probability_ppm | range             |
|-------------|-----------------|-------------------|
| first       | p0              | ``[0, p0)``       |
| second      | p1              | ``[p0, p0 + p1)`` |
| (no prize)  | the rest        | up to 1_000_000   |

A roll that lands on a prize whose daily cap is reached gives "capped", and on a prize worth
more than what is left of the budget gives "budget"; both mean no prize. Their chance is *not*
handed to the other prizes, so the odds printed on the poster stay true.

Replaying a draw by hand (e.g. with ``openssl``, or Python's ``hmac``):

1. ``digest = HMAC-SHA256(key = the 16 bytes the seed's 32 hex characters encode,
   message = draw_key encoded as UTF-8)``.
2. Read the 32-byte digest as four 8-byte big-endian unsigned words, in order.
3. Take the first word below 18_446_744_073_709_000_000 (the largest multiple of 1_000_000 not
   above 2**64); the roll is that word modulo 1_000_000. Rejecting the few words above it keeps
   every roll equally likely (no modulo bias).
4. If all four words are rejected (chance about 1e-52), the next digest is
   ``HMAC-SHA256(key, previous digest)`` and reading goes on from step 2.
5. Find the range the roll falls in, then apply the cap and budget rules above.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gateway.errors import InvalidInput

ONE_MILLION = 1_000_000
_ACCEPT_BELOW = 2**64 - 2**64 % ONE_MILLION  # 18_446_744_073_709_000_000
_SEED = re.compile(r"[0-9a-fA-F]{32}")

OUTCOMES = ("won", "no_prize", "capped", "budget")


@dataclass(frozen=True, slots=True)
class Prize:
    """A prize and its chance in parts per million; ``value_minor`` counts against the budget."""

    id: str
    name: str
    probability_ppm: int
    value_minor: int = 0
    daily_cap: int | None = None


@dataclass(frozen=True, slots=True)
class DrawTable:
    """The prizes in the order their ranges are laid out, and the money they may cost in all."""

    prizes: tuple[Prize, ...]
    budget_minor: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "prizes", tuple(self.prizes))
        ids = [prize.id for prize in self.prizes]
        if len(set(ids)) != len(ids):
            raise InvalidInput(f"prize ids must be unique in a draw table, got {ids}")
        for prize in self.prizes:
            _check_prize(prize)
        total = sum(prize.probability_ppm for prize in self.prizes)
        if total > ONE_MILLION:
            raise InvalidInput(
                f"prize probabilities add up to {total} ppm: they must not exceed 1000000 "
                "(one million parts per million is certainty)"
            )
        if self.budget_minor is not None and not _is_count(self.budget_minor):
            raise InvalidInput("the draw's budget must be a whole number of minor units ≥ 0")

    def ranges(self) -> list[tuple[Prize, int, int]]:
        """Each prize with its range of rolls, ``(prize, first, last)``, both ends included."""
        out, start = [], 0
        for prize in self.prizes:
            out.append((prize, start, start + prize.probability_ppm - 1))
            start += prize.probability_ppm
        return out


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_prize(prize: Prize) -> None:
    p = prize.probability_ppm
    if isinstance(p, bool) or not isinstance(p, int) or not 0 < p <= ONE_MILLION:
        raise InvalidInput(
            f"prize {prize.id!r}: probability must be an integer of parts per million in "
            f"1..1000000 (10 % is 100000), not {p!r}"
        )
    if not _is_count(prize.value_minor):
        raise InvalidInput(f"prize {prize.id!r}: value must be whole minor units ≥ 0")
    if prize.daily_cap is not None and not _is_count(prize.daily_cap):
        raise InvalidInput(f"prize {prize.id!r}: daily cap must be a whole number ≥ 0, or None")


@dataclass(frozen=True, slots=True)
class PrizeStock:
    """What is already given: prize value used from the budget and prizes won today, by prize id."""

    budget_used_minor: int = 0
    won_today: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class DrawResult:
    """The roll, what it gives (``prize`` is None unless ``outcome`` is "won") and why."""

    roll: int
    prize: Prize | None
    outcome: str
    explanation: str


def new_seed() -> str:
    """A fresh secret seed: 32 lowercase hex characters (128 bits) from ``secrets``."""
    return secrets.token_hex(16)


def roll(seed: str, draw_key: str) -> int:
    """The draw's number in ``[0, 1_000_000)``, from the recipe in this module's docstring."""
    if not isinstance(seed, str) or not _SEED.fullmatch(seed):
        raise InvalidInput("the draw seed must be 32 hexadecimal characters, as new_seed() makes")
    if not isinstance(draw_key, str) or not draw_key:
        raise InvalidInput("the draw key must be a non-empty string, e.g. the sale id")
    key = bytes.fromhex(seed)
    digest = hmac.new(key, draw_key.encode("utf-8"), hashlib.sha256).digest()
    while True:
        found = _roll_from_words(_words(digest))
        if found is not None:
            return found
        digest = hmac.new(key, digest, hashlib.sha256).digest()


def _words(digest: bytes) -> list[int]:
    """The digest as 8-byte big-endian unsigned words."""
    return [int.from_bytes(digest[i : i + 8], "big") for i in range(0, len(digest), 8)]


def _roll_from_words(words: Iterable[int]) -> int | None:
    """The first word that is not rejected, modulo one million; None if all are rejected."""
    for word in words:
        if word < _ACCEPT_BELOW:
            return word % ONE_MILLION
    return None


def draw(
    table: DrawTable, seed: str, draw_key: str, stock: PrizeStock = PrizeStock()
) -> DrawResult:
    """Decide the draw named ``draw_key``: the same inputs always give the same result."""
    number = roll(seed, draw_key)
    for prize, first, last in table.ranges():
        if first <= number <= last:
            return _apply_limits(table, prize, number, f"'{prize.name}' ({first}–{last})", stock)
    covered = sum(prize.probability_ppm for prize in table.prizes)
    where = f"prizes cover 0–{covered - 1}" if covered else "the table has no prizes"
    return DrawResult(number, None, "no_prize", f"roll {number} fell outside every prize ({where})")


def _apply_limits(
    table: DrawTable, prize: Prize, number: int, where: str, stock: PrizeStock
) -> DrawResult:
    """The roll fell on ``prize``: it is won unless today's cap or the budget forbids it."""
    fell = f"roll {number} fell in {where}"
    won_today = stock.won_today.get(prize.id, 0)
    if prize.daily_cap is not None and won_today >= prize.daily_cap:
        why = f"{fell}, but today's cap of {prize.daily_cap} is reached: no prize"
        return DrawResult(number, None, "capped", why)
    if table.budget_minor is not None:
        left = max(table.budget_minor - stock.budget_used_minor, 0)
        if prize.value_minor > left:
            why = (
                f"{fell}, but its value of {prize.value_minor} minor units is more than the "
                f"{left} left in the budget: no prize"
            )
            return DrawResult(number, None, "budget", why)
    return DrawResult(number, prize, "won", f"{fell}; won")
