"""Make every log line safe to write: no token in it, and one line per record.

Access logs (uvicorn's, runserver's) print the whole request line, query string included, and
every face accepts the token as `?token=` (the jobs API as `?apikey=`). A parameter's name is
redacted as authentication reads it: percent-decoded, so `?%74oken=` is redacted like `?token=`.

Paths, names and messages from clients reach the logs too (uvicorn logs the decoded path):
control characters and line separators are escaped (`\\n`, `\\x00`, `\\u2028`), so that no
input can end a line and write one of its own.

The filter sits on the log handler, so whatever logger a line comes from, it is cleaned
before it is written. It works on the formatted message, whatever the arguments were.
"""

import logging
import re
from urllib.parse import unquote_plus

SECRET_NAMES = frozenset({"token", "apikey", "authtoken"})
# name=value in a query string (or a message that quotes one): the name follows a start, a
# separator or a space; the value runs to the next separator or space.
PARAMETER = re.compile(r"(?:^|(?<=[?&;\s\"'(,]))(?P<name>[^=&;\s\"'?#(,]+)=(?P<value>[^&;\s#]*)")
REDACTED = "[redacted]"
# C0 and C1 controls but tab, DEL, and the Unicode line and paragraph separators.
UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
ESCAPES = {"\n": "\\n", "\r": "\\r"}


def _redact_parameter(match: re.Match) -> str:
    name = match["name"]
    if unquote_plus(name).lower() in SECRET_NAMES and match["value"]:
        return f"{name}={REDACTED}"
    return match[0]


def redact(text: str) -> str:
    """`text` with the value of every token parameter (however its name is encoded) replaced."""
    return PARAMETER.sub(_redact_parameter, text) if "=" in text else text


def _escape_character(match: re.Match) -> str:
    character = match[0]
    return ESCAPES.get(character) or (
        f"\\x{ord(character):02x}" if ord(character) < 0x100 else f"\\u{ord(character):04x}"
    )


def escape(text: str) -> str:
    """`text` on one line: control characters and line separators written as escapes."""
    return UNSAFE.sub(_escape_character, text)


class SafeLogRecords(logging.Filter):
    """Redacts tokens and escapes control characters in each record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it when it formats the record
            return True
        record.msg = escape(redact(message))
        record.args = None
        return True
