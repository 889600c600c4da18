"""Who may do what: the roles, the named permissions, and the one matrix between them.

A person signs in with a role; a till calls the API with its key and acts as the role ``till``.
The web tier asks :func:`allowed` before every request (``gateway/entrypoints/access.py`` maps
each endpoint to one permission here), and the docs' table (``docs/access.md``) is written from
this matrix by ``python -m gateway.services.staff.permissions`` and checked against it by a test.

| role | who |
|---|---|
| ``cashier`` | takes payments, refunds and cancels at a till (above the limits: with approval) |
| ``supervisor`` | a cashier who also approves at the till with their PIN |
| ``manager`` | a store manager (``manager`` is the stored value): the portal for their store |
| ``owner`` | the merchant's owner or admin: everything, in every store |
| ``auditor`` | reads the portal, changes nothing |

Scope: owners and auditors see every store of their merchant. Everyone else is bound to their
``store_id``; a staff member without one (an area manager, a floating cashier) works for every
store. Permissions marked *merchant-wide* (settlement, promotions' management, settings)
are about the merchant as a whole and are refused to anybody bound to one store.
"""

from __future__ import annotations

from dataclasses import dataclass

TILL = "till"  # a till's API key, not a person
ROLES = ("cashier", "supervisor", "manager", "owner", "auditor")
PRINCIPALS = (TILL, *ROLES)
# Roles that see every store of the merchant whatever store_id says.
MERCHANT_WIDE_ROLES = frozenset({"owner", "auditor"})


@dataclass(frozen=True, slots=True)
class Permission:
    name: str
    roles: frozenset[str]
    description: str
    merchant_wide: bool = False  # refused to a caller bound to one store


def _p(name: str, roles: str, description: str, *, merchant_wide: bool = False) -> Permission:
    return Permission(name, frozenset(roles.split()), description, merchant_wide)


_AT_THE_TILL = "till cashier supervisor manager owner"
_PORTAL = "manager owner auditor"
_CHANGE = "manager owner"

PERMISSIONS: dict[str, Permission] = {
    p.name: p
    for p in (
        _p("till.use", "cashier supervisor manager owner", "work at a till on the cashier screen"),
        _p("payment.view", _AT_THE_TILL, "see a payment, its QR code and its refunds"),
        _p("payment.create", _AT_THE_TILL, "take a QR or card payment"),
        _p("payment.refund", _AT_THE_TILL, "refund or void a payment (above a limit: approval)"),
        _p("payment.cancel", _AT_THE_TILL, "cancel a payment (a paid one: approval)"),
        _p("sale.view", _AT_THE_TILL, "see a priced basket"),
        _p("sale.create", _AT_THE_TILL, "price a basket with promotions and pay for it"),
        _p("approval.request", "till", "ask for an approval token with a supervisor's PIN"),
        _p("approval.grant", "supervisor manager owner", "approve a refund, void or cancel"),
        _p("portal.view", _PORTAL, "read the portal: payments, devices"),
        _p("payment.resolve", _CHANGE, "settle a card payment whose outcome is unknown"),
        _p("payment.bank_money", _CHANGE, "accept or refund money the bank took that did not fit"),
        _p("devices.end_of_day", _CHANGE, "close a terminal's batch now"),
        _p("settlement.view", _PORTAL, "read reconciliation", merchant_wide=True),
        _p("settlement.run", _CHANGE, "reconcile a day again", merchant_wide=True),
        _p("settlement.decide", _CHANGE, "link, accept or write off", merchant_wide=True),
        _p("promotion.view", _PORTAL, "read promotions and experiments"),
        _p("promotion.manage", _CHANGE, "create and run promotions", merchant_wide=True),
        _p("settings.manage", "owner", "change the approval limits", merchant_wide=True),
        _p("staff.manage", _CHANGE, "create staff, tills and keys (a store's own)"),
        _p("store.create", _CHANGE, "open a new store", merchant_wide=True),
        _p("audit.read", _PORTAL, "read the audit trail (a store's own)"),
        _p("account.own", "cashier supervisor manager owner auditor", "change their own password"),
        _p("events.view", _PORTAL, "read the stored inbound events", merchant_wide=True),
        _p("events.replay", _CHANGE, "replay a stored inbound event", merchant_wide=True),
        _p("webhooks.view", _PORTAL, "read webhook endpoints and deliveries", merchant_wide=True),
        _p("webhooks.manage", _CHANGE, "add, pause, delete, test webhooks", merchant_wide=True),
        _p("customer.view", _CHANGE, "find a customer's record, export it", merchant_wide=True),
        _p("customer.forget", _CHANGE, "forget (anonymise) a customer", merchant_wide=True),
        _p("alerts.view", _PORTAL, "read anomaly alerts (a store's own)"),
        _p("alerts.manage", _CHANGE, "acknowledge an anomaly alert with a note"),
        _p(
            "alerts.configure",
            _CHANGE,
            "set alert thresholds and stores' opening hours",
            merchant_wide=True,
        ),
    )
}


def permission(name: str) -> Permission:
    """The permission called ``name``; a name not in the matrix is a programming error."""
    try:
        return PERMISSIONS[name]
    except KeyError:
        raise KeyError(f"no permission {name!r} in the matrix") from None


def allowed(role: str, name: str, *, store_id: int | None = None) -> bool:
    """Whether ``role`` (bound to ``store_id``, None for every store) may use permission
    ``name``. Unknown roles and unknown permissions are refused."""
    if name not in PERMISSIONS:
        return False
    perm = PERMISSIONS[name]
    if role not in perm.roles:
        return False
    bound = store_id is not None and role not in MERCHANT_WIDE_ROLES
    return not (perm.merchant_wide and bound)


def effective_store(role: str, store_id: int | None) -> int | None:
    """The store a staff member is bound to: none for owners and auditors."""
    return None if role in MERCHANT_WIDE_ROLES else store_id


def matrix_table() -> str:
    """The matrix as a Markdown table (docs/access.md holds a copy a test compares)."""
    head = "| permission | " + " | ".join(PRINCIPALS) + " | merchant-wide | what |"
    rule = "|---|" + "---|" * len(PRINCIPALS) + "---|---|"
    rows = [
        f"| `{p.name}` | "
        + " | ".join("✓" if who in p.roles else "–" for who in PRINCIPALS)
        + f" | {'yes' if p.merchant_wide else ''} | {p.description} |"
        for p in PERMISSIONS.values()
    ]
    return "\n".join([head, rule, *rows])


if __name__ == "__main__":
    print(matrix_table())
