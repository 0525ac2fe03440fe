"""keystonemiddleware's auth_token as guard's ``main`` pipeline needs it, and where it sits.

Two facts the guard filter cannot read from the identity headers alone:

- *keystone could not check the token.* With ``delay_auth_decision`` (the
  ``main`` pipeline's setting, so that guard answers the 401), auth_token
  marks a token it could not validate because keystone was unreachable,
  answered 5xx or timed out exactly as a token keystone rejected
  (``X-Identity-Status: Invalid``): the caller with a valid token got 401,
  told to authenticate again, instead of 503. A keystone that accepts the
  connection and never answers (``ConnectTimeout``) was worse: the exception
  escaped auth_token, above the guard filter, to be answered 500 by
  whatever caught it (the WSGI server). :class:`AuthProtocol` records such a request in
  ``environ[ENV_IDENTITY_UNCHECKED]``, which the guard filter answers 503.
- *auth_token ran at all.* It sets ``keystone.token_auth`` in the environ of
  every request it passes on; a client can set only ``HTTP_*`` keys, so this
  one cannot be forged. :func:`ran` reads it for a guard filter that
  requires authtoken in front of it (the ``main`` pipeline's), and
  :func:`check_authtoken_above` refuses at load time a pipeline whose
  ``guard`` filter requires it and has none above.
"""

from __future__ import annotations

import contextvars
from typing import Any

import webob.exc
from keystoneauth1 import exceptions as ksa_exceptions
from keystonemiddleware import auth_token
from keystonemiddleware.auth_token import _exceptions as ksm_exceptions
from oslo_utils import strutils

from guard.api.environ import ENV_IDENTITY_UNCHECKED

#: What auth_token sets in the environ of every request it passes on.
ENV_TOKEN_AUTH = "keystone.token_auth"  # noqa: S105 - an environ key, not a secret
#: What auth_token itself takes for an unreachable keystone (its fetch_token's
#: except clause): it turns them into an InvalidToken raised while handling them.
_UNREACHABLE = (
    ksa_exceptions.ConnectFailure,
    ksa_exceptions.DiscoveryFailure,
    ksa_exceptions.RequestTimeout,
    ksm_exceptions.ServiceError,
)
#: Whether a token of the request being processed could not be checked.
_unchecked: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "guard_identity_unchecked", default=False
)

#: The one log line of a guard filter that requires authtoken and finds it missing.
MISSING = (
    "The guard filter requires keystonemiddleware's authtoken in front of it (its "
    "require_authtoken option is on), and requests reach it without: every request is "
    "refused (500) until authtoken is back before guard in the pipeline "
    "(etc/guard/api-paste.ini: ... authtoken guard consumers), or the trusted pipeline is "
    "served behind an authenticating proxy"
)

#: Attributes through which WSGI filters hold the application they wrap
#: (oslo.middleware's and guard's ``application``, keystonemiddleware's ``_app``,
#: guard.deploy's auth_token wrapper's ``protocol``).
_WRAPPED = ("application", "app", "_app", "protocol")


class AuthProtocol(auth_token.AuthProtocol):
    """keystonemiddleware's ``AuthProtocol`` that says when keystone could not check a token.

    Everything else is keystonemiddleware's: the token cache, the headers it
    sets, its log lines, the 401 it answers itself without
    ``delay_auth_decision``.
    """

    def process_request(self, request: Any) -> Any:
        """auth_token's processing; a token it could not check marks the environ."""
        reset = _unchecked.set(False)
        try:
            return super().process_request(request)
        finally:
            if _unchecked.get():
                request.environ[ENV_IDENTITY_UNCHECKED] = True
            _unchecked.reset(reset)

    def fetch_token(self, token: str, **kwargs: Any) -> Any:
        """auth_token's fetch; notes a keystone that could not answer.

        A failure auth_token lets through (any other of keystoneauth's
        errors: a connection that timed out, an SSL failure, no identity
        endpoint in the catalog) is handled as auth_token handles an
        unreachable keystone, logged by its kind only.
        """
        try:
            return super().fetch_token(token, **kwargs)
        except ksm_exceptions.InvalidToken as error:
            if isinstance(error.__context__, _UNREACHABLE):
                _unchecked.set(True)
            raise
        except ksa_exceptions.ClientException as error:
            failure = type(error).__name__
        # Logged outside the except block: oslo.log's formatter appends the
        # exception being handled to a CRITICAL line (keystone's URL, its text).
        _unchecked.set(True)
        self.log.critical("keystone did not answer a token validation (%s)", failure)
        if not self._delay_auth_decision:
            raise webob.exc.HTTPServiceUnavailable(
                "The Keystone service is temporarily unavailable."
            )
        raise ksm_exceptions.InvalidToken("Keystone unavailable")


def ran(environ: dict[str, Any]) -> bool:
    """Whether keystonemiddleware's auth_token processed this request (above the caller)."""
    return ENV_TOKEN_AUTH in environ


def _below(application: object) -> list[object]:
    """``application`` and the filters and app it wraps, top to bottom."""
    chain: list[object] = []
    seen: set[int] = set()
    node: object = application
    while node is not None and id(node) not in seen and len(seen) < 64:
        seen.add(id(node))
        chain.append(node)
        node = next((getattr(node, a) for a in _WRAPPED if callable(getattr(node, a, None))), None)
    return chain


def _is_auth_token(node: object) -> bool:
    return type(node).__module__.startswith(("keystonemiddleware.auth_token", __name__))


def authenticates_below(application: object) -> bool:
    """Whether keystonemiddleware's auth_token is among the filters ``application`` is made of."""
    return any(_is_auth_token(node) for node in _below(application))


def check_authtoken_above(application: object) -> None:
    """Refuse a pipeline whose guard filter requires authtoken and has none above it.

    Called by guard's ``request_id`` filter, the pipeline's first, as it wraps
    ``application`` (the rest of the pipeline, built before it): a ``guard``
    filter found with ``require_authtoken`` before any auth_token is a
    pipeline an operator took authtoken out of. Not by ``sizelimit``, which
    may sit below authtoken (``request_id authtoken sizelimit guard``) and
    cannot see it. A pipeline without ``request_id`` above the guard filter
    is refused request by request instead (:func:`ran`).
    """
    for node in _below(application):
        if _is_auth_token(node):
            return
        if getattr(node, "require_authtoken", False) is True:
            raise ValueError(
                "the guard filter requires keystonemiddleware's authtoken in front of it (its "
                "require_authtoken option is on) and the pipeline has none: put authtoken "
                "back before guard (etc/guard/api-paste.ini: ... authtoken guard consumers), "
                "or serve the trusted pipeline behind an authenticating proxy"
            )


def required(local_conf: dict[str, str]) -> bool:
    """The guard filter's ``require_authtoken`` paste option: ``true`` or ``false`` (default).

    Read from the filter's own section only: ``[DEFAULT]`` is every
    pipeline's, the ``trusted`` one's too. Any other value refuses to load.
    """
    value = local_conf.get("require_authtoken", "false")
    try:
        return strutils.bool_from_string(value, strict=True)
    except ValueError:
        raise ValueError("the guard filter's require_authtoken must be true or false") from None
