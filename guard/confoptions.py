"""Option names an operator wrote that guard does not know, refused with the closest known one.

oslo.config reads only the options a program registered and ignores every
other line of a file without a word: ``[oslo_policy] policy_flie = strict.yaml``
(a typo) started ``guard serve`` on the default rules, which let members read
what the operator's file kept to admins; ``[DEFAULT] log_fiel``, ``Debug``,
``[database] max_pool_szie`` and a section written ``[oslo_polciy]`` or
``[default]`` (oslo.config's DEFAULT is upper case) were dropped the same way.
guard refuses them, naming the file, the section and the option (never its
value, which may be a secret) with the closest name it knows.

Checked are the sections whose every option guard knows: its own, oslo.log's
``[DEFAULT]``, oslo.policy's ``[oslo_policy]`` and oslo.middleware's
``[oslo_middleware]`` (only its body limit is read). In ``[keystone_authtoken]``
a name must be keystonemiddleware's or an option of one of keystoneauth's auth
plugins (which one is read may be set in api-paste.ini), and ``auth_type`` must
name a plugin: ``www_authenticate_url``, ``memcached_server`` or
``auth_type = pasword`` were dropped, or failed on the first request. Any
other section is another program's, unless its name is close to one guard
reads. oslo.config's own ``ConfigParser`` reads the files, as its
``oslo-config-validator`` does.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Sequence

from oslo_config import cfg
from oslo_log import _options as oslo_log_options
from oslo_policy import opts as oslo_policy_opts

#: Sections guard reads whose every option it knows (by oslo.config's name for them).
CHECKED = ("DEFAULT", "database", "guard", "api", "healthcheck", "oslo_policy", "oslo_middleware")
KEYSTONE = "keystone_authtoken"
#: Sections guard reads whose options are checked on their own terms (:func:`keystone_names`).
OTHERS = (KEYSTONE,)
#: Options accepted though guard registers none of them:
#: - oslo.policy < 6's ``enforce_scope``, which later releases dropped (scope is always
#:   enforced there, the stricter way): guard reads it where it exists (guard.policy.scope);
#: - oslo.middleware's ``enable_proxy_headers_parsing``, which deployment tools set for every
#:   service behind a TLS proxy: guard builds nothing from the request's scheme, host or path
#:   prefix (no URL in any answer, the path alone in the access line), so the proxy's headers
#:   would change nothing it does, and refusing the start over it would only get in the way.
_TOLERATED = {
    "oslo_policy": {"enforce_scope"},
    "oslo_middleware": {"enable_proxy_headers_parsing"},
}

#: oslo.db's ``[database]`` options (and old names of them) that guard's own ``[database]``
#: does not have: OpenStack services share oslo.db's, so an operator writes them from
#: habit (kolla and devstack set ``max_retries``, ``connection_recycle_time``), and the
#: closest of guard's names ("did you mean connection?") would send them the wrong way.
OSLO_DB_OPTIONS = frozenset(
    {
        "backend", "slave_connection", "asyncio_connection", "asyncio_slave_connection",
        "connection_parameters", "connection_recycle_time", "idle_timeout", "min_pool_size",
        "max_retries", "retry_interval", "connection_debug", "connection_trace",
        "use_db_reconnect", "db_retry_interval", "db_inc_retry_interval",
        "db_max_retry_interval", "db_max_retries", "mysql_sql_mode", "mysql_wsrep_sync_wait",
        "mysql_enable_ndb", "sqlite_synchronous", "sqlite_db", "use_tpool",
    }
)  # fmt: skip


class UnknownOptionError(cfg.Error):
    """A configuration file names an option or section guard does not know."""


def _names(opt: cfg.Opt, group: str) -> Iterable[tuple[str, str]]:
    yield group, opt.dest  # a file's name for it: log-file, with a dash, is not read
    for old in opt.deprecated_opts:
        yield (old.group or group), (old.name or opt.dest)


def known_options(conf: cfg.ConfigOpts) -> dict[str, set[str]]:
    """Section -> the option names a file may set there, deprecated names included: what is
    registered on ``conf`` (oslo.config's own included) and oslo.policy's, which its
    enforcer registers when guard makes one."""
    known: dict[str, set[str]] = {group: set(_TOLERATED.get(group, ())) for group in CHECKED}
    for name in conf:
        if not isinstance(conf[name], cfg.ConfigOpts.GroupAttr):
            known["DEFAULT"].add(name)
        elif name in CHECKED:
            known[name].update(conf[name])
    registered = {(group, name) for group, names in known.items() for name in names}
    listed: list[tuple[str | None, Sequence[cfg.Opt]]] = [*oslo_policy_opts.list_opts()]
    listed += oslo_log_options.list_opts()  # for the deprecated names of those registered
    for group, opts in listed:
        for opt in opts:
            if group == "oslo_policy" or ((group or "DEFAULT"), opt.dest) in registered:
                for section, name in _names(opt, group or "DEFAULT"):
                    known.setdefault(section, set()).add(name)
    return known


@functools.cache
def keystone_names() -> tuple[frozenset[str], frozenset[str]]:
    """The names ``[keystone_authtoken]`` may hold (keystonemiddleware's options, deprecated
    names included, and every installed auth plugin's) and the auth plugins' names."""
    # Imported here: only a file with the section pays for keystonemiddleware (0.4 s).
    import stevedore
    from keystoneauth1 import loading
    from keystonemiddleware import auth_token

    names = {name for _, opts in auth_token.list_opts() for o in opts for _, name in _names(o, "")}
    # keystoneauth's get_available_plugin_names(), without stevedore's ERROR line for a
    # plugin whose module cannot load ("Could not load 'v3samlpassword'" without lxml):
    # printed by every command of a guard.conf with this section, about no option it sets.
    # Such a plugin is not available, so it is not a name auth_type may take either way.
    plugins = frozenset(
        stevedore.EnabledExtensionManager(
            namespace=loading.PLUGIN_NAMESPACE,
            check_func=lambda extension: bool(getattr(extension.obj, "available", False)),
            invoke_on_load=True,
            on_load_failure_callback=lambda *_: None,
        ).names()
    )
    for plugin in plugins:
        names.update(opt.dest for opt in loading.get_auth_plugin_conf_options(plugin))
    return frozenset(names), plugins


def _keystone_problem(path: str, section: str, options: dict[str, list[str]]) -> str | None:
    names, plugins = keystone_names()
    for name in options:
        if name not in names:
            return (
                f"{path}: [{section}] {name} is not an option keystonemiddleware or an auth "
                f"plugin reads{_closest(name, names)}; correct or remove it"
            )
    plugin = options.get("auth_type", [None])[-1]
    if plugin and plugin not in plugins:
        return (
            f"{path}: [{section}] auth_type = {plugin} is not an auth plugin keystoneauth "
            f"has{_closest(plugin, plugins)}"
        )
    return None


def _closest(word: str, choices: Iterable[str]) -> str:
    word = word.lower().replace("-", "_")  # Debug, log-file: debug, log_file
    found = [word] if word in choices else []
    found = found or difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {found[0]}?)" if found else ""


def _section_problem(path: str, section: str) -> str | None:
    readable = (*CHECKED, *OTHERS)
    if section in readable or section.lower() in readable[1:]:  # oslo.config: [Database] is read
        return None
    if section.lower() == "default":
        return f"{path}: section [{section}] is not read; oslo.config's is [DEFAULT]"
    close = difflib.get_close_matches(section.lower(), readable[1:], n=1, cutoff=0.8)
    if close:
        return f"{path}: section [{section}] is not one guard reads (did you mean [{close[0]}]?)"
    return None


def _single_valued(own: Sequence[tuple[str, Sequence[cfg.Opt]]]) -> set[tuple[str, str]]:
    """(section, name) of the options a file sets once: a second line replaces the first."""
    listed: list[tuple[str | None, Sequence[cfg.Opt]]] = [*oslo_policy_opts.list_opts()]
    listed += oslo_log_options.list_opts()
    listed += own
    return {
        pair
        for group, opts in listed
        for opt in opts
        if not opt.multi
        for pair in _names(opt, group or "DEFAULT")
    }


def check_files(
    conf: cfg.ConfigOpts,
    paths: Sequence[str],
    own: Sequence[tuple[str, Sequence[cfg.Opt]]] = (),
) -> None:
    """Raise :class:`UnknownOptionError` for the first option or section of ``paths`` guard
    would ignore, or option set twice in one section of a file (``own``: guard's options,
    with oslo.log's and oslo.policy's the ones whose repetition is checked); ``conf`` has
    read them, so each parses."""
    known = known_options(conf)
    single = _single_valued(own)
    for path in paths:
        sections: dict[str, dict[str, list[str]]] = {}
        cfg.ConfigParser(path, sections).parse()
        for section, options in sections.items():
            problem = _section_problem(path, section)
            if problem:
                raise UnknownOptionError(problem)
            group = section if section == "DEFAULT" else section.lower()
            problem = _keystone_problem(path, section, options) if group == KEYSTONE else None
            if problem:
                raise UnknownOptionError(problem)
            if group not in known or group not in CHECKED:
                continue
            for name in options:
                if name not in known[group]:
                    # [DEFAULT] connection, [oslo_middleware] disable_by_file_path: the right
                    # name in the wrong section.
                    home = sorted(g for g in CHECKED if g != group and name in known[g])
                    hint = f" here (guard reads it in [{home[0]}])" if home else ""
                    if not hint and group == "database" and name in OSLO_DB_OPTIONS:
                        hint = (
                            ": it is oslo.db's, which guard does not use (its [database] takes "
                            f"{', '.join(sorted(known[group]))}); remove it"
                        )
                    if not hint and (group, name) == ("api", "auth_strategy"):
                        # Placement's switch between keystone and noauth2: guard's is another.
                        hint = (
                            ": guard's is [guard] pipeline (main: keystonemiddleware checks each "
                            "token; trusted: a proxy's identity headers are believed)"
                        )
                    hint = hint or f"{_closest(name, known[group])}; correct or remove it"
                    raise UnknownOptionError(
                        f"{path}: [{section}] {name} is not an option guard reads{hint}"
                    )
                if len(set(options[name])) > 1 and (group, name) in single:
                    # oslo.config keeps the last line: an edit of the first did nothing.
                    # The same value twice (a line appended again) changes nothing: read.
                    raise UnknownOptionError(
                        f"{path}: [{section}] {name} is set {len(options[name])} times to "
                        "different values and only the last is read; keep one"
                    )


def check_values(conf: cfg.ConfigOpts) -> None:
    """Read now every option registered in a section guard checks, so that a value oslo.config
    cannot take stops the start (``cfg.ConfigFileValueError``, naming the option).

    oslo.config reads a value when it is first asked for: ``[database] max_pool_size = 0``
    or ``pool_timeout = abc`` started a server on SQLite (which asks for neither), to fail
    on the first PostgreSQL host, and ``[api] threads = 0`` was reported as
    ``cannot listen on``. ``[oslo_middleware] max_request_body_size`` below 1 (oslo's option
    has no minimum) made every body too large: a server that refused every write.
    """
    for name in conf:
        value = conf[name]
        if isinstance(value, cfg.ConfigOpts.GroupAttr) and name in CHECKED:
            for option in value:
                value[option]
    if conf.fatal_deprecations:
        # oslo.log's option (in guard.conf.sample), read by its versionutils on the global
        # cfg.CONF only, which guard never loads: true would change nothing, without a word.
        raise UnknownOptionError(
            "[DEFAULT] fatal_deprecations = true: guard does not make deprecations fatal; "
            "remove it or set it to false"
        )
    limit = conf.oslo_middleware.max_request_body_size
    if limit < 1:
        raise UnknownOptionError(
            f"[oslo_middleware] max_request_body_size = {limit}: a body limit is at least 1 "
            "(bytes; guard's default is 65536)"
        )
