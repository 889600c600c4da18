"""`/cashier`, the cashier screen: payments by QR and card, baskets with promotions, refunds."""

from gateway.entrypoints.cashier import live, refunds, sales, screen

bp = screen.bp
bp.register_blueprint(sales.bp)
bp.register_blueprint(refunds.bp)
bp.register_blueprint(live.bp)
