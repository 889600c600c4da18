"""The OpenAPI 3.1 document of `/api/v1`, generated from the pydantic schemas that validate it."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic.json_schema import models_json_schema

from gateway.entrypoints.api.sale_schemas import CreateSale, PaySale, SaleOut
from gateway.entrypoints.api.schemas import (
    CreateApproval,
    CreatePayment,
    CreateRefund,
    PaymentOut,
    Problem,
    RefundOut,
)

_REF = "#/components/schemas/{model}"
_MODELS = (
    CreatePayment,
    CreateRefund,
    PaymentOut,
    Problem,
    RefundOut,
    CreateSale,
    PaySale,
    SaleOut,
    CreateApproval,
)


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": _REF.format(model="Problem")}}},
    }


def _ok(description: str, status: str = "200") -> dict[str, Any]:
    return {
        status: {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model="PaymentOut")}}},
        }
    }


_INVALID = _problem(
    "Invalid input: a control character in a path segment, header or JSON string, JSON nested "
    "too deep, a body that breaks the schema, or a rule the schema cannot state (the "
    "currency's decimal places, the currencies the merchant accepts)."
)
_ERRORS = {
    "401": _problem("Missing or invalid till API key."),
    "404": _problem("No such payment for this merchant."),
    "422": _INVALID,
}
# What idempotency.check_key accepts: 1 to 255 printable characters (no space at either end,
# which HTTP would strip).
_KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": "^[!-~]([ -~]*[!-~])?$",
}
_PAYMENT_ID = {"name": "payment_id", "in": "path", "required": True, "schema": {"type": "string"}}


@lru_cache(maxsize=4)
def openapi_document(min_expiry: int = 30, max_expiry: int = 3600) -> dict[str, Any]:
    """The document; ``expires_in``'s bounds are the configured ones (``[payments]``)."""
    return with_approvals(_document(min_expiry, max_expiry))


def _document(min_expiry: int, max_expiry: int) -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(m, "validation") for m in _MODELS],
        ref_template=_REF,
    )
    expires_in = schemas["$defs"]["CreatePayment"]["properties"]["expires_in"]
    for option in expires_in.get("anyOf", [expires_in]):
        if option.get("type") == "integer":
            option.update(minimum=min_expiry, maximum=max_expiry)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kassa terminal API",
            "version": "1",
            "description": "Payments for tills. Amounts are decimal strings in the currency's "
            "major unit; errors are RFC 9457 problem documents.",
        },
        "servers": [{"url": "/api/v1"}],
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {
                "tillKey": {"type": "http", "scheme": "bearer"},
                "managerPassword": {"type": "http", "scheme": "basic"},
            },
        },
        "security": [{"tillKey": []}],
        "paths": {
            "/payments": {
                "post": {
                    "operationId": "createPayment",
                    "summary": "Create a dynamic EMV QR payment",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": "Same key and body replay the first response; same "
                            "key with another body is rejected with 422.",
                            "schema": _KEY_SCHEMA,
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": _REF.format(model="CreatePayment")}
                            }
                        },
                    },
                    "responses": {
                        **_ok("The payment, with its QR payload.", "201"),
                        "401": _ERRORS["401"],
                        "409": _problem(
                            "A request with this key is still being processed; the card "
                            "terminal is busy; or it does not take this currency "
                            "(/problems/card-currency-not-accepted, nothing was sent to it)."
                        ),
                        "422": _problem("Invalid request, or Idempotency-Key reused."),
                    },
                }
            },
            "/payments/{payment_id}": {
                "get": {
                    "operationId": "getPayment",
                    "summary": "Read a payment and its event history",
                    "parameters": [_PAYMENT_ID],
                    "responses": {**_ok("The payment."), **_ERRORS},
                }
            },
            "/payments/{payment_id}/cancel": {
                "post": {
                    "operationId": "cancelPayment",
                    "summary": "Cancel a payment the customer has not paid",
                    "parameters": [_PAYMENT_ID],
                    "responses": {
                        **_ok("The cancelled payment."),
                        **_ERRORS,
                        "409": _problem("The payment can no longer be cancelled."),
                    },
                }
            },
            "/payments/{payment_id}/refunds": {
                "post": {
                    "operationId": "refundPayment",
                    "summary": "Refund all or part of a paid payment",
                    "description": "The bank carries the refund out; its status moves from "
                    "requested to submitted to succeeded or failed. Never more than was paid "
                    "minus what is already refunded or in progress. A card payment's money goes "
                    "back at the till's terminal: after end of day (paid) as a refund, before it "
                    "(authorised, still in the terminal's open batch) only whole, as a reversal "
                    "that leaves the payment cancelled.",
                    "parameters": [
                        _PAYMENT_ID,
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": True,
                            "schema": _KEY_SCHEMA,
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": _REF.format(model="CreateRefund")}
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "The refund, queued for the bank.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": _REF.format(model="RefundOut")}
                                }
                            },
                        },
                        **_ERRORS,
                        "409": _problem(
                            "Not paid, more than is still refundable, or part of a card "
                            "payment still in the terminal's open batch."
                        ),
                        "422": _problem("Invalid request, or Idempotency-Key missing or reused."),
                    },
                },
                "get": {
                    "operationId": "listRefunds",
                    "summary": "The refunds of a payment",
                    "parameters": [_PAYMENT_ID],
                    "responses": {
                        "200": {
                            "description": "Refunds, oldest first.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "array",
                                        "items": {"$ref": _REF.format(model="RefundOut")},
                                    }
                                }
                            },
                        },
                        **_ERRORS,
                    },
                },
            },
            **_sale_paths(),
            **_approval_paths(),
            **_bank_money_paths(),
            "/payments/{payment_id}/qr.{fmt}": {
                "get": {
                    "operationId": "getPaymentQr",
                    "summary": "The payment's QR code as PNG or SVG",
                    "parameters": [
                        _PAYMENT_ID,
                        {
                            "name": "fmt",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": ["png", "svg"]},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The QR image (error correction M, quiet zone 4).",
                            "content": {
                                "image/png": {"schema": {"type": "string", "format": "binary"}},
                                "image/svg+xml": {"schema": {"type": "string"}},
                            },
                        },
                        **_ERRORS,
                    },
                }
            },
        },
    }


_SALE_ID = {"name": "sale_id", "in": "path", "required": True, "schema": {"type": "string"}}
_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Same key and body replay the first response.",
    "schema": _KEY_SCHEMA,
}


def _sale(description: str, status: str = "200") -> dict[str, Any]:
    return {
        status: {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model="SaleOut")}}},
        }
    }


def _body(model: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model=model)}}},
    }


def _sale_paths() -> dict[str, Any]:
    return {
        "/sales": {
            "post": {
                "operationId": "priceSale",
                "summary": "Price a basket with the merchant's promotions (a quote)",
                "description": "Returns every line before and after discounts, each applied "
                "promotion with its amount per line, points, gifts, the total to pay and why "
                "every other promotion did not apply. Nothing is held until the sale is paid.",
                "parameters": [_KEY],
                "requestBody": _body("CreateSale"),
                "responses": {
                    **_sale("The priced sale.", "201"),
                    "401": _ERRORS["401"],
                    "422": _problem("Invalid basket or customer identity."),
                },
            }
        },
        "/sales/{sale_id}": {
            "get": {
                "operationId": "getSale",
                "summary": "Read a sale, with its payment",
                "parameters": [_SALE_ID],
                "responses": {**_sale("The sale."), **_ERRORS},
            }
        },
        "/sales/{sale_id}/pay": {
            "post": {
                "operationId": "paySale",
                "summary": "Price the sale for a payment method, hold its promotions, and "
                "create the payment for the discounted total",
                "description": "Budgets, coupons and points are held while the payment is "
                "open, committed when it is paid and released if it is cancelled or expires. "
                "Paying twice returns the same payment; `payment` is null when promotions "
                "cover the whole total.",
                "parameters": [_SALE_ID, _KEY],
                "requestBody": _body("PaySale"),
                "responses": {
                    **_sale("The sale, reserved, with its payment.", "201"),
                    **_ERRORS,
                    "409": _problem("The sale was cancelled or expired, or a budget changed."),
                },
            }
        },
    }


_APPROVAL_TOKEN = {
    "name": "Approval-Token",
    "in": "header",
    "required": False,
    "description": "A supervisor's approval from POST /approvals, when the action needs one.",
    "schema": {"type": "string"},
}
_APPROVAL_REQUIRED = _problem(
    "A supervisor's approval is needed (type /problems/approval-required: action, amount, "
    "currency, payment_id), or the Approval-Token offered was refused "
    "(/problems/approval-refused). Nothing was done."
)
# The actions that may need a supervisor's approval (see docs/access.md).
_APPROVED_OPERATIONS = (
    ("/payments", "post"),
    ("/payments/{payment_id}/cancel", "post"),
    ("/payments/{payment_id}/refunds", "post"),
    ("/sales/{sale_id}/pay", "post"),
)


def _approval_paths() -> dict[str, Any]:
    return {
        "/approvals": {
            "post": {
                "operationId": "createApproval",
                "summary": "A supervisor's approval as a single-use token",
                "description": "With the supervisor's username and PIN, for one action, payment "
                "and amount; send it as the Approval-Token header of that one request. It "
                "expires unused after [approvals] token_seconds.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": _REF.format(model="CreateApproval")}
                        }
                    },
                },
                "responses": {
                    "201": {"description": "The token, its action, amount and expiry."},
                    "401": _problem("Missing or invalid till API key."),
                    "403": _problem(
                        "The supervisor's name or PIN is wrong, or they may not "
                        "approve at this store (/problems/approval-refused)."
                    ),
                    "404": _problem("No such payment for this till's store."),
                    "422": _problem("Invalid request."),
                },
            }
        }
    }


def _bank_money_paths() -> dict[str, Any]:
    """A manager's answer about money the bank took (gateway/entrypoints/api/attention.py):
    HTTP Basic with their portal credentials and their authenticator's code, never a till key."""
    paths = {}
    for action, summary in (
        ("accept", "Accept the money the bank took under this payment's reference as paid"),
        ("refund", "Give the money the bank took back to the customer through the bank"),
    ):
        paths[f"/payments/{{payment_id}}/bank-money/{action}"] = {
            "post": {
                "operationId": f"bankMoney{action.title()}",
                "summary": summary,
                "security": [{"managerPassword": []}],
                "parameters": [
                    _PAYMENT_ID,
                    {
                        "name": "Kassa-OTP",
                        "in": "header",
                        "required": False,
                        "description": "The current code of the manager's authenticator app "
                        "(managers and owners have one; one code serves its 30-second step).",
                        "schema": {"type": "string"},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["note"],
                                "properties": {
                                    "note": {
                                        "type": "string",
                                        "description": "Why, for the payment's history.",
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "The action, whether it had been taken before "
                        "(already), the payment, and the refund when there is one."
                    },
                    "401": _problem(
                        "No HTTP Basic credentials, a wrong password, or a missing or wrong "
                        "Kassa-OTP code."
                    ),
                    "403": _problem("This person may not accept or refund the bank's money."),
                    "404": _problem("No such payment for this merchant."),
                    "409": _problem("The payment has no open question about the bank's money."),
                    "422": _problem('Not {"note": "…"}, or the note is empty or too long.'),
                    "429": {
                        "description": "Too many wrong passwords or codes; try again after "
                        "Retry-After seconds.",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        "content": {
                            "application/problem+json": {
                                "schema": {"$ref": _REF.format(model="Problem")}
                            }
                        },
                    },
                },
            }
        }
    return paths


def with_approvals(document: dict[str, Any]) -> dict[str, Any]:
    """Mark the operations that may need approval: the header and the 403 problem."""
    for path, method in _APPROVED_OPERATIONS:
        operation = document["paths"].get(path, {}).get(method)
        if operation is None:
            continue
        operation.setdefault("parameters", []).append(_APPROVAL_TOKEN)
        operation["responses"]["403"] = _APPROVAL_REQUIRED
    return document
