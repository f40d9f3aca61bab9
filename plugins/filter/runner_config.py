"""Filters that build, gate and serialize GitLab Runner's config.toml.

The logic lives in ``module_utils`` (shared with the audit modules); these
filters only adapt it to Jinja and turn input errors into
``AnsibleFilterError`` messages that never contain a token.
"""

import datetime

try:
    import tomllib
except ImportError:  # pragma: no cover - ansible-core 2.19 needs Python 3.11+ on the controller
    tomllib = None

from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.gitlab_runner.plugins.filter.toml import toml_key, toml_value
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config import (
    ConfigError,
    build_document,
    gate,
    to_toml_document,
)
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config_schema import (
    key_list_summary,
    select_key_list,
)


_NO_VERSION = "none was given"


def runner_config_document(runners, settings, defaults, existing=None):
    """The wanted config.toml document for ``runners`` (see module_utils.runner_config)."""
    try:
        return build_document(settings, runners, defaults, existing)
    except ConfigError as exc:
        raise AnsibleFilterError("gitlab_runner: %s. Nothing was changed." % exc)


def runner_policy_gate(runners, settings, defaults, existing=None, runner_version=None):
    """Check role input and policies; never raises for bad input.

    ``runner_version`` is the GitLab Runner version the configuration is for:
    unknown keys are judged by its release line's key list (without one, the
    newest list). Returns {"errors": [...], "refusals": [...], "warnings":
    [...], "acknowledged": [...], "findings": [...], "key_list": {...}}, free
    of tokens, so the caller can print it while the task that computed it
    stays free of ``no_log``.
    """
    version = str(runner_version) if runner_version not in (None, "") else None
    try:
        document = build_document(settings, runners, defaults, existing)
    except ConfigError as exc:
        return {"errors": [str(exc)], "refusals": [], "warnings": [], "acknowledged": [], "findings": [],
                "key_list": key_list_summary(select_key_list(version, None, _NO_VERSION))}
    result = dict(gate(document, runners, version, None, _NO_VERSION))
    result["errors"] = []
    return result


def toml_document(document):
    """Serialize a document with every key and value through toml_key/toml_value."""
    return to_toml_document(document, toml_value, toml_key)


def _plain_datetimes(value):
    if isinstance(value, dict):
        return {k: _plain_datetimes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_datetimes(v) for v in value]
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return value


def from_toml(text, strict=True):
    """Parse TOML text; datetimes become RFC 3339 strings.

    With ``strict=False`` a document that does not parse yields ``{}`` instead
    of an error (the caller is about to replace it). The error never quotes
    the text, which may hold tokens.
    """
    try:
        return _plain_datetimes(tomllib.loads(str(text)))
    except (tomllib.TOMLDecodeError, TypeError, ValueError) as exc:
        if not strict:
            return {}
        raise AnsibleFilterError("from_toml: the text is not valid TOML (%s)" % str(exc).split("(", maxsplit=1)[0].strip())


class FilterModule(object):
    def filters(self):
        return {
            "runner_config_document": runner_config_document,
            "runner_policy_gate": runner_policy_gate,
            "toml_document": toml_document,
            "from_toml": from_toml,
        }
