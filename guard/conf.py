"""guard's configuration options (oslo.config), as OpenStack services declare them.

The options are registered on a ``ConfigOpts`` by :func:`register_opts`, and
listed by :func:`list_opts` for ``oslo-config-generator --namespace guard``
(the ``oslo.config.opts`` entry point), which writes
``etc/guard/guard.conf.sample``::

    oslo-config-generator --namespace guard --namespace oslo.log --namespace oslo.policy \\
        --namespace keystonemiddleware.auth_token --output-file etc/guard/guard.conf.sample

:func:`load` reads the files as OpenStack services do: ``--config-file`` and
``--config-dir`` as given, else (with ``search``) oslo.config's default
search for project ``guard`` (``~/.guard/guard.conf``, ``~/guard.conf``,
``/etc/guard/guard.conf``, ``/etc/guard.conf`` and the ``guard.conf.d``
directories beside them). oslo.log's options are registered on every
``ConfigOpts`` it makes, with guard's defaults (:data:`LOG_DEFAULTS`).

Before oslo.config reads anything, :mod:`guard.conffiles` refuses what is
not a regular file among the files it would read (a FIFO blocked the start);
after, :mod:`guard.confoptions` refuses an option guard would ignore (a typo).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from oslo_config import cfg
from oslo_log import _options as oslo_log_options
from oslo_log import log as oslo_log
from oslo_log import versionutils
from oslo_middleware import sizelimit
from oslo_middleware.healthcheck import opts as healthcheck_opts

from guard import conffiles, confoptions

PROJECT = "guard"

#: The contract's body limit: 65,536 bytes pass, 65,537 are 413.
MAX_REQUEST_BODY_SIZE = 65536
PIPELINES = ("trusted", "main")

database_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "connection",
        secret=True,
        help="SQLAlchemy URL of the consumers database, e.g. "
        "postgresql+psycopg://guard:secret@db/guard. When unset, `guard serve` uses a SQLite "
        "file ./var/guard.sqlite.",
    ),
    cfg.IntOpt(
        "max_pool_size",
        default=5,
        min=1,
        help="Database server (PostgreSQL, MySQL/MariaDB) connections each worker process "
        "keeps open. Each request holds at "
        "most one, so keep it at or above the worker's threads. (SQLite keeps its own pool.)",
    ),
    cfg.IntOpt(
        "max_overflow",
        default=0,
        min=0,
        help="Database server connections a worker may open beyond max_pool_size under load, "
        "closed again when returned. With the default 0 a worker never holds more than "
        "max_pool_size, so hosts x workers x max_pool_size bounds guard's connections to "
        "the server; a thread that finds none free waits (pool_timeout).",
    ),
    cfg.FloatOpt(
        "pool_timeout",
        default=30.0,
        min=0.1,
        help="Seconds a request waits for a free database connection of its worker's pool "
        "before it is answered 503 guard.unavailable.",
    ),
]

guard_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "fingerprint_key",
        secret=True,
        help="Key of the HMAC that turns ids into <id:xxxxxxxx> fingerprints in logs. Set it "
        "to the same value on every host to follow one id across lines and hosts; when unset "
        "a random key is drawn at start.",
    ),
    cfg.StrOpt(
        "pipeline",
        default="main",
        choices=[
            (
                "trusted",
                "no authentication in the process: identity headers are set by an "
                "authenticating proxy in front (or by hand, for local trials)",
            ),
            ("main", "keystonemiddleware auth_token validates the X-Auth-Token of each request"),
        ],
        help="WSGI pipeline of `guard serve` and guard.wsgi. Both trust identity headers only "
        "with X-Identity-Status: Confirmed. The default, main, fails closed: it refuses to "
        "start without [keystone_authtoken] settings. `guard serve --demo` runs trusted.",
    ),
]

api_opts: list[cfg.Opt] = [
    cfg.HostAddressOpt("bind_host", default="127.0.0.1", help="Address `guard serve` listens on."),
    cfg.PortOpt("bind_port", default=8778, help="TCP port `guard serve` listens on."),
    cfg.IntOpt(
        "threads", default=8, min=1, max=256, help="Worker threads of the waitress server."
    ),
]


#: guard's defaults for oslo.log's options. Logs go to stderr (as gunicorn's
#: own do), so ``guard serve``'s stdout carries only what it prints for the
#: operator; ``[DEFAULT] log_file`` adds a file, ``use_stderr = false`` drops
#: stderr. The context format is oslo.log's without ``%(user_identity)s`` and
#: ``%(instance)s``: user and project names are not id-shaped, so the redacting
#: filter could not fingerprint them, and a log line must not carry them raw.
LOG_DEFAULTS: dict[str, Any] = {
    "use_stderr": True,
    "logging_context_format_string": "%(asctime)s.%(msecs)03d %(process)d %(levelname)s "
    "%(name)s [%(global_request_id)s %(request_id)s] %(message)s",
    "logging_default_format_string": "%(asctime)s.%(msecs)03d %(process)d %(levelname)s "
    "%(name)s [-] %(message)s",
}


def set_log_sample_defaults() -> None:
    """guard's oslo.log defaults, for ``oslo-config-generator`` (``oslo.config.opts.defaults``).

    It changes the options' defaults process-wide, so only the generator
    calls it; :func:`register_opts` sets them per ``ConfigOpts`` instead.
    """
    cfg.set_defaults(oslo_log_options.generic_log_opts, use_stderr=LOG_DEFAULTS["use_stderr"])
    cfg.set_defaults(
        oslo_log_options.log_opts,
        **{name: value for name, value in LOG_DEFAULTS.items() if name != "use_stderr"},
    )


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register guard's and oslo.log's options (with guard's defaults) on ``conf``."""
    oslo_log.register_options(conf)
    # oslo.log's fatal_deprecations, in guard.conf.sample: known, so the sample's line loads
    # (guard.confoptions refuses it set to true, which guard would not honour).
    conf.register_opts(versionutils.deprecated_opts)
    for name, value in LOG_DEFAULTS.items():
        conf.set_default(name, value)
    conf.register_opts(database_opts, group="database")
    conf.register_opts(guard_opts, group="guard")
    conf.register_opts(api_opts, group="api")
    conf.register_opts(sizelimit.OPTS, group="oslo_middleware")
    # oslo.middleware's drain file, read by guard's healthcheck.
    conf.register_opts(healthcheck_opts.DISABLE_BY_FILE_OPTS, group="healthcheck")
    conf.set_default("max_request_body_size", MAX_REQUEST_BODY_SIZE, group="oslo_middleware")


def _body_limit_as_guard_sets_it() -> cfg.Opt:
    # oslo.middleware's option, documented with the default guard gives it
    # (register_opts sets it); a copy, so oslo's own default stays as it is.
    opt = copy.deepcopy(sizelimit.OPTS[0])
    opt.default = MAX_REQUEST_BODY_SIZE
    return opt


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """guard's options, for ``oslo-config-generator --namespace guard``."""
    return [
        ("database", database_opts),
        ("guard", guard_opts),
        ("api", api_opts),
        ("oslo_middleware", [_body_limit_as_guard_sets_it()]),
        ("healthcheck", list[cfg.Opt](healthcheck_opts.DISABLE_BY_FILE_OPTS)),
    ]


def version() -> str:
    """guard's version, as installed."""
    try:
        return metadata.version(PROJECT)
    except metadata.PackageNotFoundError:  # a checkout that was never installed
        return "unknown"


def load(
    config_files: Sequence[str] = (),
    *,
    config_dirs: Sequence[str] = (),
    search: bool = False,
    pipes: bool = False,
) -> cfg.ConfigOpts:
    """A fresh ``ConfigOpts`` with guard's options, read as oslo.config reads a command's.

    ``config_files`` and ``config_dirs`` are what ``--config-file`` and
    ``--config-dir`` name (a missing file raises
    ``cfg.ConfigFilesNotFoundError``; a FIFO, device or directory among the
    files read raises ``guard.conffiles.NotARegularFileError``; an option or
    section guard does not read, ``guard.confoptions.UnknownOptionError``). With
    ``search``, what is not given is found by oslo.config's default search
    for project ``guard``, as the
    commands and the WSGI entry point do; without it (a library, a test) only
    the given files are read. ``pipes``: this process reads its
    configuration once (a ``guard`` command), so an anonymous pipe
    (``--config-file <(...)``) is a file it may read. A private object rather than the global
    ``cfg.CONF``, so that two services (or two tests) in one process never
    share configuration.
    """
    conffiles.check_config_files(
        config_files, config_dirs, project=PROJECT, search=search, pipes=pipes
    )
    conf = cfg.ConfigOpts()
    register_opts(conf)
    argv: list[str] = []
    for path in config_files:
        argv += ["--config-file", str(path)]
    for path in config_dirs:
        argv += ["--config-dir", str(path)]
    defaults: dict[str, Any] = {}
    if not search:
        defaults = {"default_config_files": [], "default_config_dirs": []}
    conf(argv, project=PROJECT, prog=PROJECT, version=version(), **defaults)
    check_secret_values(conf)
    confoptions.check_files(
        conf,
        conffiles.files_read(config_files, config_dirs, project=PROJECT, search=search),
        list_opts(),
    )
    confoptions.check_values(conf)
    return conf


class SecretValueError(cfg.Error):
    """A secret option whose value oslo.config cannot read; the message never shows it."""


def check_secret_values(conf: cfg.ConfigOpts) -> None:
    """Read guard's secret options now; one that cannot be read is named without its value.

    oslo.config reads ``$name`` in a value as a reference to another option:
    a database password with a ``$`` in it (``pa$word``) raised
    ``NoSuchOptError: no such option word`` when the option was first read,
    the password's tail on ``guard db``'s terminal and in ``guard serve``'s
    traceback.
    """
    for group, opts in list_opts():
        for opt in opts:
            if not opt.secret:
                continue
            try:
                getattr(conf[group], opt.dest)
            except cfg.Error:
                raise SecretValueError(
                    f"[{group}] {opt.name}: its value has a '$' that oslo.config reads as a "
                    "reference to another option; write '$$' for a literal '$'"
                ) from None


@functools.cache
def for_paste(config_file: str | None) -> cfg.ConfigOpts:
    """One ``ConfigOpts`` per guard.conf for PasteDeploy's factories, which share it.

    The ``guard`` filter, keystonemiddleware's ``authtoken`` and the
    ``consumers`` app of one ``api-paste.ini`` then read one configuration.
    A pipeline that names none (``config_file``) reads what every guard
    command reads then: oslo.config's default search (``~/.guard/``,
    ``/etc/guard/guard.conf``, ...). It read nothing: the policy file and
    database the operator's guard.conf named were ignored, for the
    defaults.
    """
    if config_file:
        return load([config_file])
    return load(search=True)
