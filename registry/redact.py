"""Secrets out of everything the engine writes or shows.

A hub token or a mirror's password reaches the process through the environment (HF_TOKEN,
HF_ENDPOINT with ``user:password@``); ``redact_secrets`` takes them, and the credentials of
any URL, out of a text before it lands in a manifest, a ref, a bundle or a message.
"""

from __future__ import annotations

import contextlib
import os
import re

# Secrets that must never land in a manifest or ref, whatever a caller passes in.
_TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
# user:password@ in a URL (a private mirror behind basic auth): never shown, never written.
_URL_CREDENTIALS = re.compile(r"\b(https?://)[^\s/@]+@", re.IGNORECASE)
_ENDPOINT_VARS = ("HF_ENDPOINT",)


def _env_secrets() -> list[str]:
    """Tokens, and the passwords of endpoints given with credentials, from the environment."""
    from urllib.parse import unquote, urlsplit

    found = [os.environ.get(var) for var in _TOKEN_VARS]
    for var in _ENDPOINT_VARS:
        with contextlib.suppress(ValueError):
            parts = urlsplit(os.environ.get(var) or "")
            if parts.password:
                found += [parts.password, unquote(parts.password)]
    return [secret for secret in found if secret and len(secret) >= 8]


def redact_secrets(text: str) -> str:
    """Belt and braces: a token or endpoint password from the environment, or the credentials
    of any URL, never reach a file we write or a message we show."""
    text = _URL_CREDENTIALS.sub(r"\1", text)
    for secret in _env_secrets():
        text = text.replace(secret, "<redacted>")
    return text
