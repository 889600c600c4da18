"""What one sandbox bank app holds between requests: settings, database, locks, randomness."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app
from sqlalchemy.orm import Session

from sandbox_bank.models import Database
from sandbox_bank.settings import SandboxSettings

EXTENSION = "sandbox_bank"


@dataclass
class SandboxBank:
    """Held in ``app.extensions["sandbox_bank"]``.

    ``write_lock`` serialises money movements inside this process (SQLite has one writer
    anyway); the conditional updates in the services keep them correct across processes.
    """

    settings: SandboxSettings
    db: Database
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    delivery_lock: threading.Lock = field(default_factory=threading.Lock)
    rng: random.Random = field(default_factory=random.Random)
    worker: Any = None

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session for a money-moving service, with this process's writers held off."""
        with self.write_lock, self.db.session() as session:
            yield session

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.db.dispose()


def of(app: Flask | None = None) -> SandboxBank:
    target = app if app is not None else current_app
    bank: SandboxBank = target.extensions[EXTENSION]
    return bank
