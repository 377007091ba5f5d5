"""Retrieval's error tree, importable without loading any model or store library.

Every message is safe to show: it names what to change (a setting, a file, a URL) and never a secret.
"""

from __future__ import annotations


class LibraryError(Exception):
    """Base of retrieval's errors: the article library cannot be read, embedded or searched.
    `retry_after`: seconds the source asked us to wait before trying again (HTTP 429's Retry-After)."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class SourceError(LibraryError):
    """A source that cannot be read at all (missing file, unreachable URL)."""


class EmbeddingError(LibraryError):
    """The embedding model cannot be loaded; the message says how to fix it."""


class StoreError(LibraryError):
    """The vector store cannot be reached or refused a request; the message is safe to show."""


class IngestError(LibraryError):
    """The ingest could not run; the live index is left exactly as it was."""
