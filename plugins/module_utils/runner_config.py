"""Build the wanted ``config.toml`` document from the role's inputs, gate it
against the policy catalog, and serialize it as TOML.

The document is a plain nested mapping in GitLab Runner's own vocabulary
(what ``tomllib`` would return for the file), so the gate and the audit
modules evaluate exactly the same thing with ``policy.evaluate_document``.

Written by hand rather than with a TOML library: the serializer must route
every value through the collection's own escaping rules (``toml.py`` filter
semantics) and keep GitLab Runner's datetimes as TOML datetimes; the
controller-side dependency set stays at ansible-core alone.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import posixpath
import re
import struct
from collections.abc import Mapping, Sequence

from ansible_collections.hardened.gitlab_runner.plugins.module_utils.policy import (
    CATALOG,
    DOCKER_EXECUTORS,
    REQUIRED_CAP_DROP,
    SSH_SECTION_EXECUTORS,
    VM_EXECUTORS,
    evaluate_document_by_runner,
    unknown_key_findings,
)
try:
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key
except ImportError:  # ansible-core brings it to every controller; without it the shape checks below stay
    load_ssh_public_key = None

from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config_schema import (
    KEY_LISTS,
    acknowledgeable,
    key_list_summary,
    select_key_list,
    split_key_path,
)

# Fields GitLab Runner writes back into its [[runners]] entries; kept so the
# file does not flap between the role and the runner.
RUNNER_MANAGED_FIELDS = ("id", "token_obtained_at", "token_expires_at")
_DATETIME_FIELDS = ("token_obtained_at", "token_expires_at")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")

# Sections copied as given (then checked against the schema); docker,
# kubernetes, ssh, machine, autoscaler and feature_flags get secure defaults
# below instead, and so do virtualbox and parallels on a runner of that
# executor. Every one of them is also an option of a runner in the role's
# argument spec (tests/unit checks the two agree).
_PASSTHROUGH_SECTIONS = ("cache", "custom_build_dir", "custom", "virtualbox", "parallels")
_DEFAULTED_SECTIONS = ("docker", "kubernetes", "ssh", "machine", "autoscaler", "feature_flags")
EXECUTOR_SECTIONS = _DEFAULTED_SECTIONS + _PASSTHROUGH_SECTIONS
# Runner options that are no config.toml key of their own: the builder turns
# the pins into a file and its known_hosts_file; with `create`, the
# runner_config action makes the runner in GitLab and writes its token.
RUNNER_INPUTS = ("ssh_known_hosts", "create")
_SCALARS = ("name", "url", "token", "executor", "limit", "request_concurrency", "output_limit", "environment",
            "builds_dir", "cache_dir", "shell", "clone_url")
# Keys the role writes from a runner's own input. `settings` may not set them,
# in any spelling (GitLab Runner matches keys case-insensitively): a runner
# that could rename itself there could take another runner's acknowledgement.
_MANAGED_KEYS = frozenset(k.casefold() for k in _SCALARS + RUNNER_MANAGED_FIELDS + EXECUTOR_SECTIONS)

EXECUTORS = ("shell", "docker", "docker-windows", "docker+machine", "docker-autoscaler", "instance", "ssh",
             "kubernetes", "custom", "virtualbox", "parallels")


class ConfigError(ValueError):
    """Bad role input; the message never contains a token."""


# --- pinned SSH host keys ---------------------------------------------------------
#
# What GitLab Runner does (helpers/ssh/ssh_command.go, getHostKeyCallback, used
# by the ssh, virtualbox and parallels executors alike): with
# disable_strict_host_key_checking = true it accepts any host key; otherwise it
# checks the key against known_hosts_file and, when that is unset, against
# ~/.ssh/known_hosts of the user it runs as (root for the service), a file
# whatever first `ssh` to the host filled by accepting the key it was shown.
# It never adds a key itself, and a file it cannot open fails the connection.
# So the role writes the keys the inventory pins (ssh_known_hosts) to a file
# of each runner's own and points known_hosts_file at it; a runner without
# pins is refused (GR046), and no other known_hosts_file is taken.
#
# The reader is golang.org/x/crypto/ssh/knownhosts: one line it cannot parse
# fails every connection, it ignores the key type a line states (the key
# carries its own), and it compares ports literally (a VirtualBox VM is reached
# at [localhost]:<the host port of its "guestssh" NAT rule>).

DEFAULT_KNOWN_HOSTS_DIR = "/etc/gitlab-runner/known_hosts.d"
KNOWN_HOSTS_HEADER = (
    "# Managed by hardened.gitlab_runner (role gitlab_runner): the SSH host keys one runner\n"
    "# pins in its ssh_known_hosts. Changes made here are replaced on the role's next run.\n"
)
# Key types and the number of fields of their public key blob, type included.
_KEY_FIELDS = {
    "ssh-ed25519": 2,
    "ssh-rsa": 3,
    "ecdsa-sha2-nistp256": 3,
    "ecdsa-sha2-nistp384": 3,
    "ecdsa-sha2-nistp521": 3,
    "sk-ssh-ed25519@openssh.com": 3,
    "sk-ecdsa-sha2-nistp256@openssh.com": 4,
}
SSH_KEY_TYPES = tuple(_KEY_FIELDS)
_MARKERS = ("@cert-authority", "@revoked")
_HOST = re.compile(r"^[A-Za-z0-9._*?%:-]+$")
_BRACKETED_HOST = re.compile(r"^\[([A-Za-z0-9._*?%:-]+)\]:([0-9]{1,5})$")
_HASHED_HOST = re.compile(r"^\|1\|([A-Za-z0-9+/=]+)\|([A-Za-z0-9+/=]+)$")
_LONGEST_LINE = 16384  # the reader gives up on lines over 64 KiB


def _key_fields(data):
    """The SSH wire-format strings of a public key blob, or None when they do not add up."""
    fields = []
    while data:
        if len(data) < 4:
            return None
        size = struct.unpack(">I", data[:4])[0]
        if size > len(data) - 4:
            return None
        fields.append(data[4:4 + size])
        data = data[4 + size:]
    return fields


def _printable(raw):
    text = raw.decode("ascii", "replace")
    return text if len(text) <= 60 and all(32 < ord(c) < 127 for c in text) else None


def _hosts_problem(field):
    """Why a known_hosts host field would not pin anything as meant, or None."""
    if field.startswith("|"):
        match = _HASHED_HOST.match(field)
        try:
            ok = match is not None and len(base64.b64decode(match.group(2), validate=True)) == 20 \
                and len(base64.b64decode(match.group(1), validate=True)) > 0
        except (binascii.Error, ValueError):
            ok = False
        return None if ok else "has a hashed host that is not |1|<base64 salt>|<base64 SHA-1 HMAC>"
    positive = False
    for pattern in field.split(","):
        negated = pattern.startswith("!")
        host = pattern[1:] if negated else pattern
        if not host:
            return "has an empty host pattern"
        if host.startswith("["):
            match = _BRACKETED_HOST.match(host)
            if not match:
                return "has a host pattern in brackets that is not [host]:port"
            if not 0 < int(match.group(2)) < 65536:
                return "has a [host]:port pattern whose port is not 1-65535"
        elif not _HOST.match(host):
            return "has a host pattern with characters no host name, address or wildcard holds"
        elif host.count(":") == 1:
            # GitLab Runner's reader would take name:port as a host and a port, OpenSSH as one name.
            return "has a host pattern with a port but no brackets: write [host]:port"
        positive = positive or not negated
    if not positive:
        return "has no host pattern that is not negated, so it pins nothing"
    return None


def known_hosts_problem(line):
    """Why one ``ssh_known_hosts`` line cannot be pinned, or None.

    The reason names the key type at most, never key material.
    """
    if not isinstance(line, str):
        return "must be text: one known_hosts line"
    if any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in line):
        return "must be one line, without line breaks or control characters"
    if len(line) > _LONGEST_LINE:
        return "is longer than %d characters" % _LONGEST_LINE
    words = line.split()
    if not words:
        return "is empty"
    if words[0].startswith("#"):
        return "is a comment, not a host key"
    if words[0].startswith("@"):
        if words[0] not in _MARKERS:
            return "starts with an unknown marker (known: %s)" % ", ".join(_MARKERS)
        words = words[1:]
    if len(words) < 3:
        return "needs a host pattern, a key type and a key"
    hosts, keytype, key = words[:3]
    problem = _hosts_problem(hosts)
    if problem:
        return problem
    if keytype == "ssh-dss":
        return "pins a DSA key (ssh-dss), which OpenSSH no longer accepts: pin another of the host's keys"
    if keytype not in _KEY_FIELDS:
        shown = keytype if len(keytype) <= 60 else keytype[:57] + "..."
        return "has an unknown key type %s (known: %s)" % (shown, ", ".join(SSH_KEY_TYPES))
    try:
        data = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return "holds a key that is not valid base64"
    fields = _key_fields(data)
    if fields and fields[0] != keytype.encode("ascii"):
        actual = _printable(fields[0])
        return "says %s but holds %s" % (keytype, "a %s key" % actual if actual else "a key of another type")
    if not fields or len(fields) != _KEY_FIELDS[keytype]:
        return "holds a key that is not a %s public key (its fields do not fit that type)" % keytype
    if "ed25519" in keytype and len(fields[1]) != 32:
        return "holds an Ed25519 key that is not 32 bytes long"
    if "ecdsa" in keytype and fields[1] != keytype.split("@")[0].rsplit("-", 1)[-1].encode("ascii"):
        return "holds an ECDSA key on another curve than %s says" % keytype
    if load_ssh_public_key is not None:
        # What the shapes cannot tell: a point off its curve, an RSA exponent
        # GitLab Runner refuses. Its error text is not passed on.
        try:
            load_ssh_public_key(("%s %s" % (keytype, key)).encode("ascii"))
        except Exception:  # any reason the library refuses the key
            return "holds a key that is not a valid %s public key" % keytype
    return None


def known_hosts_path(directory, name):
    """The managed known_hosts file of the runner named ``name`` in ``directory``.

    The name made safe for a file name, and a hash of the exact name, so two
    runners can never share (and so take over) one file.
    """
    slug = re.sub(r"[^A-Za-z0-9_-]", "_", str(name))[:64] or "runner"
    digest = hashlib.sha256(str(name).encode("utf-8")).hexdigest()[:12]
    return posixpath.join(str(directory).rstrip("/") or "/", "%s-%s" % (slug, digest))


def known_hosts_files(runners, directory):
    """{path: text} of the managed known_hosts files for ``runners`` (input already checked by build_document)."""
    out = {}
    for runner in _plain(runners or []):
        if not isinstance(runner, Mapping) or runner.get("state", "present") == "absent":
            continue
        if runner.get("executor") in SSH_SECTION_EXECUTORS and runner.get("ssh_known_hosts"):
            lines = "".join(line.strip() + "\n" for line in runner["ssh_known_hosts"])
            out[known_hosts_path(directory, runner["name"])] = KNOWN_HOSTS_HEADER + lines
    return out


def _check_pins(name, executor, pins):
    if pins is None:
        return
    if isinstance(pins, (str, bytes, Mapping)) or not isinstance(pins, Sequence):
        raise ConfigError('runner "%s": ssh_known_hosts must be a list of known_hosts lines' % name)
    if pins and executor not in SSH_SECTION_EXECUTORS:
        raise ConfigError('runner "%s": ssh_known_hosts is only read for the ssh, virtualbox and parallels '
                          'executors; remove it from this %s runner' % (name, executor))
    for index, line in enumerate(pins):
        problem = known_hosts_problem(line)
        if problem:
            raise ConfigError('runner "%s": ssh_known_hosts[%d] %s' % (name, index, problem))


def _merge(base, override):
    """Deep-merge two mappings; ``override`` wins, lists are replaced."""
    out = dict((k, copy.deepcopy(v)) for k, v in base.items())
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _plain(value):
    """Copy Ansible's tagged/lazy containers into plain Python types."""
    if isinstance(value, Mapping):
        return dict((str(k), _plain(v)) for k, v in value.items())
    if isinstance(value, (str, bytes)):
        return str(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Sequence):
        return [_plain(v) for v in value]
    return value


def _check_runner_input(index, runner, seen):
    if not isinstance(runner, Mapping):
        raise ConfigError("gitlab_runner_runners[%d] must be a mapping" % index)
    name = runner.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("gitlab_runner_runners[%d] needs a non-empty name" % index)
    if name in seen:
        raise ConfigError('gitlab_runner_runners: the runner name "%s" is used twice; names must be unique' % name)
    seen.add(name)
    if runner.get("state", "present") == "absent":
        return
    # A runner with create gets its token from GitLab's API (the runner_config action).
    for key in ("url", "executor") if runner.get("create") else ("url", "token", "executor"):
        if not runner.get(key):
            raise ConfigError('runner "%s": %s is required for a present runner' % (name, key))
    if not re.match(r"^https?://[^/\s]+", str(runner["url"])):
        raise ConfigError('runner "%s": url must be an http(s) URL of the GitLab instance' % name)
    if runner["executor"] not in EXECUTORS:
        raise ConfigError('runner "%s": executor must be one of %s' % (name, ", ".join(EXECUTORS)))
    settings = runner.get("settings") or {}
    if not isinstance(settings, Mapping):
        raise ConfigError('runner "%s": settings must be a mapping of [[runners]] keys' % name)
    clash = sorted(str(k) for k in settings if str(k).casefold() in _MANAGED_KEYS)
    if clash:
        raise ConfigError('runner "%s": settings may not set %s; the role writes these from the runner\'s own '
                          'keys (name, token, executor, docker, kubernetes, ...)' % (name, ", ".join(clash)))
    _check_pins(name, runner["executor"], runner.get("ssh_known_hosts"))


def build_document(settings, runners, defaults, existing=None, known_hosts_dir=None):
    """Return the wanted config.toml as a nested mapping.

    settings: global keys (concurrent, check_interval, log_level, log_format,
      shutdown_timeout, listen_address, session_server, connection_max_age).
    runners: the role's ``gitlab_runner_runners`` list.
    defaults: {"docker": {...}, "feature_flags": {...}, "runner": {...},
      "cap_drop_extra": [...]} secure defaults merged under each runner.
    existing: the parsed current config.toml (or None), for runner-managed fields.
    known_hosts_dir: where the managed known_hosts files of ssh, virtualbox
      and parallels runners live on the host (DEFAULT_KNOWN_HOSTS_DIR if None).
    """
    settings, runners, defaults = _plain(settings or {}), _plain(runners or []), _plain(defaults or {})
    existing = _plain(existing or {})
    seen = set()
    for index, runner in enumerate(runners):
        _check_runner_input(index, runner, seen)

    doc = {}
    for key in ("concurrent", "check_interval", "log_level", "log_format", "shutdown_timeout",
                "connection_max_age", "listen_address"):
        value = settings.get(key)
        if value is not None and value != "":
            doc[key] = value
    if settings.get("session_server"):
        doc["session_server"] = dict(settings["session_server"])

    old = {}
    for entry in existing.get("runners") or []:
        if isinstance(entry, Mapping) and "name" in entry:
            old.setdefault(entry["name"], entry)

    doc["runners"] = []
    for runner in runners:
        if runner.get("state", "present") == "absent":
            continue
        doc["runners"].append(_runner_table(runner, defaults, old.get(runner["name"]),
                                            known_hosts_dir or DEFAULT_KNOWN_HOSTS_DIR))
    return doc


def _required_drops(section, extra):
    """The section's cap_drop with the required drops (and ``extra``) added back."""
    drops = [str(c).upper() for c in section.get("cap_drop") or []]
    if "ALL" not in drops:
        for cap in list(REQUIRED_CAP_DROP) + [str(c).upper() for c in extra or []]:
            if cap not in drops and "CAP_" + cap not in drops:
                drops.append(cap)
    return drops


def _ssh_section(runner, ssh, known_hosts_dir):
    """[runners.ssh] with known_hosts_file set to the runner's managed file, or unset without pins."""
    managed = known_hosts_path(known_hosts_dir, runner["name"])
    for key in [k for k in ssh if k.casefold() == "known_hosts_file"]:
        given = ssh.pop(key)
        if given not in (None, "") and given != managed:
            spelt = "" if key == "known_hosts_file" else " (spelt %s)" % key
            raise ConfigError('runner "%s": [runners.ssh] known_hosts_file%s may only be the file the role writes '
                              'from the runner\'s ssh_known_hosts (%s); pin the host keys in ssh_known_hosts instead'
                              % (runner["name"], spelt, managed))
    if runner.get("ssh_known_hosts"):
        ssh["known_hosts_file"] = managed
    return ssh


def _vm_section(runner, vm):
    """[runners.virtualbox] or [runners.parallels]; GitLab Runner fails every job without base_name."""
    if not any(k.casefold() == "base_name" and str(v or "").strip() for k, v in vm.items()):
        raise ConfigError('runner "%s": [runners.%s] base_name is required: the VM every job is cloned from '
                          '(GitLab Runner fails each job without it)' % (runner["name"], runner["executor"]))
    return vm


def _runner_table(runner, defaults, previous, known_hosts_dir):
    executor = runner["executor"]
    table = {}
    for key in _SCALARS:
        if key in runner and runner[key] is not None and runner[key] != "" and runner[key] != []:
            table[key] = runner[key]
    if previous and previous.get("token") == runner.get("token"):
        for key in RUNNER_MANAGED_FIELDS:
            if key in previous:
                table[key] = previous[key]
    for key, value in (defaults.get("runner") or {}).items():
        table.setdefault(key, copy.deepcopy(value))
    table = _merge(table, runner.get("settings") or {})

    def section(key, secure):
        """Secure defaults, then gitlab_runner_runner_defaults' section, then the runner's own."""
        return _merge(_merge(secure or {}, table.get(key) or {}), runner.get(key) or {})

    flag_defaults = dict(defaults.get("feature_flags") or {})
    if executor in DOCKER_EXECUTORS:
        docker = section("docker", defaults.get("docker"))
        # The required drops cannot be switched off by overriding the list;
        # extra capabilities need cap_add, which needs an acknowledgement.
        docker["cap_drop"] = _required_drops(docker, defaults.get("cap_drop_extra"))
        table["docker"] = docker
    else:
        flag_defaults.pop("FF_NETWORK_PER_BUILD", None)
    if executor == "kubernetes":
        kubernetes = section("kubernetes", defaults.get("kubernetes"))
        kubernetes["cap_drop"] = _required_drops(kubernetes, ())
        table["kubernetes"] = kubernetes
    if executor in SSH_SECTION_EXECUTORS:
        table["ssh"] = _ssh_section(runner, section("ssh", {"disable_strict_host_key_checking": False}),
                                    known_hosts_dir)
    if executor == "docker+machine":
        table["machine"] = section("machine", {"MaxBuilds": 1})
    if executor in ("docker-autoscaler", "instance"):
        table["autoscaler"] = section("autoscaler", {"max_use_count": 1})
    if executor in VM_EXECUTORS:
        # Snapshots on (GitLab Runner's own default): every job starts from
        # the clone's first snapshot. Off, each job gets a new clone that is
        # deleted after it; neither gives a job what the one before it left.
        table[executor] = _vm_section(runner, section(executor, {"disable_snapshots": False}))
    for key in _PASSTHROUGH_SECTIONS:
        if key != executor and (runner.get(key) or table.get(key)):
            table[key] = section(key, {})
    flags = section("feature_flags", flag_defaults)
    if flags:
        table["feature_flags"] = flags
    return table


# --- the gate -----------------------------------------------------------------

# What to do instead, after a refusal's how-to-unlock text.
_REMEDIES = {
    "GR046": "Pin the hosts' keys in this runner's ssh_known_hosts: the role writes them to a known_hosts file "
             "of the runner's own and sets known_hosts_file to it.",
    "GR048": "Or list whole VM names only: ^name$ or ^(name-a|name-b)$, dots escaped.",
}


def _acknowledgement(ack, runner):
    """(accepted, how-to-unlock text) for one acknowledgement name and runner input."""
    if ack is None:
        return False, "No acknowledgement unlocks it."
    runner = runner or {}
    if ack == "trusted":
        return runner.get("trusted") is True, "Only a runner marked trusted: true (trusted projects and users) may use it."
    value = runner.get(ack)
    reason = value.get("reason") if isinstance(value, Mapping) else None
    has_reason = isinstance(reason, str) and reason.strip() != ""
    if ack == "allow_privileged":
        ok = has_reason and value.get("protected_refs_only") is True
        return ok, ("To accept it, set allow_privileged: {reason: \"...\", protected_refs_only: true} on this "
                    "runner, and limit the runner to protected branches and tags in GitLab.")
    return has_reason, "To accept it, set %s: {reason: \"...\"} on this runner." % ack


def _describe(finding):
    where = 'runner "%s"' % finding["runner"] if finding["runner"] is not None else "global settings"
    return "%s: %s (%s) - %s %s [%s; %s]" % (
        where, finding["setting"], finding["evidence"], finding["id"], finding["title"],
        finding["severity"], finding["guidance"])


def _runner_key_name(path, document):
    """(section, key, name) of an unknown key's path; name is its dotted path below [[runners]], or None."""
    section, key = split_key_path(path, document)
    if section[:1] != ("runners",) or len(path) < 3 or not isinstance(key, str):
        return section, key, None
    return section, key, ".".join(section[1:] + (key,))


def _allowed_unknown_keys(runner):
    """(names, reason) of a runner's allow_unknown_keys; no names unless it has a reason."""
    value = runner.get("allow_unknown_keys") if isinstance(runner, Mapping) else None
    if not isinstance(value, Mapping):
        return frozenset(), None
    reason = value.get("reason")
    keys = value.get("keys")
    if not (isinstance(reason, str) and reason.strip()) or not isinstance(keys, Sequence) or isinstance(keys, str):
        return frozenset(), None
    return frozenset(k for k in keys if isinstance(k, str)), reason


def _unknown_key_acknowledgement(path, document, runner, choice):
    """(accepted, reason or how-to-unlock text) for one unknown key (GR015) of a runner."""
    key_list = choice.key_list
    for_version = (" (GitLab Runner %s, the version this configuration is for)" % choice.runner_version
                   if choice.runner_version else " (no GitLab Runner version is known)")
    section, key, name = _runner_key_name(path, document)
    if name is None:
        return False, ("The %s%s does not know it. No acknowledgement unlocks it: only keys of a runner can be "
                       "accepted." % (key_list.name, for_version))
    ok, why_not = acknowledgeable(section, key, key_list)
    if not ok:
        return False, "The %s%s does not know it. No acknowledgement unlocks it: %s." % (
            key_list.name, for_version, why_not)
    names, reason = _allowed_unknown_keys(runner)
    if name in names:
        return True, reason
    return False, ('The %s%s does not know it. If that GitLab Runner version does (a key or feature flag newer '
                   'than the list), accept it by its exact name on this runner: allow_unknown_keys: {keys: ["%s"], '
                   'reason: "..."}. A misspelt key stays refused: fix its spelling.' % (key_list.name, for_version, name))


def _record(finding, ack, reason):
    return dict((("runner", finding["runner"]), ("id", finding["id"]), ("setting", finding["setting"]),
                 ("evidence", finding["evidence"]), ("ack", ack), ("reason", reason)))


def _unknown_keys_for_other_versions(document, inputs, key_list, recorded):
    """Acknowledged unknown keys that only other runner versions' key lists lack.

    The audit accepts a GR015 finding only when the controller declares it,
    and it checks the host against the list of the version installed there,
    which need not be the one the gate used: every key a runner names in
    allow_unknown_keys is declared for each list that lacks it.
    """
    out = []
    for other in KEY_LISTS:
        if other is key_list:
            continue
        for index, path, finding in unknown_key_findings(document, other):
            if index is None or index >= len(inputs) or finding["setting"] in recorded:
                continue
            section, key, name = _runner_key_name(path, document)
            names, reason = _allowed_unknown_keys(inputs[index])
            if name in names and acknowledgeable(section, key, other)[0]:
                recorded.add(finding["setting"])
                out.append(_record(finding, "allow_unknown_keys", reason))
    return out


def gate(document, runners, runner_version=None, origin=None, unknown_because=None):
    """Split the document's findings into refusals, warnings and acknowledgements.

    A runner's finding is judged against the acknowledgements of the input
    entry that produced it (by position, never by name), and each accepted
    finding is recorded with its exact setting and evidence, so the audit can
    tell when the setting changed since. Unknown keys (GR015) are judged by
    the key list of ``runner_version`` (``select_key_list``; ``origin`` says
    where the version came from, ``unknown_because`` why there is none);
    ``key_list`` in the result names it and holds its ``text``. Returns
    {"refusals": [str], "warnings": [str], "acknowledged": [dict],
    "findings": [dict], "key_list": dict}; none of it contains a token.
    """
    choice = select_key_list(runner_version, origin, unknown_because)
    key_list = choice.key_list
    inputs = [runner for runner in _plain(runners or [])
              if isinstance(runner, Mapping) and runner.get("state", "present") != "absent"]
    result = dict((("refusals", []), ("warnings", []), ("acknowledged", []), ("findings", []),
                   ("key_list", key_list_summary(choice))))
    unknown = dict((finding["setting"], path) for _index, path, finding in unknown_key_findings(document, key_list))
    named = set()
    for index, finding in evaluate_document_by_runner(document, key_list):
        result["findings"].append(finding)
        policy = CATALOG[finding["id"]]
        if policy.enforcement != "refuse":
            result["warnings"].append(_describe(finding))
            continue
        runner_input = inputs[index] if index is not None and index < len(inputs) else {}
        if finding["id"] == "GR015":
            path = unknown[finding["setting"]]
            accepted, text = _unknown_key_acknowledgement(path, document, runner_input, choice)
            reason = text
            named.add((index, _runner_key_name(path, document)[2]))
        else:
            accepted, text = _acknowledgement(policy.ack, runner_input)
            ack_value = runner_input.get(policy.ack)
            reason = ack_value.get("reason") if isinstance(ack_value, Mapping) else "trusted runner"
        if accepted:
            result["acknowledged"].append(_record(finding, policy.ack, reason))
            result["warnings"].append("ACKNOWLEDGED " + _describe(finding) + " reason: " + str(reason))
        else:
            remedy = _REMEDIES.get(finding["id"])
            result["refusals"].append("REFUSED " + _describe(finding) + " " + text + (" " + remedy if remedy else ""))
    if any(_allowed_unknown_keys(runner)[0] for runner in inputs):
        recorded = set(item["setting"] for item in result["acknowledged"] if item["id"] == "GR015")
        result["acknowledged"].extend(_unknown_keys_for_other_versions(document, inputs, key_list, recorded))
        for index, runner in enumerate(inputs):
            for name in sorted(_allowed_unknown_keys(runner)[0]):
                if (index, name) not in named:
                    result["warnings"].append(
                        'runner "%s": allow_unknown_keys names "%s", which is not an unknown key of this runner for '
                        'the %s: it accepts nothing here.' % (runner.get("name"), name, key_list.name))
    return result


# --- TOML serialization ---------------------------------------------------------

def _is_table_array(value):
    return (isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) > 0
            and all(isinstance(v, Mapping) for v in value))


def to_toml_document(document, value_filter, key_filter):
    """Serialize a nested mapping as a TOML document.

    ``value_filter``/``key_filter`` are the collection's ``toml_value`` and
    ``toml_key`` filters: every key and value goes through them. Scalars come
    before sub-tables (TOML assigns keys to the last table header).
    """
    lines = []

    def header(path, array):
        name = ".".join(key_filter(p) for p in path)
        lines.append("")
        lines.append(("[[%s]]" if array else "[%s]") % name)

    def emit(path, table, depth):
        indent = "  " * depth
        for key, value in table.items():
            if isinstance(value, Mapping) or _is_table_array(value):
                continue
            if key in _DATETIME_FIELDS and isinstance(value, str) and _RFC3339.fullmatch(value):
                rendered = value  # GitLab Runner writes these as TOML datetimes
            else:
                rendered = value_filter(value)
            lines.append("%s%s = %s" % (indent, key_filter(key), rendered))
        for key, value in table.items():
            if isinstance(value, Mapping):
                header(path + [key], False)
                emit(path + [key], value, depth + 1)
        for key, value in table.items():
            if _is_table_array(value):
                for item in value:
                    header(path + [key], True)
                    emit(path + [key], item, depth + 1)

    emit([], document, 0)
    return "\n".join(lines).lstrip("\n") + "\n"
