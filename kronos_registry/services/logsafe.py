"""Log lines that say what a client sent without letting it write lines of its own.

A model name, a path or a query comes from the client; logged raw, a newline in it starts
what looks like a new, genuine log line. The formatter escapes control characters in the
message (a newline becomes ``\\n``); tracebacks, which are ours, keep their lines.
"""

from __future__ import annotations

import logging
import re

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """``text`` with every control character as a visible escape (``\\n``, ``\\x1b``)."""
    return CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


class SafeFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


__all__ = ["SafeFormatter", "escape_controls"]
