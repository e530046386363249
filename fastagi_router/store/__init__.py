"""Where routes and customers live: the `Store` interface and its SQLite implementation."""

from fastagi_router.store.base import LearnOutcome, Page, Store
from fastagi_router.store.sqlite import SQLiteStore

__all__ = ["LearnOutcome", "Page", "SQLiteStore", "Store"]
