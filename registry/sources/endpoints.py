"""Which hub endpoints to ask, with what token and timeout; offline mode; the HF cache.

Settings are read from the environment when asked for (never at import time): HF_ENDPOINT,
HF_TOKEN, KRONOS_REGISTRY_TIMEOUT, KRONOS_REGISTRY_OFFLINE / HF_HUB_OFFLINE, HF_HUB_CACHE.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

import attrs

from ..errors import SourceError
from ..redact import redact_secrets

DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "true", "yes", "on"}


def _parse_timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise SourceError(
            f"KRONOS_REGISTRY_TIMEOUT={text!r} is not a positive number of seconds",
            hint="set it to e.g. 10 or unset it",
        )
    return value


@attrs.frozen
class Endpoints:
    """Hub endpoints tried in order when one cannot be reached, and how to talk to them."""

    urls: tuple[str, ...] = attrs.field(converter=lambda urls: tuple(u.rstrip("/") for u in urls))
    # The token is a secret: kept out of repr, never logged, never written anywhere.
    token: str | None = attrs.field(default=None, repr=False)
    timeout: float = 10.0
    retries: int = 1

    @urls.validator
    def _check_urls(self, _attribute, urls) -> None:
        if not urls:
            raise ValueError("Endpoints needs at least one URL")

    @classmethod
    def from_settings(cls, file_endpoint: str | None, file_mirrors: Sequence[str],
                      env: Mapping[str, str] = os.environ) -> "Endpoints":
        """HF_ENDPOINT, else the registry file's ``endpoint:``, else huggingface.co; then mirrors."""
        first = env.get("HF_ENDPOINT") or file_endpoint or DEFAULT_ENDPOINT
        urls: list[str] = []
        for url in (first, *file_mirrors):
            url = url.rstrip("/")
            if url and url not in urls:
                urls.append(url)
        token = env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or None
        timeout_text = env.get("KRONOS_REGISTRY_TIMEOUT")
        timeout = _parse_timeout(timeout_text) if timeout_text else 10.0
        return cls(urls=tuple(urls), token=token, timeout=timeout)

    def starting_with(self, url: str | None) -> tuple[str, ...]:
        """The URLs with ``url`` (the one that answered before) moved to the front."""
        if url is None or url not in self.urls:
            return self.urls
        return (url, *(u for u in self.urls if u != url))

    def scrub(self, text: str) -> str:
        """``text`` without the token or any endpoint's credentials, fit to show or log."""
        for url in self.urls:
            shown = plain_url(url)
            if shown and shown != url:
                text = text.replace(url, shown)
        text = text.replace(self.token, "***") if self.token else text
        return redact_secrets(text)


def plain_url(url: str | None) -> str | None:
    """The endpoint without credentials or query: fit to show, log or record."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def is_offline(explicit: bool | None = None, env: Mapping[str, str] = os.environ) -> bool:
    """``explicit`` when given; else KRONOS_REGISTRY_OFFLINE or HF_HUB_OFFLINE set to 1/true."""
    if explicit is not None:
        return explicit
    return any(env.get(name, "").strip().lower() in _TRUE
               for name in ("KRONOS_REGISTRY_OFFLINE", "HF_HUB_OFFLINE"))


def hf_cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    """The Hugging Face hub cache, read from the environment now (not at import time)."""
    from huggingface_hub import constants

    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(name):
            return Path(os.path.expandvars(env[name])).expanduser()
    if env.get("HF_HOME"):
        return Path(os.path.expandvars(env["HF_HOME"])).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)
