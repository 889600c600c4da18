"""Signed outbound webhooks to the merchant's own systems: endpoints (``endpoints``), the
outbox every other service publishes to (``outbox.publish``) and delivery by the worker."""
