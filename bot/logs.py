"""Logging set-up: readable text by default, one JSON object a line with LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging
import time

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    """One record, one line: newlines in the message (from user-provided values) are escaped, so nobody
    can forge a log line; a traceback follows on its own lines as usual."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = record.message.replace("\r", "\\r").replace("\n", "\\n")
        return super().formatMessage(record)


# Client libraries whose loggers may carry request bodies (user text) at INFO or debug level.
QUIET_LIBRARIES = (
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "discord",
    "slack_bolt",
    "slack_sdk",
    "aiohttp.access",
)


def quiet_libraries(level: int) -> None:
    """Client libraries at WARNING unless -vv. slack_bolt sets its per-class loggers' levels from the
    root logger when it creates them, so those are reset to inherit from their library's logger."""
    library_level = max(level, logging.WARNING) if level > logging.DEBUG else logging.INFO
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(library_level)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name.startswith(tuple(f"{n}." for n in QUIET_LIBRARIES)):
            logger.setLevel(logging.NOTSET)


def configure(*, level: int, json_format: bool) -> None:
    handler = logging.StreamHandler()
    if json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_libraries(level)
