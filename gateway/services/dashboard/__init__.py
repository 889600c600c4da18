"""The portal dashboard's read models."""
