"""Why a promotion did not apply: a code plus its figures, worded only when asked.

Pricing a sale against a thousand promotions must not build a thousand sentences, so a
``Rejection`` holds a ``Reason`` code and the plain values it needs; ``.reason`` words it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from gateway.domain.money import Money

_METHOD_WORDS = {"qr": "wallet QR", "card": "card"}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class Reason(Enum):
    """Rejection codes, each with a sentence template (see ``Rejection.reason``)."""

    CURRENCY = "only for sales in {0}"
    METHOD = "only when paying by {0}"
    STORE = "not offered in this store"
    TILL = "not offered at this till"
    DAY = "only on {0}"
    HOUR = "only between {0:02d}:00 and {1:02d}:00"
    SEGMENT = "only for {0} customers"
    SCOPE = "none of its items are in the basket"
    CODE = "needs its coupon code"
    CUSTOMER = "needs an identified customer"
    FIRST_USE = "only on a customer's first purchase"
    NO_FEE = "no service fee to waive"
    DAILY = "already used today"
    LIFETIME = "already used the maximum of {0} times"
    GLOBAL = "no uses left: all {0} have been used"
    BUDGET = "budget used up"
    THRESHOLD = "spend {0} more to save {1}"
    QUANTITY = "add {0} more eligible items"
    NOTHING = "nothing left to discount"
    NO_POINTS = "spend {0} more to earn points"
    GIFT_PURCHASES = "{0} more purchases to earn {1}"
    GIFT_SPEND = "spend {0} more in total to earn {1}"
    GROUP = "another promotion of group {0!r} applied: {1}"
    EXCLUSIVE_TAKEN = "not combinable with exclusive promotion {0}"
    EXCLUSIVE_LATE = "exclusive, but {0} already applied"
    VARIANT = "not in this customer's test group"
    CONSENT = "only for customers who agreed to marketing"
    NOT_ASKED = "the customer did not ask to pay with points"
    NO_BALANCE = "the customer has no points to redeem"
    FEW_POINTS = "at least {0} points are needed, the customer has {1}"
    NO_REFERRAL = "needs a referral code"
    SELF_REFERRAL = "a customer cannot refer themselves"
    REFERRED_BEFORE = "this customer was referred before"
    REFERRER_NEW = "the referrer has not made a purchase yet"
    REFERRAL_LIMIT = "the referrer has reached the limit of {0} referrals"
    REFERRAL_DAILY = "the referrer has reached today's limit of {0} referrals"
    DRAW_SPEND = "spend {0} more to enter the draw"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A promotion that did not apply. ``money`` marks which ``args`` are minor units."""

    promotion_id: str
    code: Reason
    args: tuple[object, ...] = ()
    currency: str = ""
    money: tuple[int, ...] = ()

    @property
    def reason(self) -> str:
        """The reason in words, e.g. "spend 12.00 EUR more to save 5.00 EUR"."""
        args = [
            str(Money(a, self.currency)) if i in self.money and isinstance(a, int) else a
            for i, a in enumerate(self.args)
        ]
        return self.code.value.format(*args)


def methods_words(methods: frozenset[str]) -> str:
    return " or ".join(_METHOD_WORDS.get(m, m) for m in sorted(methods))


def days_words(days: frozenset[int]) -> str:
    return ", ".join(_DAYS[d] for d in sorted(days))
