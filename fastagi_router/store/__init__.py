"""Where routes and customers live: the `Store` interface and its SQLite implementation."""

from fastagi_router.store.base import Page, Store
from fastagi_router.store.sqlite import SQLiteStore

__all__ = ["Page", "SQLiteStore", "Store"]
