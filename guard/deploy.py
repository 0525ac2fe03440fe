"""Assembly of guard's WSGI pipelines and the wiring of their shared parts.

:func:`build_services` wires the parts one deployment shares (database
engine, policy enforcer, decision log, guarded repository);
:func:`build_pipeline` stacks the filters in the order of
``etc/guard/api-paste.ini``::

    request_id -> sizelimit -> [auth_token] -> guard -> consumers API

``main`` has keystonemiddleware's ``auth_token`` (with
``delay_auth_decision``, so that guard, not keystonemiddleware, answers the
401 in the contract's format); ``trusted`` has none, for a deployment behind
an authenticating proxy and for local trials. :func:`app_factory` is the
PasteDeploy factory of the API for ``api-paste.ini``.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oslo_config import cfg
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from guard import audit, authtoken, exception, policy
from guard import conf as guard_conf
from guard.api import healthcheck
from guard.api.app import make_app
from guard.db import api as db_api
from guard.db import migration, sqlitefile
from guard.logfingerprints import fingerprint
from guard.middleware import (
    GuardMiddleware,
    RequestId,
    SizeLimit,
    WSGIApp,
    anonymous_context,
    paste_conf,
    shared_enforcer,
)
from guard.repository import ConsumerRepository

#: Where ``guard serve`` keeps its SQLite file when no database is configured.
DEFAULT_SQLITE_PATH = Path("var") / "guard.sqlite"


def database_url(conf: cfg.ConfigOpts) -> str:
    """The configured database, or the default SQLite file (its folder made)."""
    if conf.database.connection:
        return conf.database.connection
    DEFAULT_SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_SQLITE_PATH.resolve()}"


def pool_options(conf: cfg.ConfigOpts, url: str) -> dict[str, Any]:
    """The ``[database]`` pool sizing for ``url``'s engine: database servers only.

    A PostgreSQL (or MySQL) pool bounds the connections one worker process opens
    (``max_pool_size + max_overflow``), which the operator multiplies by the
    workers to stay below the server's ``max_connections``. SQLite has no
    server to exhaust and keeps SQLAlchemy's own pool for a file.
    """
    if make_url(url).get_backend_name() not in {"postgresql", *db_api.MYSQL_BACKENDS}:
        return {}
    return {
        "pool_size": conf.database.max_pool_size,
        "max_overflow": conf.database.max_overflow,
        "pool_timeout": conf.database.pool_timeout,
    }


@dataclass(frozen=True)
class Services:
    """The parts one deployment shares between its requests."""

    conf: cfg.ConfigOpts
    engine: Engine
    enforcer: policy.Enforcer
    decision_log: audit.DecisionLog
    repository: ConsumerRepository

    def close(self) -> None:
        """Write the queued decisions, then close the engine's pooled connections."""
        self.decision_log.close()
        self.engine.dispose()


def build_services(
    conf: cfg.ConfigOpts,
    *,
    policy_file: str | None = None,
    migrate: bool = False,
    enforcer: policy.Enforcer | None = None,
) -> Services:
    """Wire engine, enforcer, decision log and repository for ``conf``.

    The policy file is validated here (``policy.PolicyFileError`` on an
    invalid one); a SQLite file this process cannot write is
    ``guard.db.sqlitefile.NotWritable``; with ``migrate`` the database is
    brought to the latest schema first.
    """
    url = database_url(conf)
    if enforcer is None:
        enforcer = policy.make_enforcer(conf, policy_file)
    sqlitefile.check_writable(url)
    if migrate:
        migration.upgrade(url)
    engine = db_api.create_engine(url, **pool_options(conf, url))
    if not migrate:
        _refuse_unknown_schema(engine, url)
    decision_log = audit.DecisionLog()
    enforcer.decision_log = decision_log
    return Services(
        conf=conf,
        engine=engine,
        enforcer=enforcer,
        decision_log=decision_log,
        repository=ConsumerRepository(engine, enforcer),
    )


def _refuse_unknown_schema(engine: Engine, url: str) -> None:
    """Raise ``MigrationError`` when the database holds alembic revisions guard does not know.

    guard's tables have the names and columns of OpenStack Placement's
    (``projects``, ``users``, ``consumer_types``, ``consumers``): a pipeline
    loaded without migrating (PasteDeploy, guard.wsgi) on Placement's
    database served, changed and deleted Placement's consumers, and only the
    healthcheck said anything. Such a database (or one a newer guard
    migrated, which ``guard serve`` already refuses) stops the load. One
    that cannot be reached now is not refused: requests answer 503 until it
    is back, as before; a SQLite file that does not exist is not created.
    """
    path = sqlitefile.database_path(url)
    if path is not None and not path.exists():
        return
    try:
        with engine.connect() as connection:
            revisions = migration.current_heads(connection)
    except (SQLAlchemyError, exception.Unavailable):
        return
    unknown = migration.unknown_revisions(revisions)
    if unknown:
        engine.dispose()
        raise migration.MigrationError(migration.unknown_revision_help(unknown))


@dataclass(frozen=True)
class Deployment:
    """A deployment's shared parts and the pipeline that serves them."""

    services: Services
    app: WSGIApp

    def close(self) -> None:
        """Write the queued decisions, close the connections (a worker on its way out)."""
        self.services.close()


def build(conf: cfg.ConfigOpts, *, pipeline: str, policy_file: str | None = None) -> Deployment:
    """The services (no migration) and the named pipeline for ``conf``."""
    services = build_services(conf, policy_file=policy_file)
    return Deployment(services, build_pipeline(services, pipeline))


def build_api(services: Services) -> WSGIApp:
    """The consumers API application, without any filter."""
    checks = healthcheck.backends(services.conf, services.repository, services.engine)
    return make_app(services.repository, services.enforcer, services.decision_log, checks)


class PipelineError(ValueError):
    """The pipeline asked for cannot run as configured."""


def build_pipeline(services: Services, pipeline: str) -> WSGIApp:
    """The ``main`` or ``trusted`` pipeline, as ``api-paste.ini`` declares it.

    Raises :class:`PipelineError` for an unknown pipeline, and for ``main``
    without the keystonemiddleware settings it needs to answer a 401
    (it names the identity endpoint in each ``WWW-Authenticate``, and with
    neither that URI nor credentials to discover it, it fails on every
    rejected token instead): a server that cannot refuse properly must not
    start.
    """
    if pipeline not in guard_conf.PIPELINES:
        raise PipelineError(f"unknown pipeline {pipeline!r}: use one of {guard_conf.PIPELINES}")
    app: Any = build_api(services)
    app = GuardMiddleware(app, services.enforcer, require_authtoken=pipeline == "main")
    if pipeline == "main":
        app = AuthTokenWithRequestIds(
            _auth_protocol(app, {"oslo_config_config": services.conf, "delay_auth_decision": True})
        )
        _require_keystone_settings(services.conf)
    app = SizeLimit(app, services.conf)
    return RequestId(app, services.conf)


def _auth_protocol(app: WSGIApp, options: dict[str, Any]) -> Any:
    """keystonemiddleware's ``AuthProtocol`` around ``app``; an unreadable option is PipelineError.

    oslo.config reads ``$name`` in a value as a reference to another option:
    a ``[keystone_authtoken] password`` with a ``$`` in it raised
    ``NoSuchOptError`` naming the password's tail, which the start's
    traceback and its CRITICAL log line showed. The message names the group only.

    Without ``delay_auth_decision`` (the paste line deleted, or set false)
    auth_token answers a missing or rejected token itself, in its own JSON
    (no ``errors``, code or request id), and a keystone it cannot reach with
    webob's HTML 503: the contract's answers are guard's, so that is a
    PipelineError too.
    """
    try:
        protocol = authtoken.AuthProtocol(app, options)
    except cfg.Error:
        raise PipelineError(
            "[keystone_authtoken]: a value cannot be read: a '$' in it is read by oslo.config "
            "as a reference to another option; write '$$' for a literal '$'"
        ) from None
    if getattr(protocol, "_delay_auth_decision", None) is not True:
        raise PipelineError(
            "authtoken must pass undecided requests on to guard, which answers them in the "
            "API's JSON: set delay_auth_decision = true in [filter:authtoken] of "
            "api-paste.ini (as shipped) or in [keystone_authtoken]"
        )
    return protocol


def _config_file(global_conf: dict[str, str], local_conf: dict[str, str]) -> str | None:
    """The guard.conf a paste section names (``config_file``, in it or in ``[DEFAULT]``)."""
    return local_conf.get("config_file") or global_conf.get("config_file")


@functools.cache
def shared_services(config_file: str | None) -> Services:
    """One set of services per configuration file, for PasteDeploy's factories.

    It shares the configuration and the enforcer the ``guard`` filter of the
    same file uses. The database is not migrated: loading an application
    never changes a schema (``guard db upgrade`` does, once); a database not
    at the schema head answers 503 on the healthcheck.
    """
    conf = paste_conf(config_file)
    if not conf.database.connection:
        # guard serve's embedded ./var/guard.sqlite would be made in the
        # server's working directory, empty (loading never migrates).
        raise PipelineError(
            "no database configured: set [database] connection in the guard.conf the "
            "pipeline names (config_file), or in /etc/guard/guard.conf"
        )
    return build_services(conf, enforcer=shared_enforcer(config_file))


def app_factory(global_conf: dict[str, str], **local_conf: str) -> WSGIApp:
    """PasteDeploy factory of the consumers API (``[app:consumers]``).

    ``config_file`` (in the section or ``[DEFAULT]``) names the guard.conf
    with the database URL and the policy options; any other key of the section
    (``config_flie``: the default guard.conf read instead, without a word) stops
    the load.
    """
    if set(local_conf) - {"config_file"}:
        unknown = ", ".join(sorted(set(local_conf) - {"config_file"}))
        raise ValueError(f"the consumers app does not take {unknown}: its option is config_file")
    return build_api(shared_services(_config_file(global_conf, local_conf)))


def authtoken_filter_factory(global_conf: dict[str, str], **local_conf: str) -> Any:
    """PasteDeploy factory of keystonemiddleware's ``auth_token`` reading guard.conf.

    keystonemiddleware reads ``[keystone_authtoken]`` from the ``ConfigOpts``
    it is handed (``oslo_config_config``), else from the global ``cfg.CONF``,
    which nothing in a paste-loaded guard parses; so it gets the one
    configuration the ``guard`` filter and the app read. Options in the
    paste section (``delay_auth_decision``) still override the file's. As
    :func:`build_pipeline` does, it refuses to load without the settings it
    needs to answer a 401.
    """
    config_file = _config_file(global_conf, local_conf)
    conf = paste_conf(config_file)
    options = {
        name: value
        for name, value in {**global_conf, **local_conf}.items()
        if name != "config_file"
    }
    options.pop("__file__", None)
    options.pop("here", None)

    def _filter(app: WSGIApp) -> WSGIApp:
        protocol = _auth_protocol(app, {**options, "oslo_config_config": conf})
        _require_keystone_settings(conf)
        return AuthTokenWithRequestIds(protocol)

    return _filter


class _IdentityLine(logging.Filter):
    """auth_token's DEBUG line that names the caller, with the caller's ids fingerprinted.

    ``Received request from user: user_id X, project_id Y, roles ...`` is
    logged before the guard middleware knows the caller, so the ids are not
    scrubbed by value, and keystone ids need not be hex (LDAP users), which
    no redaction pattern finds.
    """

    _IDS = re.compile(r"(\b(?:user|project)_id )([^\s,]+)")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Received request from %s" and isinstance(record.args, tuple):
            record.args = tuple(
                self._IDS.sub(lambda m: m.group(1) + fingerprint(m.group(2)), str(arg))
                for arg in record.args
            )
        return True


_IDENTITY_LINE = _IdentityLine()


class _KeystoneBody(logging.Filter):
    """keystoneauth's DEBUG line of a keystone answer's body, its ids and names fingerprinted.

    auth_token's keystoneauth session logs (at DEBUG: a ``logging.conf``
    with its root at DEBUG) each body keystone answers: a validated token
    names the caller, its project and their domains before the guard
    middleware knows the caller, so no value was scrubbed. Every ``id`` and
    ``name`` but a role's becomes its fingerprint; a body that is not JSON
    is withheld.
    """

    _PREFIX = "RESP BODY:"
    #: keystoneauth's loggers: the one it logs to, and the body's own with split_loggers.
    LOGGERS = ("keystoneauth.session", "keystoneauth.session.body")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.DEBUG or not isinstance(record.msg, str):
            return True
        if record.name.endswith(".body"):
            prefix, body = "", record.getMessage()
        elif record.msg.startswith(self._PREFIX):
            prefix, body = self._PREFIX + " ", record.getMessage()[len(self._PREFIX) :]
        else:
            return True
        try:
            shown = json.dumps(_fingerprint_names(json.loads(body)))
        except ValueError:
            shown = "<withheld: not JSON>"
        record.msg, record.args = prefix + shown, ()
        return True


def _fingerprint_names(value: Any, key: str = "") -> Any:
    """``value`` with each ``id`` and ``name`` fingerprinted (a role's kept: not the caller's)."""
    if isinstance(value, dict):
        return {
            name: fingerprint(item)
            if name in ("id", "name") and isinstance(item, str)
            else _fingerprint_names(item, name)
            for name, item in value.items()
        }
    if isinstance(value, list):
        return value if key == "roles" else [_fingerprint_names(item, key) for item in value]
    return value


_KEYSTONE_BODY = _KeystoneBody()


class AuthTokenWithRequestIds:
    """keystonemiddleware's ``auth_token`` with this request's ids in its log lines.

    oslo.log's formatters take a record's request ids from the thread's
    current context. auth_token runs, and logs (a rejected token, an
    unreachable keystone), before the guard middleware makes the caller's
    context, so its lines carried the ids of the request this thread served
    before. An anonymous context with this request's ids is made current
    first; the guard middleware then replaces it with the caller's.
    """

    def __init__(self, protocol: WSGIApp) -> None:
        self.protocol = protocol
        log = getattr(protocol, "log", None)
        log = getattr(log, "logger", log)  # oslo.log's adapter, as auth_token makes it
        if isinstance(log, logging.Logger) and _IDENTITY_LINE not in log.filters:
            log.addFilter(_IDENTITY_LINE)
        for name in _KeystoneBody.LOGGERS:
            session_log = logging.getLogger(name)
            if _KEYSTONE_BODY not in session_log.filters:
                session_log.addFilter(_KEYSTONE_BODY)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        anonymous_context(environ).update_store()
        return self.protocol(environ, start_response)


def _require_keystone_settings(conf: cfg.ConfigOpts) -> None:
    keystone = conf.keystone_authtoken  # registered by AuthProtocol
    if not (keystone.www_authenticate_uri or keystone.auth_type):
        raise PipelineError(
            "the main pipeline needs [keystone_authtoken] www_authenticate_uri and the "
            "service's credentials (auth_type, auth_url, ...) in the configuration file"
        )
