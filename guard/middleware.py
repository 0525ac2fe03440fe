"""guard's WSGI edge: trusted identity, request ids, JSON errors, the access log.

:class:`GuardMiddleware` is the filter services paste into their pipelines
(``paste.filter_factory = guard.middleware:filter_factory``) right above their
application. For each request it

- builds a :class:`guard.context.RequestContext` from the identity headers,
  trusting them only with ``X-Identity-Status: Confirmed`` (oslo.context reads
  them whatever that header says), and stores it under ``guard.context``;
- answers 401 to an anonymous caller on every path but ``/`` and
  ``/healthcheck``;
- turns every error from below, expected or not, into the contract's JSON
  error whose ``request_id`` is the response's ``X-Openstack-Request-Id``,
  logging an unexpected exception (through the redacting filter) and
  answering it with the generic 500; oslo.middleware's ``catch_errors`` is
  not used because it logs request bodies unredacted;
- writes one access log line on ``guard.access`` at INFO, with the path's
  ids fingerprinted (:mod:`guard.accesslog`).

:class:`SizeLimit` takes the place of oslo.middleware's ``sizelimit`` in
guard's pipelines (see its docstring for why), and :class:`RequestId` that of
oslo.middleware's ``request_id`` (the same, as plain WSGI).
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

import webob
import webob.exc
from oslo_config import cfg
from oslo_middleware import request_id as oslo_request_id
from oslo_middleware import sizelimit

from guard import authtoken, exception, logscope, policy
from guard import conf as guard_conf
from guard import log as guard_log
from guard.accesslog import (
    ENV_CALLER_VALUES,
    ENV_LOG_SCOPE,
    REQUEST_ID_RE,
    log_access,
    loggable_method,
    loggable_target,
)
from guard.api.environ import (
    ENV_AUTHENTICATED,
    ENV_CONTEXT,
    ENV_IDENTITY_UNCHECKED,
    ENV_MAX_BODY_SIZE,
    ENV_REQUEST_ID,
    TRUSTED_STATUS,
)
from guard.api.errors import error_for_status, error_response
from guard.context import Authorizer, RequestContext, generate_request_id
from guard.context import forget_current as forget_current_context
from guard.policy.paths import resolve_policy_file

LOG = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Openstack-Request-Id"
PUBLIC_PATHS = frozenset({"/", "/healthcheck"})
# URLs longer than this bypass the standard library's urlsplit cache.
_CACHED_URL_LEN = 2048

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _roles(header: str | None) -> list[str]:
    """Roles as keystone sends them: comma-separated, implied roles expanded."""
    return [role.strip() for role in (header or "").split(",") if role.strip()]


def context_from_environ(
    environ: dict[str, Any], enforcer: Authorizer | None
) -> tuple[RequestContext, bool]:
    """Build the caller's context; return it and whether the identity is trusted.

    Unless ``X-Identity-Status`` is exactly ``Confirmed`` and a user id is
    present, every identity header is ignored and the context is anonymous.
    ``X-Is-Admin-Project`` defaults to false when absent (oslo.context assumes
    true, which would fail open for an ``is_admin_project:True`` rule).
    """
    trusted = environ.get("HTTP_X_IDENTITY_STATUS") == TRUSTED_STATUS and bool(
        environ.get("HTTP_X_USER_ID") or environ.get("HTTP_X_USER")
    )
    if not trusted:
        return anonymous_context(environ, enforcer), False
    context = RequestContext.from_environ(
        environ,
        roles=_roles(environ.get("HTTP_X_ROLES")),
        service_roles=_roles(environ.get("HTTP_X_SERVICE_ROLES")),
        is_admin_project=environ.get("HTTP_X_IS_ADMIN_PROJECT", "").lower() == "true",
        enforcer=enforcer,
        **_request_ids(environ),
    )
    return context, True


def anonymous_context(
    environ: dict[str, Any], enforcer: Authorizer | None = None
) -> RequestContext:
    """A context with this request's ids and no identity (no header is read)."""
    return RequestContext(is_admin_project=False, enforcer=enforcer, **_request_ids(environ))


def _request_ids(environ: dict[str, Any]) -> dict[str, str | None]:
    global_request_id = environ.get(oslo_request_id.GLOBAL_REQ_ID)
    return {
        "request_id": environ.get(ENV_REQUEST_ID),
        # Checked again whoever set it: the contract's pattern, matched whole.
        "global_request_id": (
            global_request_id
            if global_request_id and REQUEST_ID_RE.fullmatch(global_request_id)
            else None
        ),
    }


def ensure_request_ids(environ: dict[str, Any]) -> None:
    """Give the request ids when no oslo.middleware ``request_id`` runs above.

    Same rules as that filter: a fresh ``req-<uuid4>``, and the inbound
    header as the global id only when it matches the contract's pattern.
    """
    if environ.get(ENV_REQUEST_ID):
        return
    environ[ENV_REQUEST_ID] = generate_request_id()
    inbound = environ.get("HTTP_X_OPENSTACK_REQUEST_ID", "")
    if REQUEST_ID_RE.fullmatch(inbound):
        environ[oslo_request_id.GLOBAL_REQ_ID] = inbound


def undecodable(environ: dict[str, Any]) -> bool:
    """Whether the path or the query is not UTF-8 once percent-decoded.

    WSGI hands both over as latin-1 strings of the raw bytes; webob decodes
    them as UTF-8 on first use and raises UnicodeDecodeError from wherever
    that is (routing, logging), outside any handler's error handling. So the
    edge checks them once, first.
    """
    try:
        for key in ("SCRIPT_NAME", "PATH_INFO"):
            value = environ.get(key, "")
            if not value.isascii():  # ASCII is UTF-8: no copy for the usual path
                value.encode("latin-1").decode("utf-8")
        query = environ.get("QUERY_STRING", "")
        if query and (not query.isascii() or "%" in query):
            urllib.parse.unquote_to_bytes(query.encode("latin-1")).decode("utf-8")
    except (UnicodeError, AttributeError):
        return True
    return False


def _scrub_values(context: RequestContext) -> dict[str, str]:
    """This request's tokens, and its user's, project's and domains' ids and names
    (no pattern tells a name from a word), for the log filter to scrub by value.

    The domains' too: oslo.log's default identity format and its JSON
    formatter show the domain ids, the JSON formatter the domain names.
    """
    values = {
        "auth_token": context.auth_token,
        "service_token": context.service_token,
        "user_id": context.user_id,
        "project_id": context.project_id,
        "service_user_id": context.service_user_id,
        "service_project_id": context.service_project_id,
        "user_name": context.user_name,
        "project_name": context.project_name,
        "service_user_name": context.service_user_name,
        "service_project_name": context.service_project_name,
        "domain_id": context.domain_id,
        "user_domain_id": context.user_domain_id,
        "project_domain_id": context.project_domain_id,
        "domain_name": context.domain_name,
        "user_domain_name": context.user_domain_name,
        "project_domain_name": context.project_domain_name,
        "service_user_domain_id": context.service_user_domain_id,
        "service_project_domain_id": context.service_project_domain_id,
        "service_user_domain_name": context.service_user_domain_name,
        "service_project_domain_name": context.service_project_domain_name,
    }
    return {name: value for name, value in values.items() if value}


def bound_url_cache() -> None:
    """Keep long URLs out of the standard library's ``urlsplit`` cache.

    CPython 3.11+ caches ``urllib.parse.urlsplit`` (128 entries, keyed by the
    URL), and waitress splits every request's URI with it: 128 unique 150 KB
    paths from clients that never authenticate pin ~50 MiB. guard caches
    only id-sized values itself (:mod:`guard.logfingerprints`), and holds the servers it
    runs in to the same rule: URLs up to 2 KB still use the cache, longer
    ones are split without it. Process-wide and idempotent; called when a
    guard middleware is built.
    """
    cached = urllib.parse.urlsplit
    uncached = getattr(cached, "__wrapped__", None)
    if uncached is None or getattr(cached, "_guard_bounded", False):
        return

    def urlsplit(url: Any, scheme: Any = "", allow_fragments: bool = True) -> Any:
        if len(url) <= _CACHED_URL_LEN:
            return cached(url, scheme, allow_fragments)
        return uncached(url, scheme, allow_fragments)

    functools.update_wrapper(urlsplit, cached)
    urlsplit._guard_bounded = True
    urlsplit.cache_clear = cached.cache_clear
    urlsplit.cache_info = cached.cache_info
    urllib.parse.urlsplit = urlsplit


class GuardMiddleware:
    """The edge filter: trusted identity in, contract-shaped errors out.

    With ``require_authtoken`` (the ``main`` pipeline's filter) it answers
    only requests keystonemiddleware's auth_token passed on: without it in
    front, the identity headers are whatever the client sent, so every
    request is refused (500, one log line for the operator).
    """

    def __init__(
        self, application: WSGIApp, enforcer: Authorizer | None, *, require_authtoken: bool = False
    ) -> None:
        if authtoken.authenticates_below(application):
            # In front of auth_token, the filter would believe the identity
            # headers any client sends (auth_token sets them only below it).
            raise ValueError(
                "the guard filter must come after authtoken in the pipeline, never before "
                "it (etc/guard/api-paste.ini: ... authtoken guard consumers)"
            )
        self.application = application
        self.enforcer = enforcer
        self.require_authtoken = require_authtoken
        self._told_missing_authtoken = threading.Lock()
        bound_url_cache()

    # Plain WSGI, not webob's wsgify or Request.get_response: building a
    # webob Response around the app's answer (and another for webob to call)
    # cost a GET more than everything else this filter does (measured with
    # guard.tools.bench.pipeline). The app's status, headers and body pass
    # through as they are, with the request id header added.
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        started = time.perf_counter()
        ensure_request_ids(environ)
        request_id = environ[ENV_REQUEST_ID]
        try:
            status, headers, body = self._respond(environ, request_id)
        except Exception:  # anything on the way down or back up: the generic 500
            status, headers, body = _unexpected(environ, request_id)
        # Set here, in its canonical spelling, whether or not a request_id
        # filter runs above (it then keeps this header and adds none).
        headers = [(name, value) for name, value in headers if name.lower() != _REQUEST_ID_KEY]
        headers.append((REQUEST_ID_HEADER, request_id))
        try:
            log_access(environ, status, headers, body, started, request_id)
        except Exception:  # a log sink never fails a request
            LOG.debug("The access log failed", exc_info=True)
        # The caller's ids and names must not label the thread's later lines.
        forget_current_context()
        start_response(status, headers)
        return body

    def _respond(self, environ: dict[str, Any], request_id: str) -> _Answer:
        if self.require_authtoken and not authtoken.ran(environ):
            anonymous_context(environ).update_store()
            if self._told_missing_authtoken.acquire(blocking=False):  # held: told once
                LOG.error(authtoken.MISSING)
            return _error(exception.Internal(), request_id)
        if undecodable(environ):
            # Refused before the caller's identity is read: its lines (the
            # access line) carry this request's ids and no caller's.
            anonymous_context(environ).update_store()
            error = exception.InvalidInput("The request path or query is not valid UTF-8.")
            return _error(error, request_id)
        context, authenticated = context_from_environ(environ, self.enforcer)
        # oslo.log's formatters take the request ids of a record logged
        # without a context (alembic, SQLAlchemy, the access line) from the
        # thread's current context: make it this request's, or every line
        # would carry the first request the thread ever served.
        context.update_store()
        environ[ENV_CONTEXT] = context
        environ[ENV_AUTHENTICATED] = authenticated
        # PATH_INFO is the raw path (bytes as latin-1); the public paths are
        # ASCII, so comparing it raw equals comparing it decoded.
        if environ.get("PATH_INFO", "") not in PUBLIC_PATHS:
            if environ.get(ENV_IDENTITY_UNCHECKED) is True:  # keystone did not answer
                return _error(exception.Unavailable(IDENTITY_UNAVAILABLE), request_id)
            if not authenticated:
                return _error(exception.Unauthorized(), request_id)
        caller = _scrub_values(context)
        with logscope.request_scope(caller):
            environ[ENV_LOG_SCOPE] = contextvars.copy_context()  # for the access line
            environ[ENV_CALLER_VALUES] = tuple(caller.values())
            try:
                # The body is read here, so an error raised while the
                # wrapped app's iterator runs is answered like any other.
                status, headers, body = _call_buffered(self.application, environ)
            except exception.GuardError as error:
                return _error(error, request_id)
            except webob.exc.HTTPException as error:
                return _error(error_for_status(error.code), request_id)
            except Exception:
                return _unexpected(environ, request_id)
        # Whatever the application answered passes through as it is (status,
        # headers, body): the filter may wrap any service, whose own errors
        # are its own. guard's API answers its errors in the contract's JSON.
        return status, headers, body


#: The detail of a 503 for a token keystone could not check (unreachable, 5xx, no answer).
IDENTITY_UNAVAILABLE = "The identity service is unavailable; retry later."

#: An answer before it is sent: status line, header list, the body read.
_Answer = tuple[str, list[tuple[str, str]], list[bytes]]
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower()


def _error(error: exception.GuardError, request_id: str) -> _Answer:
    response = error_response(error, request_id)
    return response.status, response.headerlist, [response.body]


def _unexpected(environ: dict[str, Any], request_id: str) -> _Answer:
    """Log the exception being handled (redacted) and answer the generic 500."""
    path = loggable_target(environ.get("PATH_INFO", ""), "")
    method = loggable_method(environ)
    LOG.exception("Unexpected error answering %s %s (%s)", method, path, request_id)
    return _error(exception.Internal(), request_id)


def _call_buffered(application: WSGIApp, environ: dict[str, Any]) -> _Answer:
    """Call ``application``; return its status, headers and whole body, its iterable closed.

    What webob's ``Request.call_application`` does (a ``write()`` callable
    included) for an app that answers once, without building a Request.
    """
    answered: list[Any] = []
    written: list[bytes] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None:  # an error after all: answered as one, as webob does
            raise exc_info[1].with_traceback(exc_info[2])
        answered[:] = [status, headers]
        return written.append

    body = application(environ, start_response)
    if type(body) is list and not written and answered:
        return answered[0], answered[1], body  # nothing to run, nothing to close
    try:
        written.extend(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    if not answered:
        raise RuntimeError("the application returned without calling start_response")
    return answered[0], answered[1], [b"".join(written)]


class RequestId(oslo_request_id.RequestId):
    """oslo.middleware's ``request_id`` filter, as plain WSGI.

    The same ids and header as oslo's: a fresh ``req-<uuid4>`` in
    ``openstack.request_id``, the inbound ``X-Openstack-Request-Id`` as the
    global request id when it matches the contract's pattern (matched whole:
    oslo's ``$`` also lets a trailing newline through), and the id in the
    ``x-openstack-request-id`` response header unless a layer below set it.
    Measured need: oslo's filter is a wsgify layer that wraps the answer
    below in a webob Response; that cost about 20 us a request, as much as
    the routing, validation and JSON of a GET together.
    """

    def __init__(self, application: WSGIApp, conf: Any = None) -> None:
        authtoken.check_authtoken_above(application)
        super().__init__(application, conf)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        inbound = environ.get("HTTP_X_OPENSTACK_REQUEST_ID", "")
        if REQUEST_ID_RE.fullmatch(inbound):
            environ[oslo_request_id.GLOBAL_REQ_ID] = inbound
        request_id = generate_request_id()
        environ[ENV_REQUEST_ID] = request_id
        names = [oslo_request_id.HTTP_RESP_HEADER_REQUEST_ID, *self.compat_headers]

        def add_request_id(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            present = {name.lower() for name, _ in headers}
            headers.extend((name, request_id) for name in names if name.lower() not in present)
            return start_response(status, headers, *exc_info)

        return self.application(environ, add_request_id)


class SizeLimit(sizelimit.RequestBodySizeLimiter):
    """oslo.middleware's body size limit, enforced where the contract orders it.

    oslo's filter answers 413 itself, before identity and routing are checked
    and with its own HTML body, while the contract puts the size check after
    401, 404/405, the uuid and the content type, and wants its JSON error. So
    this filter reads the same option (``[oslo_middleware]
    max_request_body_size``, 65,536 by guard's default), hands the limit down
    to the API's body reader, and bounds a body of unknown length with oslo's
    ``LimitingReader`` as oslo does.
    """

    def __init__(
        self, application: WSGIApp | None, conf: cfg.ConfigOpts | dict[str, str] | None = None
    ) -> None:
        # No authtoken check here (RequestId's): below authtoken, as in
        # 'request_id authtoken sizelimit guard consumers', this filter cannot see it above.
        super().__init__(application, conf)
        # Read once: oslo's _conf_get re-applies a paste value per request.
        self.max_size: int = self._conf_get("max_request_body_size")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        # Plain WSGI, not webob's wsgify: re-wrapping the response below in a
        # webob Response cost a GET more than everything this filter does.
        environ[ENV_MAX_BODY_SIZE] = self.max_size
        req = webob.Request(environ)
        if req.content_length is None and req.is_body_readable:
            req.body_file = sizelimit.LimitingReader(req.body_file, self.max_size)
        try:
            return self.application(environ, start_response)
        except webob.exc.HTTPException as error:  # as wsgify answered them
            return error(environ, start_response)


def paste_conf(config_file: str | None) -> cfg.ConfigOpts:
    """The guard.conf of paste's factories, guard's redacting filter put on first (keyed by it).

    Every factory takes its configuration from here before it builds
    anything. PasteDeploy builds the app (its enforcer, the schema check)
    before any filter: what that logged went through the service's handlers
    before the ``guard`` filter's factory redacted them (a policy warning
    naming a rule whose key holds an id showed it raw), and ids fingerprinted
    then drew a random key (with its notice) though one was configured.
    """
    conf = guard_conf.for_paste(config_file)
    guard_log.install(conf.guard.fingerprint_key)
    return conf


@functools.cache
def shared_enforcer(config_file: str | None) -> policy.Enforcer:
    """One policy enforcer per configuration file, shared by paste's factories."""
    conf = paste_conf(config_file)
    return policy.make_enforcer(conf, resolve_policy_file(conf))


def filter_factory(global_conf: dict[str, str], **local_conf: str) -> Callable[..., Any]:
    """PasteDeploy factory of :class:`GuardMiddleware`.

    ``config_file`` (in the filter's section or ``[DEFAULT]``) names the
    guard.conf whose ``[oslo_policy]`` options configure the policy engine
    and whose ``[guard] fingerprint_key`` keys the log fingerprints. The
    redacting filter goes on the process's log handlers; their setup is the
    service's own (it is not changed here). ``require_authtoken = true`` (in
    the filter's own section: the ``main`` pipeline's) makes the filter
    refuse every request that keystonemiddleware's auth_token did not pass on.
    """
    # A mistyped key (require_authtokn) was dropped without a word: the main
    # pipeline's check that authtoken is in front of guard quietly off.
    unknown = sorted(set(local_conf) - {"config_file", "require_authtoken"})
    if unknown:
        raise ValueError(
            f"the guard filter does not take {', '.join(unknown)}: "
            "its options are config_file and require_authtoken"
        )
    config_file = local_conf.get("config_file") or global_conf.get("config_file")
    require = authtoken.required(local_conf)
    paste_conf(config_file)
    enforcer = shared_enforcer(config_file)

    def _filter(app: WSGIApp) -> GuardMiddleware:
        return GuardMiddleware(app, enforcer, require_authtoken=require)

    return _filter
