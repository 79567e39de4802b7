"""One error renderer for every face: what went wrong, what to do, and how each face says it.

A face never formats a ``RegistryError`` itself: :func:`describe_error` gives the words
(message and hint, with secrets redacted), the CLI's exit code, and the HTTP status, kind and
title from one table (:data:`ERROR_KINDS`). The CLI prints ``error:``/``hint:`` lines, the MCP
server returns :func:`error_text` as a tool error, and the HTTP server a problem+json body
built from the same report.

The statuses: 404 an unknown entry, or one marked ``available: false`` (nothing the client can
do makes it servable); 422 bad candles or parameters, or an entry of the wrong kind (a tokenizer
named as the model); 409 a model not in the store that may not be fetched now (offline, or a
read-only store: syncing it resolves it); 503 with a retry delay a full forecast queue, or
another process holding the artifact's lock; 502 the model's source (hub, mirror) failing during
a first-use sync; 500 a stored model failing verification, an invalid registry file, anything else.
"""

from __future__ import annotations

import attrs

from registry.errors import (
    EntryKindError,
    InputDataError,
    LockTimeoutError,
    NotSyncedError,
    ReadOnlyStoreError,
    RegistryError,
    RegistryFileError,
    SourceError,
    UnavailableEntryError,
    UnknownEntryError,
    VerificationError,
)
from registry.redact import redact_secrets

LOCK_RETRY_AFTER_S = 5


class OverloadedError(RegistryError):
    """Too many forecasts are waiting; try again after ``retry_after`` seconds."""

    def __init__(self, waiting: int, retry_after: int = 1):
        super().__init__(f"the forecast queue is full ({waiting} waiting)",
                         hint=f"retry after {retry_after} s, or start the server with a larger --max-queue")
        self.waiting = waiting
        self.retry_after = retry_after


# (error class, HTTP status, kind, title); the first class the error is an instance of wins, so
# subclasses come before their bases.
ERROR_KINDS: tuple[tuple[type[BaseException], int, str, str], ...] = (
    (OverloadedError, 503, "overloaded", "The server is overloaded"),
    (UnknownEntryError, 404, "unknown-entry", "No such entry in the registry"),
    (UnavailableEntryError, 404, "unavailable-entry", "The entry is not available"),
    (EntryKindError, 422, "wrong-entry-kind", "The entry is not a model"),
    (InputDataError, 422, "invalid-input", "Invalid candles or parameters"),
    (NotSyncedError, 409, "not-synced", "The model is not in the store"),
    (ReadOnlyStoreError, 409, "read-only-store", "The store is read-only"),
    (LockTimeoutError, 503, "artifact-locked", "Another process holds the model's lock"),
    (SourceError, 502, "source-failed", "The model's source failed"),
    (VerificationError, 500, "verification-failed", "The stored model failed verification"),
    (RegistryFileError, 500, "registry-file-invalid", "The registry file is invalid"),
    (RegistryError, 500, "registry-error", "Registry error"),
)

# Errors about the entry a request names (the body's "model" or a route's "name").
ENTRY_ERRORS = (UnknownEntryError, UnavailableEntryError, EntryKindError, NotSyncedError)


@attrs.frozen
class ErrorReport:
    """A RegistryError as every face shows it."""

    message: str
    hint: str | None
    exit_code: int
    status: int
    kind: str
    title: str
    field: str | None = None          # the input field at fault (an InputDataError's), else None
    names_entry: bool = False         # about the entry the request names: the face says which field
    retry_after: int | None = None    # seconds, for a 503

    def text(self) -> str:
        """Message, hint and retry delay as lines (an MCP tool error, a log line)."""
        text = self.message if not self.hint else f"{self.message}\nhint: {self.hint}"
        if self.retry_after is not None and "retry" not in text:
            text += f"\nretry after {self.retry_after} s"
        return text


def describe_error(error: RegistryError) -> ErrorReport:
    """The words (secrets redacted), exit code and HTTP status of ``error`` (see the module doc)."""
    status, kind, title = next((s, k, t) for cls, s, k, t in ERROR_KINDS if isinstance(error, cls))
    retry = None
    if isinstance(error, OverloadedError):
        retry = max(1, int(error.retry_after))
    elif isinstance(error, LockTimeoutError):
        retry = LOCK_RETRY_AFTER_S
    return ErrorReport(
        message=redact_secrets(error.message), hint=redact_secrets(error.hint) if error.hint else None,
        exit_code=error.exit_code, status=status, kind=kind, title=title,
        field=getattr(error, "field", None) if isinstance(error, InputDataError) else None,
        names_entry=isinstance(error, ENTRY_ERRORS), retry_after=retry)


def error_text(error: RegistryError) -> str:
    """``describe_error(error).text()``: what a machine face says of a caller's mistake."""
    return describe_error(error).text()
