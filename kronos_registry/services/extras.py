"""Optional extras (plot, parquet, ray, serve, mcp): one check, one error, one hint.

An extra is imported only inside the face or service that needs it, so `import kronos_registry`
and `kronos-registry list` stay fast; this module is where each face asks for one.
"""

from __future__ import annotations

import importlib

from registry.errors import RegistryError


class MissingExtraError(RegistryError):
    """An optional dependency (a `pip install 'kronos-registry[EXTRA]'`) is not installed."""

    exit_code = 10

    def __init__(self, module: str, extra: str, purpose: str, hint: str | None = None):
        super().__init__(
            f"{purpose} needs {module}, which is not installed",
            hint=hint or f"pip install 'kronos-registry[{extra}]'  (or: pip install {module})",
        )
        self.module = module
        self.extra = extra


def require_extra(extra: str, purpose: str, *modules: str) -> None:
    """Import each of ``modules`` (the extra's own name when none), or raise MissingExtraError."""
    for module in modules or (extra,):
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtraError(module.split(".")[0], extra, purpose) from None
