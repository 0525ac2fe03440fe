"""guard's configuration options (oslo.config), as OpenStack services declare them.

The options are registered on a ``ConfigOpts`` by :func:`register_opts`, and
listed by :func:`list_opts` for ``oslo-config-generator --namespace guard``
(the ``oslo.config.opts`` entry point), which writes
``etc/guard/guard.conf.sample``::

    oslo-config-generator --namespace guard --namespace oslo.policy \\
        --namespace keystonemiddleware.auth_token --output-file etc/guard/guard.conf.sample

This module imports nothing of guard.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from oslo_config import cfg
from oslo_middleware import sizelimit

#: The contract's body limit: 65,536 bytes pass, 65,537 are 413.
MAX_REQUEST_BODY_SIZE = 65536
PIPELINES = ("trusted", "main")

database_opts = [
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
        help="PostgreSQL connections each worker process keeps open. Each request holds at "
        "most one, so keep it at or above the worker's threads. (SQLite keeps its own pool.)",
    ),
    cfg.IntOpt(
        "max_overflow",
        default=0,
        min=0,
        help="PostgreSQL connections a worker may open beyond max_pool_size under load, "
        "closed again when returned. With the default 0 a worker never holds more than "
        "max_pool_size, so hosts x workers x max_pool_size bounds guard's connections to "
        "the server; a thread that finds none free waits (pool_timeout).",
    ),
    cfg.FloatOpt(
        "pool_timeout",
        default=30.0,
        min=0.1,
        help="Seconds a request waits for a free PostgreSQL connection of its worker's pool "
        "before it is answered 503 guard.unavailable.",
    ),
]

guard_opts = [
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

api_opts = [
    cfg.HostAddressOpt("bind_host", default="127.0.0.1", help="Address `guard serve` listens on."),
    cfg.PortOpt("bind_port", default=8778, help="TCP port `guard serve` listens on."),
    cfg.IntOpt(
        "threads", default=8, min=1, max=256, help="Worker threads of the waitress server."
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register guard's options (and the body limit's guard default) on ``conf``."""
    conf.register_opts(database_opts, group="database")
    conf.register_opts(guard_opts, group="guard")
    conf.register_opts(api_opts, group="api")
    conf.register_opts(sizelimit.OPTS, group="oslo_middleware")
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
    ]


def load(config_files: Sequence[str] = (), args: Sequence[str] = ()) -> cfg.ConfigOpts:
    """A fresh ``ConfigOpts`` with guard's options, read from ``config_files`` only.

    A private object rather than the global ``cfg.CONF``, so that two
    services (or two tests) in one process never share configuration.
    """
    conf = cfg.ConfigOpts()
    register_opts(conf)
    conf(list(args), project="guard", default_config_files=list(config_files))
    return conf
