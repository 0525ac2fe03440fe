"""``guard policy``: validate, sample, explain and diff policy files.

- ``validate [FILE]``: every problem with its file, line and rule; exit 1 on
  any error (warnings alone exit 0);
- ``sample``: the commented-out sample file of guard's default rules;
- ``explain --rule R --creds JSON --target JSON``: the evaluation tree;
- ``diff OLD NEW``: the decisions that change for a set of personas.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from oslo_config import cfg
from oslo_policy import generator

from guard import conf as guard_conf
from guard import logfingerprints
from guard.cmd import config
from guard.policy import Enforcer, PolicyFileError, make_enforcer
from guard.policy.paths import PolicyFileMissing, resolve_policy_file

# The project whose consumers the personas act on, and another one.
PROJECT = "project-a"
OTHER_PROJECT = "project-b"

# Personas of ``diff``: credentials as keystone sends them (implied roles expanded).
PERSONAS: dict[str, dict[str, Any]] = {
    "admin": {"roles": ["admin", "member", "reader"], "project_id": OTHER_PROJECT},
    "service": {"roles": ["service"], "project_id": OTHER_PROJECT},
    "project member": {"roles": ["member", "reader"], "project_id": PROJECT},
    "project reader": {"roles": ["reader"], "project_id": PROJECT},
    "other project member": {"roles": ["member", "reader"], "project_id": OTHER_PROJECT},
    "no role": {"roles": [], "project_id": PROJECT},
}
DIFF_TARGET = {"project_id": PROJECT, "user_id": "user-a", "consumer_type": None}


def _conf(args: argparse.Namespace) -> cfg.ConfigOpts:
    """The command's guard.conf (``--config-file``, ``--config-dir`` or the default search).

    Logging is left as Python sets it: these tools print their findings, and
    run in-process from tests and other tools, whose logging they must not
    replace. Ids in a rule's text are fingerprinted under ``[guard]
    fingerprint_key``, as the service's decision log does, so that an
    operator can match them (they were under a random key, with its notice
    that none was configured).
    """
    conf = config.load(args)
    if conf.guard.fingerprint_key:
        logfingerprints.use_key(conf.guard.fingerprint_key)
    return conf


def _load(conf: cfg.ConfigOpts, policy_file: str | None) -> Enforcer:
    """The enforcer of ``policy_file`` (relative to the cwd) or of the configured file.

    Raises :class:`PolicyFileError` for an invalid file, and its subclass
    ``PolicyFileMissing`` for a file named but missing or unreadable (the
    defaults would be compared or explained instead: never silently).
    """
    return make_enforcer(conf, policy_file=resolve_policy_file(conf, policy_file))


def validate(args: argparse.Namespace) -> int:
    """Print every problem of the policy file; 1 when there is an error."""
    try:
        enforcer = _load(_conf(args), args.file)
    except PolicyFileMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except PolicyFileError as exc:
        for problem in exc.problems:
            print(f"error: {problem}")
        for problem in exc.warnings:
            print(f"warning: {problem}")
        return 1
    for problem in enforcer.last_reload_warnings:
        print(f"warning: {problem}")
    print(f"ok: revision {enforcer.revision}, {len(enforcer.file_rules)} rule(s) from files")
    return 0


def sample_text() -> str:
    """The sample policy file: every default rule, commented out."""
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "policy.yaml"
        generator.generate_sample(
            ["--namespace", "guard", "--output-file", str(output)], conf=cfg.ConfigOpts()
        )
        return output.read_text()


def _own_rules(path: Path) -> bool:
    """Whether ``path`` holds an operator's rules (or text that is not YAML): not a sample.

    The sample comments every rule out, so writing it over the policy file in
    force (the README's ``--output-file etc/guard/policy.yaml``, rerun after an
    upgrade) put the defaults in force within seconds: the operator's rules
    gone without a word. A file of comments only, or ``{}``, holds none.
    """
    try:
        found = yaml.safe_load(path.read_text())
    except OSError:
        return False  # missing, or unreadable: writing it says what is wrong
    except (yaml.YAMLError, ValueError):
        return True
    return found not in (None, {})


def sample(args: argparse.Namespace) -> int:
    text = sample_text()
    if args.output_file:
        if _own_rules(Path(args.output_file)):
            print(
                f"error: {args.output_file} holds rules of its own: the sample (every rule "
                "commented out) would put guard's defaults in their place; write it elsewhere, "
                "or remove the file first",
                file=sys.stderr,
            )
            return 1
        try:
            Path(args.output_file).write_text(text)
        except OSError as exc:
            print(f"error: cannot write {args.output_file}: {exc.strerror}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _credentials(text: str) -> dict[str, Any]:
    """``--creds``: a JSON object whose roles, when given, are a list of names.

    oslo.policy iterates ``roles`` as it is: ``"roles": "reader"`` would be
    the roles ``r``, ``e``, ``a``, ``d``... and explain a denial the operator
    did not mean to ask about. A ``null`` value is kept here and left out by
    :func:`explain` (see :func:`_without_nulls`).
    """
    creds = _json_object(text)
    for key in ("roles", "service_roles"):
        if key not in creds:
            continue
        roles = creds[key]  # null too: oslo.policy iterates it and raises TypeError
        if not (isinstance(roles, list) and all(isinstance(role, str) for role in roles)):
            raise argparse.ArgumentTypeError(
                f'"{key}" must be a JSON list of role names, e.g. ["reader"]'
            )
    return creds


def _without_nulls(creds: dict[str, Any]) -> dict[str, Any]:
    """``creds`` without its ``null`` values, as the service decides on them.

    The service leaves a credential the caller lacks out of the policy values
    (``RequestContext.to_policy_values()``: an unscoped token's ``project_id``
    is None), so a check on it is false. oslo.policy, given a plain dict,
    compares ``str(None)``: ``project_id:%(project_id)s`` would hold for a
    target project named ``None``, an answer the service never gives. Each
    key left out is named on stderr, so the operator knows what was asked.
    """
    nulls = sorted(key for key, value in creds.items() if value is None)
    for key in nulls:
        print(
            f'note: "{key}" is null: left out of the credentials, as the service leaves out '
            "a value the caller does not have",
            file=sys.stderr,
        )
    return {key: value for key, value in creds.items() if value is not None}


def explain(args: argparse.Namespace) -> int:
    """Print why ``--rule`` allows or denies ``--creds`` on ``--target``."""
    try:
        enforcer = _load(_conf(args), args.policy_file)
    except PolicyFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(enforcer.explain(args.rule, args.target, _without_nulls(args.creds)))
    names = set(enforcer.registered_rules) | set(enforcer.file_rules)
    if args.rule not in names:
        # Explained as oslo.policy decides it (denied), but an operator who
        # mistyped a name must not read that as the rule's answer.
        close = difflib.get_close_matches(args.rule, sorted(names), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        print(f"error: no rule named '{args.rule}'{hint}", file=sys.stderr)
        return 1
    return 0


def _decisions(path: str) -> dict[tuple[str, str], bool]:
    # The file alone decides: no guard.conf is read.
    enforcer = _load(guard_conf.load(), path)
    names = sorted(set(enforcer.registered_rules) | set(enforcer.file_rules))
    return {
        (name, persona): bool(enforcer.enforce(name, dict(DIFF_TARGET), dict(creds)))
        for name in names
        for persona, creds in PERSONAS.items()
    }


def diff(args: argparse.Namespace) -> int:
    """Print, as a table, the decisions that differ between two policy files."""
    try:
        old, new = _decisions(args.old), _decisions(args.new)
    except PolicyFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    word = {True: "allow", False: "deny", None: "-"}
    changes = [
        (rule, persona, word[old.get(key)], word[new.get(key)])
        for key in sorted(set(old) | set(new))
        for rule, persona in [key]
        if old.get(key) != new.get(key)
    ]
    if not changes:
        print("no decision changes")
        return 0
    header = ("rule", "persona", "old", "new")
    widths = [max(len(row[i]) for row in [header, *changes]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths), *changes]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``validate``, ``sample``, ``explain`` and ``diff`` to ``guard policy``."""
    # These commands print every policy problem themselves; the engine's log
    # lines about the same problems would only repeat them on stderr.
    logging.getLogger("guard.policy").setLevel(logging.CRITICAL)
    commands = parser.add_subparsers(dest="policy_command", metavar="ACTION", required=True)

    check = commands.add_parser("validate", help="validate a policy file (exit 1 on errors)")
    check.add_argument(
        "file", nargs="?", type=config.given, help="policy file (default: the configured one)"
    )
    check.set_defaults(func=validate)

    sampler = commands.add_parser("sample", help="print the sample policy file")
    sampler.add_argument("--output-file", help="write here instead of standard output")
    sampler.set_defaults(func=sample)

    why = commands.add_parser("explain", help="show how a rule decides for given creds")
    why.add_argument("--rule", required=True, help="rule name, e.g. guard:consumers:show")
    why.add_argument(
        "--creds", required=True, type=_credentials, help='JSON object, e.g. {"roles": ["reader"]}'
    )
    why.add_argument("--target", default={}, type=_json_object, help="JSON object")
    why.add_argument(
        "--policy-file", type=config.given, help="policy file (default: guard's defaults)"
    )
    why.set_defaults(func=explain)

    compare = commands.add_parser("diff", help="decisions that change between two files")
    compare.add_argument("old", type=config.given, help="the policy file in force")
    compare.add_argument("new", type=config.given, help="the edited policy file")
    compare.set_defaults(func=diff)
