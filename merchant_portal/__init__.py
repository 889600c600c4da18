"""`/portal`, the merchant portal for managers: payments and devices, settlement, promotions,
the audit trail, staff administration, webhooks and the second factor."""

from merchant_portal import (
    administration,
    alerts,
    attention,
    audit_log,
    customers,
    events,
    identity,
    promotions,
    reconciliation,
    settings,
    views,
    webhooks,
)

bp = views.bp
bp.register_blueprint(promotions.bp)
bp.register_blueprint(reconciliation.bp)
bp.register_blueprint(settings.bp)
bp.register_blueprint(identity.bp)
bp.register_blueprint(audit_log.bp)
bp.register_blueprint(administration.bp)
bp.register_blueprint(attention.bp)
bp.register_blueprint(events.bp)
bp.register_blueprint(webhooks.bp)
bp.register_blueprint(customers.bp)
bp.register_blueprint(alerts.bp)
bp.context_processor(alerts.bar)
