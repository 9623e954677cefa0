"""Keep tokens out of the logs.

Access logs (uvicorn's, runserver's) print the whole request line, query string included, and
every face accepts the token as `?token=` (the jobs API as `?apikey=`). The filter sits on the
log handler, so whatever logger a line comes from, a token in it is replaced before it is written.
"""

import logging
import re

SECRET_PARAMETER = re.compile(r"(?P<name>\b(?:token|apikey|authToken)=)[^&\s\"']+", re.IGNORECASE)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    return SECRET_PARAMETER.sub(rf"\g<name>{REDACTED}", text)


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: redact(arg) if isinstance(arg, str) else arg for key, arg in record.args.items()}
        return True
