"""Secrets never reach a log line: query values of `secret`, `token` and `key` are masked in
the access log (nginx's callbacks carry the ingest secret, sockets may carry a bearer token,
encoders may send their stream key as `key`)."""

from __future__ import annotations

import logging
import re

SECRET_QUERY = re.compile(r"(?i)([?&](?:secret|token|key|auth|signature)=)[^&\s\"]*")


def redact(text: str) -> str:
    return SECRET_QUERY.sub(r"\1***", text)


class RedactQuerySecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install(logger_name: str = "uvicorn.access") -> None:
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactQuerySecrets) for f in logger.filters):
        logger.addFilter(RedactQuerySecrets())
