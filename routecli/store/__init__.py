"""The SQLite (later also PostgreSQL) ledger of every routing decision, token and cent.

Imports SQLModel/SQLAlchemy: import it only from commands that touch the ledger.
"""

from routecli.store.db import Store, open_store
from routecli.store.migrations import MIGRATIONS, apply_migrations
from routecli.store.models import SOURCES, STATUSES, Attempt, new_id, sha256_text, utcnow

__all__ = [
    "MIGRATIONS",
    "SOURCES",
    "STATUSES",
    "Attempt",
    "Store",
    "apply_migrations",
    "new_id",
    "open_store",
    "sha256_text",
    "utcnow",
]
