"""Persistence: the versioned SQLite schema and the Store (the only place SQL lives)."""

from rttui.store.db import SCHEMA_VERSION, Store, default_db_path

__all__ = ["SCHEMA_VERSION", "Store", "default_db_path"]
