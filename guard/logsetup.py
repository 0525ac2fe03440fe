"""guard's one logging setup: oslo.log's handlers, guard's redacting filter on each.

Every entry point that owns its process (``guard serve``, the WSGI entry
point ``guard.wsgi``, the other ``guard`` commands) calls :func:`setup` once
its configuration is read, as OpenStack services call oslo.log's. So the
operator's ``[DEFAULT]`` options decide where logs go: ``debug``,
``log_file``, ``log_dir``, ``use_stderr``, ``use_journal``,
``log_config_append`` (a ``logging.config`` file such as
``etc/guard/logging.conf``), ``default_log_levels``.

guard's redacting filter (:func:`guard.log.install`, keyed by ``[guard]
fingerprint_key``) then goes on every handler oslo.log made and on any made
later. PasteDeploy's factories do not call this: a service that pastes
guard's filter owns its own logging; they only install the filter.
"""

from __future__ import annotations

import errno
import logging
import os

from oslo_config import cfg
from oslo_log import formatters as oslo_formatters
from oslo_log import handlers as oslo_handlers
from oslo_log import log as oslo_log

from guard import conf as guard_conf
from guard import conffiles, logformat
from guard import log as guard_log


class LoggingConfigError(ValueError):
    """The logging options (``log_config_append``'s file, ...) cannot be applied."""


def setup(conf: cfg.ConfigOpts) -> None:
    """Configure this process's logging from ``conf`` (oslo.log), then redact every handler.

    Raises :class:`LoggingConfigError` naming the file and the kind of error
    (not its text, which may quote the file's lines) when oslo.log refuses.
    """
    # The filter first, so that what oslo.log logs while it sets up is redacted too.
    guard_log.install(conf.guard.fingerprint_key)
    named = [n for n in ("log_dir", "log_file") if getattr(conf, n)]  # as the operator wrote
    if named == ["log_dir"]:
        # oslo.log names the file after the program: "<frozen runpy>.log"
        # under `python -m guard`, gunicorn.log, uwsgi.log. guard's is guard.log.
        conf.set_default("log_file", f"{guard_conf.PROJECT}.log")
    held = refuse_what_would_block(conf)
    try:
        oslo_log.setup(conf, guard_conf.PROJECT, guard_conf.version())
    except Exception as error:  # logging.config raises whatever the file leads it into
        source = conf.log_config_append or "the [DEFAULT] logging options"
        kind = (
            "not a readable logging.config file with its sections and keys"
            if isinstance(error, oslo_log.LogConfigError)
            else f"{type(error).__name__} while applying it"
        )
        if not conf.log_config_append and isinstance(error, OSError) and error.strerror:
            # The log file oslo.log could not open, named as the operator wrote it.
            written = [f"{n} = {getattr(conf, n)}" for n in named]
            source = f"[DEFAULT] {', '.join(written)}" if written else source
            kind = f"the log file cannot be opened ({error.strerror})"
        raise LoggingConfigError(f"{source}: {kind}") from None
    finally:
        if held is not None:
            os.close(held)  # oslo.log's own handler writes to the FIFO now
    guard_log.install(conf.guard.fingerprint_key)
    for handler in guard_log.every_handler():
        if type(handler.formatter) is oslo_formatters.ContextFormatter:
            # The same text, guard's own lines made cheaply (guard.logformat).
            handler.setFormatter(logformat.ContextFormatter.like(handler.formatter))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, oslo_handlers.OSJournalHandler):
            # use_journal: oslo.log's handler sends the caller's project id,
            # user id and names as journal fields, read raw from the record
            # after its formatter set them from the context (no filter sees
            # them). Only the request id, readable anyway, stays a field.
            handler.custom_fields = ("request_id",)  # type: ignore[assignment]


def refuse_what_would_block(conf: cfg.ConfigOpts) -> int | None:
    """Raise :class:`LoggingConfigError` for a logging file oslo.log would wait on forever.

    ``log_config_append`` must be a regular file: a FIFO there blocked the
    start (or, on the Python versions whose ``fileConfig`` checks the size,
    was called an unreadable file like any typo), a directory or a device is
    no logging configuration. ``log_file`` may be a FIFO that a log shipper
    reads, but one that nobody reads blocked the start on its opening: that
    is refused, as oslo.log's ``open`` would wait for a reader forever.

    Returns the write end of a ``log_file`` FIFO that this check opened, for
    the caller to close once oslo.log has opened its own (else None). Closed
    at once, it left the FIFO without a writer: a reader that stops at the
    end of the file (``cat``, a shipper's pipe source) took that for the end
    and left, and oslo.log's open then waited for a reader forever.
    """
    path = conf.log_config_append
    kind = conffiles.kind_of(path) if path else None
    if kind:
        raise LoggingConfigError(
            f"[DEFAULT] log_config_append = {path} is {kind}, not a regular file"
        )
    if path or not conf.log_file:
        return None  # with log_config_append, oslo.log never opens log_file
    log_file = os.path.join(conf.log_dir or "", conf.log_file)  # as oslo.log joins them
    if conffiles.kind_of(log_file) != "a FIFO":
        return None
    try:
        # Opening a FIFO for writing without blocking fails (ENXIO) when no reader has it open.
        return os.open(log_file, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        if error.errno != errno.ENXIO:
            return None  # oslo.log's own open reports it (guard names the option then)
        raise LoggingConfigError(
            f"[DEFAULT] log_file {log_file} is a FIFO that no process reads: "
            "writing the log would wait for a reader forever"
        ) from None


def set_level(conf: cfg.ConfigOpts, level: str) -> None:
    """Set guard's loggers to ``level`` through oslo.log's ``default_log_levels``.

    (``guard serve --log-level``; every worker that reads ``conf`` applies it.)
    """
    levels = [pair for pair in conf.default_log_levels if not pair.startswith("guard=")]
    conf.set_override("default_log_levels", [*levels, f"guard={level}"])
