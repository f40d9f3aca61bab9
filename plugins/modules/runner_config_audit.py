#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: runner_config_audit
short_description: Audit a GitLab Runner config.toml against the policy catalog (read-only)
version_added: "0.1.0"
description:
  - Reads a GitLab Runner C(config.toml), parses it as TOML and evaluates it with the
    policy catalog of this collection (the same checks the role's input gate uses), so
    any runner host can be audited, whether or not it was set up by this collection.
  - Every runner and every executor section is checked; keys GitLab Runner does not
    recognize are reported as C(GR015).
  - Unknown keys and feature flags are judged by the collection's key list of the runner's release
    line (major.minor; generated from GitLab Runner's source at a tag), the one of O(runner_version),
    else of the GitLab Runner installed on the host. A release the collection has no list for gets the
    nearest older list (or, older than every list, the oldest), and without a version the newest is
    used; each time with a warning. An C(info) finding C(GR027) and RV(key_list) name the list used.
  - An unknown key is accepted (reported as C(info)) only when O(acknowledged) declares it, as the
    role's gate records a runner's C(allow_unknown_keys); the key list named in its evidence does not
    matter for that, only the key's path.
  - File problems (missing, unreadable, a directory, too large, not UTF-8 text, NUL bytes,
    TOML syntax errors, C(runners) not an array of tables, values of the wrong type) are
    reported as C(GR023) findings instead of failing the task.
  - For the ssh, virtualbox and parallels runners, the files their SSH connections read are looked at
    (never opened) as C(GR047) findings, by what the path resolves to. C([runners.ssh] identity_file) must be
    a regular file of root's that neither group nor others can read or write (0600 or stricter).
    C(known_hosts_file), unless strict host key checking is off, must exist as a regular file of root's that
    neither group nor others can write, in directories only root can change. A relative path is reported as
    unverifiable (GitLab Runner resolves it against its working directory).
  - Nothing is changed on the host. Runner tokens never leave the host; only salted
    SHA-256 hashes of them are returned, so hosts can be compared for cloned runners
    (C(GR022)) within one audit run.
author:
  - hardened.gitlab_runner maintainers (@hardened)
options:
  path:
    description:
      - Path of the C(config.toml) to audit.
    type: path
    default: /etc/gitlab-runner/config.toml
  system_id_path:
    description:
      - Path of the runner's system id file.
      - Defaults to C(.runner_system_id) in the directory of O(path).
    type: path
  salt:
    description:
      - Salt prepended to each value before hashing; hashes are the hex SHA-256 of
        C(salt + value).
      - Use the same salt for all hosts of one audit run to compare them, and a long random
        value (for example generated once per run on the controller) so hashes cannot be
        compared across runs or brute-forced.
      - The salt is a no_log value, and Ansible masks every occurrence of it in the result,
        so a short salt (a few characters) can mask parts of the returned hashes.
    type: str
    default: ''
  acknowledged:
    description:
      - The exceptions the controller accepts for this host, as the role's gate computes them from
        the inventory (a list of C(runner), C(id), C(setting), C(evidence) and C(reason) entries;
        C(playbooks/audit.yml) passes them).
      - A finding is reported at severity C(info), with the reason and its original severity in its
        evidence, only when an entry has its runner, policy, setting and evidence exactly, the policy
        can be acknowledged at all, and no other runner in the file has the same name. A setting
        changed since it was accepted is reported at full severity.
      - Unset or empty, nothing is accepted.
    type: list
    elements: dict
  acknowledgements_path:
    description:
      - JSON file of exceptions as written by the C(hardened.gitlab_runner.gitlab_runner) role
        (an object whose C(acknowledged) list holds C(runner), C(id) and C(reason) entries).
      - It lives on the audited host, so it is never trusted. An entry that O(acknowledged) does
        not declare only adds a note to the finding; the finding keeps its severity.
      - Defaults to C(hardened-acknowledgements.json) next to O(path); a missing or unreadable file
        means no notes.
    type: path
  max_size:
    description:
      - Largest file size in bytes that is read; a larger file is reported as C(GR023)
        without being read.
    type: int
    default: 1048576
  runner_version:
    description:
      - The GitLab Runner version whose release line's key list unknown keys (C(GR015)) are checked
        against, as GitLab (V(18.5.0)) or apt (V(18.5.0-1)) numbers it.
      - Unset or empty, the version installed on the host (the C(gitlab-runner) package, else
        C(gitlab-runner --version)); when none is found, the newest key list, with a warning.
    type: str
notes:
  - Requires the Python C(tomllib) module (Python 3.11 and later) or the C(tomli)
    package on the managed host.
  - A UTF-8 byte order mark at the start of the file is ignored.
  - Token values and other secrets found in the file are registered as no_log values, so
    Ansible masks them should they ever appear in a message.
  - Supports check mode; the module never changes anything.
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the target.
    support: full
    details: The module only reads; it does the same in check mode and always reports
      C(changed=false).
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
    details: The module changes nothing, so there is no difference to show.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
requirements:
  - Python 3.11 or later, or the C(tomli) Python package
seealso:
  - module: hardened.gitlab_runner.runner_host_audit
"""

EXAMPLES = r"""
- name: Audit the runner configuration
  hardened.gitlab_runner.runner_config_audit:
  register: runner_config

- name: Fail on high or critical findings
  ansible.builtin.assert:
    that:
      - runner_config.findings | selectattr('severity', 'in', ['high', 'critical']) | list | length == 0
    fail_msg: "{{ runner_config.findings | selectattr('severity', 'in', ['high', 'critical']) | map(attribute='id') | list }}"

- name: Audit a copy of another host's config.toml with a per-run salt
  hardened.gitlab_runner.runner_config_audit:
    path: /srv/audit/ci-07/config.toml
    system_id_path: /srv/audit/ci-07/.runner_system_id
    salt: "{{ audit_salt }}"
    max_size: 262144
  register: ci07_config
"""

RETURN = r"""
path:
  description:
    - The audited path.
    - Ansible adds the file's C(state) and, when it exists, C(mode), C(owner), C(group), C(uid),
      C(gid) and C(size) to the result next to it.
  returned: always
  type: str
  sample: /etc/gitlab-runner/config.toml
parsed:
  description: Whether the file was read and parsed as TOML.
  returned: always
  type: bool
  sample: true
findings:
  description:
    - Findings from the policy catalog, for the document (every runner) and for file
      problems (C(GR023)).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Catalog id.
      type: str
      sample: GR002
    severity:
      description: One of C(info), C(low), C(medium), C(high), C(critical).
      type: str
      sample: critical
    title:
      description: What the policy is about.
      type: str
    guidance:
      description: Where the reasoning is documented.
      type: str
    runner:
      description: Name of the runner concerned, or null for global settings and file problems.
      type: str
    setting:
      description: The setting or file concerned.
      type: str
      sample: "[runners.docker] privileged"
    evidence:
      description: What was found; never contains a token.
      type: str
      sample: privileged = true
    ack:
      description: Acknowledgement that unlocks the setting in the role's gate, or null.
      type: str
    enforcement:
      description: C(refuse), C(warn) or C(audit).
      type: str
runners:
  description: One entry per C([[runners]]) table.
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description: Zero-based position in the C(runners) array.
      type: int
    name:
      description: The runner's C(name), or null.
      type: str
    executor:
      description: The runner's C(executor), or null.
      type: str
    url:
      description: The runner's C(url) with any user and password removed, or null.
      type: str
    token_hash:
      description: Hex SHA-256 of C(salt + token), or null when the runner has no token.
      type: str
  sample:
    - index: 0
      name: ci-docker
      executor: docker
      url: https://gitlab.example.com/
      token_hash: 6f1ed002ab5595859014ebf0951522d9b5d0c5f5e7e4d7c0b7c5f5b1c2d3e4f5
system_id_hash:
  description: Hex SHA-256 of C(salt + system id), or null when there is no readable system id file.
  returned: always
  type: str
key_list:
  description: The key list unknown keys were checked against.
  returned: always
  type: dict
  contains:
    release:
      description: Its GitLab Runner release line.
      type: str
      sample: "19.3"
    tag:
      description: The tag of GitLab Runner's source it was generated from.
      type: str
      sample: v19.3.0
    commit:
      description: The commit of that tag.
      type: str
    name:
      description: How findings and warnings name it.
      type: str
      sample: key list of GitLab Runner 19.3 (v19.3.0)
    runner_version:
      description: The runner version it was picked for, or null when none was known.
      type: str
      sample: 19.3.0-1
    exact:
      description: Whether it is the list of that version's own release line.
      type: bool
    text:
      description: Which list was used and why, as in the C(GR027) finding.
      type: str
runner_version:
  description: The GitLab Runner version the key list was picked for (O(runner_version), else the installed one), or null.
  returned: always
  type: str
"""

import hashlib
import json
import os
import re
import stat
import traceback
from collections.abc import Mapping

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import tomllib as _toml
    TOML_IMPORT_ERROR = None
except ImportError:  # Python < 3.11
    try:
        import tomli as _toml
        TOML_IMPORT_ERROR = None
    except ImportError:
        _toml = None
        TOML_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.hardened.gitlab_runner.plugins.module_utils.config_file import (
    ConfigFileError,
    clip as _clip,
    parse_config,
    read_config,
    secret_values,
)
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.files import read_head
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.installed_version import runner_version
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.policy import (
    apply_acknowledgements,
    evaluate_document,
    finding,
    ssh_connection_files,
)
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config_schema import (
    key_list_summary,
    select_key_list,
)

CONFIG_SETTING = "config.toml"
ACK_LIMIT = 65536
SYSTEM_ID_LIMIT = 4096


def salted_hash(salt, value):
    return hashlib.sha256((salt + value).encode("utf-8")).hexdigest()


def _file_finding(path, evidence):
    return finding("GR023", None, path, evidence)


def _clean_url(value):
    if value is None:
        return None
    url = str(value)
    # Drop any user:password@ from the authority.
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/@]*@", r"\1", url)


def _text_or_none(value):
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def runner_summaries(runners, salt):
    out = []
    for index, runner in enumerate(runners):
        if not isinstance(runner, Mapping):
            continue
        token = runner.get("token")
        if token is None or token == "":
            token_hash = None
        else:
            token_hash = salted_hash(salt, token if isinstance(token, str) else str(token))
        out.append({
            "index": index,
            "name": _text_or_none(runner.get("name")),
            "executor": _text_or_none(runner.get("executor")),
            "url": _clean_url(runner.get("url")),
            "token_hash": token_hash,
        })
    return out


def _type_name(value):
    return {
        dict: "table", list: "array", str: "string", int: "integer", float: "float", bool: "boolean",
    }.get(type(value), "date/time" if hasattr(value, "isoformat") else type(value).__name__)


def evaluate(document, path, key_list=None):
    """Catalog findings for a parsed document, robust against values of the wrong type.

    ``key_list`` is the key list unknown keys are checked against (the newest by default).
    Returns (findings, runners list usable for the summaries).
    """
    findings = []
    shaped = document
    runners = document.get("runners")
    if "runners" in document and not isinstance(runners, list):
        findings.append(_file_finding(
            path, "runners is of type %s, not an array of tables ([[runners]]); its runners were not checked"
            % _type_name(runners)))
        shaped = dict(document)
        del shaped["runners"]
        runners = []
    elif runners is None:
        runners = []
    else:
        for index, runner in enumerate(runners):
            if not isinstance(runner, Mapping):
                findings.append(_file_finding(
                    path, "runners[%d] is of type %s, not a table; it was not checked" % (index, _type_name(runner))))
    typed = type_findings(shaped, runners)
    findings.extend(typed)
    try:
        findings.extend(evaluate_document(shaped, key_list))
        return findings, runners
    except Exception:  # a value of an unexpected type somewhere in a section
        pass
    # Evaluate the global part and every runner on its own, leaving out the
    # values the checks cannot handle, so one malformed value neither crashes
    # the audit nor hides the findings of the other settings.
    global_part = dict(shaped)
    global_part.pop("runners", None)
    findings.extend(_evaluate_part(global_part, {}, lambda table: table, None, "", path, key_list))
    for index, runner in enumerate(runners):
        if not isinstance(runner, Mapping):
            continue
        name = runner.get("name")
        base = dict((key, runner[key]) for key in ("name", "executor") if key in runner)
        findings.extend(_evaluate_part(
            runner, base,
            # Placeholders in front keep the runner's real index in key paths.
            lambda table, index=index: {"runners": [None] * index + [table]},
            _text_or_none(name) if name is not None else "(unnamed)", "runners[%d]." % index, path, key_list))
    # A value both checks found to be of the wrong type is reported once.
    seen = set()
    unique = []
    for item in findings:
        key = (item["id"], item["setting"]) if item["id"] == "GR023" else None
        if key is None or key not in seen:
            unique.append(item)
            seen.add(key)
    return unique, runners


# Values GitLab Runner's decoder can only load as a table or as an array; any
# other type makes the runner refuse the whole file. The policy checks read such
# values leniently, so the type is checked here, explicitly.
_RUNNER_TABLES = ("docker", "kubernetes", "ssh", "machine", "autoscaler", "feature_flags", "cache",
                  "custom_build_dir", "custom", "virtualbox", "parallels", "instance", "referees", "monitoring",
                  "artifact", "experimental")
_DOCKER_ARRAYS = ("cap_add", "cap_drop", "security_opt", "services_security_opt", "volumes", "volumes_from",
                  "devices", "device_cgroup_rules", "allowed_images", "allowed_services", "allowed_privileged_images",
                  "allowed_privileged_services", "allowed_pull_policies", "dns", "dns_search", "extra_hosts",
                  "links", "group_add", "allowed_users")
_KUBERNETES_ARRAYS = ("cap_add", "cap_drop", "allowed_pull_policies", "allowed_images", "allowed_services",
                      "allowed_users", "allowed_groups", "image_pull_secrets", "pod_spec")


def _directory_problem(path):
    """The first directory above ``path`` that others than root can change, as text, or None."""
    seen = set()
    for start in (os.path.abspath(path), os.path.realpath(path)):
        directory = os.path.dirname(start)
        while directory not in seen:
            seen.add(directory)
            try:
                info = os.stat(directory)
            except OSError as exc:
                return "a directory above it (%s) cannot be examined (%s)" % (directory, exc.strerror)
            # Root's sticky directories (/tmp) keep others from replacing a file of root's.
            writable = info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX
            if info.st_uid != 0 or writable:
                return "a directory above it (%s, owner uid %d, mode %04o) lets others than root replace it" % (
                    directory, info.st_uid, stat.S_IMODE(info.st_mode))
            parent = os.path.dirname(directory)
            if parent == directory:
                break
            directory = parent
    return None


def ssh_file_problem(key, path):
    """Why an SSH file a runner reads is not safe (text without file contents), or None.

    Only looked at with stat(2), following links as GitLab Runner does when it
    opens the file: a private key is never read.
    """
    if not os.path.isabs(path):
        return "%s is a relative path (GitLab Runner resolves it against its working directory): not verifiable" % path
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "%s is missing (every SSH connection of this runner fails)" % path
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        return "%s cannot be examined (%s)" % (path, getattr(exc, "strerror", None) or type(exc).__name__)
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISREG(info.st_mode):
        return "%s is not a regular file" % path
    if info.st_uid != 0:
        return "%s is owned by uid %d, not root" % (path, info.st_uid)
    if key == "identity_file":
        if mode & 0o077:
            return "%s has mode %04o, not 0600 or stricter: group or others can read the private key" % (path, mode)
        return None
    if mode & 0o022:
        return "%s: group or others can change it (mode %04o) and add a key for any host" % (path, mode)
    problem = _directory_problem(path)
    return "%s: %s" % (path, problem) if problem else None


def ssh_file_findings(runners):
    """GR047 for each SSH identity or known_hosts file of a runner that is missing or open to others than root."""
    out = []
    for runner in runners:
        if not isinstance(runner, Mapping):
            continue
        name = _text_or_none(runner.get("name")) or "(unnamed)"
        for key, path in ssh_connection_files(runner):
            problem = ssh_file_problem(key, path)
            if problem:
                out.append(finding("GR047", name, "[runners.ssh] %s" % key, _clip(problem)))
    return out


def type_findings(document, runners):
    """GR023 for each value whose type GitLab Runner cannot load (tables and arrays only)."""
    out = []

    def check(value, wanted, runner, setting):
        if value is not None and not isinstance(value, wanted):
            out.append(finding("GR023", runner, _clip(setting), "value of an unexpected type (%s) that GitLab Runner "
                               "cannot load; the other settings were checked without it" % _type_name(value)))

    check(document.get("session_server"), Mapping, None, "session_server")
    for index, runner in enumerate(runners):
        if not isinstance(runner, Mapping):
            continue
        name = _text_or_none(runner.get("name")) or "(unnamed)"
        for key in _RUNNER_TABLES:
            check(runner.get(key), Mapping, name, "runners[%d].%s" % (index, key))
        for section, keys in (("docker", _DOCKER_ARRAYS), ("kubernetes", _KUBERNETES_ARRAYS)):
            table = runner.get(section)
            if isinstance(table, Mapping):
                for key in keys:
                    check(table.get(key), list, name, "runners[%d].%s.%s" % (index, section, key))
    return out


def _fails(document, key_list):
    try:
        evaluate_document(document, key_list)
    except Exception:
        return True
    return False


def _evaluate_part(table, base, wrap, runner, prefix, path, key_list):
    """Findings for ``table`` (global settings or one runner) alone.

    Values that make the checks fail are found one key (or one key of a
    sub-table) at a time, reported as GR023 and left out; the rest is
    evaluated normally.
    """
    culprits = []
    for key, value in table.items():
        if key in base:
            continue
        if isinstance(value, Mapping):
            children = [(key, child) for child in value
                        if _fails(wrap(dict(base, **{key: {child: value[child]}})), key_list)]
            if children:
                culprits.extend(children)
                continue
        if _fails(wrap(dict(base, **{key: value})), key_list):
            culprits.append((key,))
    cleaned = dict(table)
    out = []
    for culprit in culprits:
        if len(culprit) == 1:
            cleaned.pop(culprit[0], None)
            value = table[culprit[0]]
        else:
            section = dict(cleaned[culprit[0]])
            value = section.pop(culprit[1])
            cleaned[culprit[0]] = section
        out.append(finding(
            "GR023", runner, _clip(prefix + ".".join(str(part) for part in culprit)),
            "value of an unexpected type (%s) that GitLab Runner cannot load; the other settings were "
            "checked without it" % _type_name(value)))
    try:
        out.extend(evaluate_document(wrap(cleaned), key_list))
    except Exception as exc:
        out.append(finding(
            "GR023", runner, _clip(prefix.rstrip(".")) or CONFIG_SETTING,
            "a value of an unexpected type (%s) that GitLab Runner cannot load; these settings were not checked"
            % type(exc).__name__))
    return out


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/gitlab-runner/config.toml"),
            system_id_path=dict(type="path"),
            salt=dict(type="str", default="", no_log=True),
            max_size=dict(type="int", default=1048576),
            acknowledged=dict(type="list", elements="dict"),
            acknowledgements_path=dict(type="path"),
            runner_version=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    if _toml is None:
        module.fail_json(msg=missing_required_lib("tomli"), exception=TOML_IMPORT_ERROR)

    path = module.params["path"]
    salt = module.params["salt"] or ""
    max_size = module.params["max_size"]
    if max_size is None or max_size < 1:
        module.fail_json(msg="max_size must be a positive number of bytes, got %r" % max_size)
    if 0 < len(salt) < 16:
        module.warn("salt is shorter than 16 characters: Ansible masks it wherever it appears in the result, "
                    "which can garble hashes; use a long random salt")
    system_id_path = module.params["system_id_path"] or os.path.join(os.path.dirname(path), ".runner_system_id")

    result = dict(changed=False, path=path, parsed=False, findings=[], runners=[], system_id_hash=None)
    try:
        choice = key_list_choice(module)
        result["key_list"] = key_list_summary(choice)
        result["runner_version"] = choice.runner_version
        if not choice.exact:
            module.warn(choice.text)
        result["findings"].append(finding("GR027", None, "config.toml keys (GR015)", choice.text))
        result["system_id_hash"] = read_system_id_hash(system_id_path, salt)
        try:
            text = read_config(path, max_size)
            document = parse_config(text)
        except ConfigFileError as exc:
            result["findings"].append(_file_finding(path, str(exc)))
        else:
            del text
            # Whatever happens next, Ansible masks these values in its output.
            for secret in secret_values(document):
                module.no_log_values.add(secret)
            result["parsed"] = True
            findings, runners = evaluate(document, path, choice.key_list)
            findings.extend(ssh_file_findings(runners))
            ack_path = module.params["acknowledgements_path"] or os.path.join(
                os.path.dirname(path), "hardened-acknowledgements.json")
            names = [runner.get("name") for runner in runners if isinstance(runner, Mapping)]
            result["findings"].extend(apply_acknowledgements(
                findings, module.params["acknowledged"], read_acknowledgements(module, ack_path), names))
            result["runners"] = runner_summaries(runners, salt)
    except Exception as exc:
        # No document content in the message: only the exception type and its
        # (clipped, token-masked) message, and Ansible masks no_log values on top.
        module.fail_json(msg="runner_config_audit could not audit %s: %s: %s"
                         % (path, type(exc).__name__, _clip(exc)))
    module.exit_json(**result)


def key_list_choice(module):
    """The key list for O(runner_version), else for the GitLab Runner installed on the host."""
    if (module.params["runner_version"] or "").strip():
        return select_key_list(module.params["runner_version"], "runner_version")
    version, dummy = runner_version(module)
    return select_key_list(version, "installed", "no GitLab Runner is installed")


def read_acknowledgements(module, path):
    """The exceptions the role's gate accepted on this host, or [] (bounded read)."""
    raw = read_head(path, ACK_LIMIT + 1)
    if raw is None:
        return []
    if len(raw) > ACK_LIMIT:
        module.warn("%s is larger than %d bytes; acknowledgements ignored" % (path, ACK_LIMIT))
        return []
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError:
        module.warn("%s is not valid JSON; acknowledgements ignored" % path)
        return []
    entries = data.get("acknowledged") if isinstance(data, dict) else None
    return entries if isinstance(entries, list) else []


def read_system_id_hash(path, salt):
    """Salted hash of the system id file's first line, or None."""
    data = read_head(path, SYSTEM_ID_LIMIT)
    if data is None:
        return None
    try:
        lines = data.decode("utf-8").strip().splitlines()
    except UnicodeDecodeError:
        return None
    value = lines[0].strip() if lines else ""
    if not value:
        return None
    return salted_hash(salt, value)


def main():
    run_module()


if __name__ == "__main__":
    main()
