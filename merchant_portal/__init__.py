"""`/portal`, the merchant portal for managers: payments and devices, settlement, promotions."""

from merchant_portal import attention, events, promotions, reconciliation, settings, views

bp = views.bp
bp.register_blueprint(promotions.bp)
bp.register_blueprint(reconciliation.bp)
bp.register_blueprint(settings.bp)
bp.register_blueprint(attention.bp)
bp.register_blueprint(events.bp)
