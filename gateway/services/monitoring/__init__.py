"""Anomaly monitoring: rules checked as events happen, alerts for people to acknowledge.

- :mod:`thresholds`: the merchant's thresholds (``[monitoring]`` with its own over them) and
  each store's opening hours;
- :mod:`rules`: the after-change hooks (payments, refunds, attention flags, failed sign-ins)
  that count what happened and ask :mod:`gateway.domain.monitoring` whether it is an anomaly;
- :mod:`alerts`: raising (one open alert per rule, subject and window), reading and
  acknowledging alerts, and the one outbound notification.

Everything runs inside the caller's unit of work: an alert commits with the event behind it.
"""
