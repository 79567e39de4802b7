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

import re

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

# A remote client's error detail: long enough for any message of ours, short enough that an
# input echoed back (a CSV header of 300,000 names) cannot make it megabytes.
MAX_REMOTE_TEXT = 2000
# An absolute path of this machine (two parts or more, not inside a URL or hf://): the
# registry file, the store, the Hugging Face cache. A remote client has no use for them.
SERVER_PATH = re.compile(r"(?<![\w:/.~-])(?:/|[A-Za-z]:\\)[\w.~-]+(?:[/\\][\w.~-]+)+[/\\]?")


class OverloadedError(RegistryError):
    """Too many forecasts are waiting; try again after ``retry_after`` seconds."""

    def __init__(self, waiting: int, retry_after: int = 1):
        super().__init__(f"the forecast queue is full ({waiting} waiting)",
                         hint=f"retry after {retry_after} s, or start the server with a larger --max-queue")
        self.waiting = waiting
        self.retry_after = retry_after


class CancelledForecastError(RegistryError):
    """The client went away before its forecast was done: it was dropped from the queue, or its
    batch stopped between two decoding steps."""

    def __init__(self):
        super().__init__("the client closed the request; its forecast was cancelled",
                         hint="keep the connection open until the forecast arrives")


# (error class, HTTP status, kind, title); the first class the error is an instance of wins, so
# subclasses come before their bases.
ERROR_KINDS: tuple[tuple[type[BaseException], int, str, str], ...] = (
    (OverloadedError, 503, "overloaded", "The server is overloaded"),
    (CancelledForecastError, 499, "client-closed", "The client closed the request"),
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


def remote_text(text: str, limit: int = MAX_REMOTE_TEXT) -> str:
    """``text`` as a remote client may see it: server paths replaced, at most ``limit`` characters."""
    text = SERVER_PATH.sub("<server path>", text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def describe_error(error: RegistryError, *, remote: bool = False) -> ErrorReport:
    """The words (secrets redacted), exit code and HTTP status of ``error`` (see the module doc).

    ``remote``: for a client on the other end of a connection (HTTP, MCP): no server paths,
    and bounded in size (:func:`remote_text`).
    """
    status, kind, title = next((s, k, t) for cls, s, k, t in ERROR_KINDS if isinstance(error, cls))
    retry = None
    if isinstance(error, OverloadedError):
        retry = max(1, int(error.retry_after))
    elif isinstance(error, LockTimeoutError):
        retry = LOCK_RETRY_AFTER_S
    words = remote_text if remote else str
    return ErrorReport(
        message=words(redact_secrets(error.message)), hint=words(redact_secrets(error.hint)) if error.hint else None,
        exit_code=error.exit_code, status=status, kind=kind, title=title,
        field=getattr(error, "field", None) if isinstance(error, InputDataError) else None,
        names_entry=isinstance(error, ENTRY_ERRORS), retry_after=retry)


def error_text(error: RegistryError) -> str:
    """``describe_error(error, remote=True).text()``: what a machine face says of a caller's mistake."""
    return describe_error(error, remote=True).text()
