"""Careful reading of a runner host's ``config.toml`` for the modules that act on it.

Shared by ``runner_config_audit`` (which reports each problem as a GR023
finding) and ``runner_job_probe``: a bounded
read of a regular file opened without blocking and checked on the descriptor,
UTF-8 only, no NUL bytes, a byte order mark ignored, and TOML errors reported
with line and column but never with the file's content. ``secret_values``
lists the token-like values a caller registers as no_log.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping

from ansible_collections.hardened.gitlab_runner.plugins.module_utils.host_text import clip as one_line

try:
    import tomllib as _toml
except ImportError:  # Python < 3.11
    try:
        import tomli as _toml
    except ImportError:
        _toml = None

HAS_TOML = _toml is not None
DEFAULT_MAX_SIZE = 1048576

# Keys whose string values are secrets (compared case-insensitively).
SECRET_KEYS = frozenset((
    "token", "password", "secretkey", "accesskey", "sessiontoken", "privatekey",
    "accountkey", "bearer_token", "sentry_dsn",
))


class ConfigFileError(Exception):
    """The file cannot be used; the message says why, without its content
    (runner_config_audit reports it as the GR023 evidence)."""


# GitLab token shapes, masked in any message as a last resort.
TOKEN_PATTERN = re.compile(r"(glrt-|glrtr-|glcbt-|glpat-|GR1348941)[A-Za-z0-9_.\-]*")
MESSAGE_LIMIT = 200


def clip(text, limit=MESSAGE_LIMIT):
    """``text`` on one line, at most ``limit`` characters, token shapes masked."""
    return one_line(TOKEN_PATTERN.sub("<redacted>", str(text)), limit)


def _os_error_text(exc):
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, NotADirectoryError):
        return "a parent of the path is not a directory"
    return "cannot be read: %s" % (exc.strerror or type(exc).__name__)


def read_config(path, max_size=DEFAULT_MAX_SIZE):
    """Return the text of ``path``; raise ConfigFileError with the reason otherwise."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigFileError(_os_error_text(exc))
    if stat.S_ISDIR(st.st_mode):
        raise ConfigFileError("is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigFileError("is not a regular file")
    if st.st_size > max_size:
        raise ConfigFileError("%d bytes, larger than max_size (%d bytes)" % (st.st_size, max_size))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ConfigFileError(_os_error_text(exc))
    try:
        # The path may have been replaced since os.stat().
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigFileError("is not a regular file")
        chunks = []
        remaining = max_size + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as exc:
        raise ConfigFileError(_os_error_text(exc))
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_size:
        raise ConfigFileError("larger than max_size (%d bytes)" % max_size)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigFileError("not UTF-8 text (invalid byte at offset %d)" % exc.start)
    if "\x00" in text:
        raise ConfigFileError("contains NUL bytes (binary data, not TOML text)")
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def parse_config(text):
    """The parsed document; raise ConfigFileError (line and column, no content) otherwise."""
    if _toml is None:
        raise ConfigFileError("no TOML parser (Python 3.11+ tomllib, or the tomli package)")
    try:
        document = _toml.loads(text)
    except _toml.TOMLDecodeError as exc:
        # The parsers' messages give line and column, never content.
        message = exc.msg if isinstance(getattr(exc, "msg", None), str) else str(exc)
        lineno = getattr(exc, "lineno", None)
        colno = getattr(exc, "colno", None)
        if isinstance(lineno, int) and "line" not in message:
            # lineno is an int here; %s because pylint cannot see that and infers None.
            message = "%s (at line %s, column %s)" % (message, lineno, colno)
        raise ConfigFileError("not valid TOML: %s" % clip(message))
    except (RecursionError, MemoryError, ValueError, TypeError) as exc:
        raise ConfigFileError("not valid TOML: the parser gave up (%s)" % type(exc).__name__)
    return document


def secret_values(node):
    """Every non-empty string stored under a secret-looking key, anywhere in ``node``."""
    found = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, value in item.items():
                if isinstance(value, str):
                    if str(key).lower() in SECRET_KEYS and value:
                        found.append(value)
                elif isinstance(value, (Mapping, list, tuple)):
                    stack.append(value)
        elif isinstance(item, (list, tuple)):
            stack.extend(v for v in item if isinstance(v, (Mapping, list, tuple)))
    return found
