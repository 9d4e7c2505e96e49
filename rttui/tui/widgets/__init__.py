"""Widgets the screens share or that carry their own behaviour (one per module)."""
