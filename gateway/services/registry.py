"""Which function handles which kind of background job."""

from __future__ import annotations

from gateway.services import payments
from gateway.services.jobs import Handler


def job_handlers() -> dict[str, Handler]:
    return {payments.EXPIRE_JOB: payments.expire_payment}
