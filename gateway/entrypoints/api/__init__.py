"""`/api/v1`, the tills' JSON API: payments and refunds, and sales priced with promotions."""

from gateway.entrypoints.api import approvals, payments, sales

bp = payments.bp
bp.register_blueprint(sales.bp)
bp.register_blueprint(approvals.bp)
