"""The policy catalog: the one source of truth for what this collection
considers insecure in a GitLab Runner host, and the checks that find it.

Three consumers read it and must never disagree:

* the role's input gate (``hardened.gitlab_runner.runner_policy_gate`` filter)
  evaluates the configuration the user *wants*, on the controller, before any
  task touches the host, and refuses what is not acknowledged;
* the audit modules evaluate what is *actually* in a host's ``config.toml``
  with the same ``evaluate_document()``;
* the README's policy table is generated from ``CATALOG``
  (``scripts/policy_table.py``).

Findings never carry a token: evidence is built from names, keys and
non-secret values only.  Plain Python (3.9+), no Ansible imports, so it runs
on managed hosts too.
"""

from __future__ import annotations

import re
from collections import namedtuple

from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config_schema import (
    format_key_path,
    unknown_keys,
)

SEVERITIES = ("info", "low", "medium", "high", "critical")

# enforcement:
#   refuse - the gate refuses it unless the runner carries the acknowledgement
#            named in `ack` (never, when `ack` is None);
#   warn   - the gate lets it through with a warning;
#   audit  - a property of the host, checked by the audit modules only.
Policy = namedtuple("Policy", "id severity title guidance ack enforcement")

_SEC = "GitLab Runner docs, Security of running jobs"

_POLICIES = (
    Policy("GR001", "high", "Shell executor runs jobs with the runner host's permissions",
           _SEC + ": Usage of Shell executor", "trusted", "refuse"),
    Policy("GR002", "critical", "Docker executor runs job containers privileged",
           _SEC + ": Usage of Docker executor", "allow_privileged", "refuse"),
    Policy("GR003", "critical", "Docker executor runs service containers privileged",
           _SEC + ": Usage of Docker executor", "allow_privileged", "refuse"),
    Policy("GR004", "high", "Images or services are allowed to run privileged",
           _SEC + ": Usage of Docker executor", "allow_privileged", "refuse"),
    Policy("GR005", "medium", "Job containers get extra capabilities (cap_add)",
           _SEC + ": Usage of Docker executor (cap_add/cap_drop)", "allow_capabilities", "refuse"),
    Policy("GR006", "high", "Job containers keep SETUID, SETGID, NET_RAW or MKNOD",
           _SEC + ": Usage of Docker executor (drop SETUID and SETGID)", None, "refuse"),
    Policy("GR007", "medium", "Job containers may gain privileges (no no-new-privileges)",
           _SEC + ": Usage of Docker executor; CIS Docker Benchmark 5.25", None, "refuse"),
    Policy("GR008", "critical", "Job containers share a host namespace or run unconfined",
           _SEC + ": Usage of Docker executor; CIS Docker Benchmark 5.9, 5.15, 5.16, 5.21, 5.30", None, "refuse"),
    Policy("GR009", "critical", "A container runtime socket is mounted into jobs",
           _SEC + ": Systems with Docker installed; CIS Docker Benchmark 5.31", None, "refuse"),
    Policy("GR010", "high", "A host path is mounted into jobs",
           _SEC + ": Usage of Docker executor; CIS Docker Benchmark 5.5", "allow_host_volumes", "refuse"),
    Policy("GR011", "high", "Host devices are passed into jobs",
           _SEC + ": Usage of Docker executor; CIS Docker Benchmark 5.17", "allow_privileged", "refuse"),
    Policy("GR012", "high", "Pull policy if-not-present lets jobs use other projects' private images",
           _SEC + ": Usage of private Docker images with if-not-present pull policy", "trusted", "refuse"),
    Policy("GR013", "high", "SSH executor does not check the host key (MITM)",
           _SEC + ": Usage of SSH executor", None, "refuse"),
    Policy("GR014", "high", "Autoscaled machines are reused for more than one job",
           _SEC + ": Network Segmentation / Cloning a runner (MaxBuilds = 1)", None, "refuse"),
    Policy("GR015", "high", "config.toml holds a key GitLab Runner does not recognize (silently ignored)",
           "GitLab Runner docs, Advanced configuration", None, "refuse"),
    Policy("GR016", "medium", "Docker jobs share a network (FF_NETWORK_PER_BUILD off)",
           _SEC + ": Network Segmentation", None, "warn"),
    Policy("GR017", "low", "Job files are not cleaned up after jobs (FF_ENABLE_JOB_CLEANUP off)",
           _SEC + ": GIT_STRATEGY fetch on shared hosts", None, "warn"),
    Policy("GR018", "medium", "Metrics endpoint listens beyond loopback",
           "GitLab Runner docs, Monitoring (listen_address)", None, "warn"),
    Policy("GR019", "medium", "Interactive web terminal session server is enabled",
           "GitLab Runner docs, Advanced configuration ([session_server])", None, "warn"),
    Policy("GR020", "high", "config.toml or /etc/gitlab-runner is readable by others than root",
           _SEC + ": Cloning a runner", None, "audit"),
    Policy("GR021", "high", "The job user has sudo rights or is in a privileged group",
           _SEC + ": Usage of Shell executor; Systems with Docker installed", None, "audit"),
    Policy("GR022", "high", "The same runner token or system id is used on two hosts (cloned runner)",
           _SEC + ": Cloning a runner", None, "audit"),
    Policy("GR023", "high", "config.toml is missing, unreadable or not valid TOML",
           "GitLab Runner docs, Advanced configuration", None, "audit"),
    Policy("GR024", "medium", "The job user's home or builds directory is open to other users",
           _SEC + ": Usage of Shell executor", None, "audit"),
    Policy("GR025", "high", "A private SSH key is readable by the job user",
           _SEC + ": Usage of Shell executor", None, "audit"),
    Policy("GR026", "high", "The runner service runs shell jobs as root (no --user)",
           _SEC + ": Usage of Shell executor", None, "audit"),
    Policy("GR027", "info", "Installed GitLab Runner version",
           "GitLab Runner docs, Install GitLab Runner", None, "audit"),
)

CATALOG = dict((p.id, p) for p in _POLICIES)

# Capabilities every job container must drop.
REQUIRED_CAP_DROP = ("SETUID", "SETGID", "NET_RAW", "MKNOD")

_SOCKET = re.compile(r"(^|/)(docker|containerd|podman|crio|cri-dockerd)\.sock$|\.sock$")
_UNCONFINED = re.compile(r"^(seccomp|apparmor)[=:]unconfined$|^label[=:]disable$|^systempaths[=:]unconfined$")
_LOOPBACK = re.compile(r"^(127\.[0-9.]+|localhost|\[::1\])(:[0-9]+)?$")


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _truthy(value):
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"))


def finding(policy_id, runner, setting, evidence):
    """One finding for catalog policy ``policy_id``.

    ``runner`` is the runner's name (or None for host/global findings),
    ``setting`` where the problem is (a config key or a file path) and
    ``evidence`` a short text that must never contain a secret.  Raises
    KeyError for an id that is not in ``CATALOG``.
    """
    policy = CATALOG[policy_id]
    return dict((
        ("id", policy.id),
        ("severity", policy.severity),
        ("title", policy.title),
        ("guidance", policy.guidance),
        ("runner", runner),
        ("setting", setting),
        ("evidence", evidence),
        ("ack", policy.ack),
        ("enforcement", policy.enforcement),
    ))


# Internal name, kept for existing callers.


def _volume_source(spec):
    """Host side of a docker volume spec, or None for an anonymous/named volume."""
    parts = str(spec).split(":")
    if len(parts) >= 2 and parts[0].startswith("/"):
        return parts[0]
    return None


def _docker_findings(name, docker, flags):
    out = []
    where = "[runners.docker]"
    if _truthy(docker.get("privileged")):
        out.append(finding("GR002", name, where + " privileged", "privileged = true"))
    services_privileged = docker.get("services_privileged")
    # Unset, services follow `privileged`.
    if _truthy(services_privileged) or (services_privileged is None and _truthy(docker.get("privileged"))):
        out.append(finding("GR003", name, where + " services_privileged",
                            "services_privileged = %s" % ("true" if services_privileged is not None else "unset (follows privileged)")))
    for key in ("allowed_privileged_images", "allowed_privileged_services"):
        if _as_list(docker.get(key)):
            out.append(finding("GR004", name, "%s %s" % (where, key), "%s = %s" % (key, _as_list(docker.get(key)))))
    if _as_list(docker.get("cap_add")):
        out.append(finding("GR005", name, where + " cap_add", "cap_add = %s" % _as_list(docker.get("cap_add"))))
    drops = set(c.upper() for c in _as_list(docker.get("cap_drop")))
    if "ALL" not in drops:
        missing = [c for c in REQUIRED_CAP_DROP if c not in drops]
        if missing:
            out.append(finding("GR006", name, where + " cap_drop", "not dropped: %s" % ", ".join(missing)))
    security_opt = [str(o) for o in _as_list(docker.get("security_opt"))]
    if not any(o.replace("=", ":") in ("no-new-privileges", "no-new-privileges:true") for o in security_opt):
        out.append(finding("GR007", name, where + " security_opt", "security_opt = %s" % security_opt))
    for key in ("network_mode", "pid_mode", "ipcmode", "userns_mode", "uts_mode", "cgroupns_mode"):
        if str(docker.get(key, "")).lower() == "host":
            out.append(finding("GR008", name, "%s %s" % (where, key), '%s = "host"' % key))
    for opt in security_opt:
        if _UNCONFINED.match(opt):
            out.append(finding("GR008", name, where + " security_opt", "security_opt contains %s" % opt))
    for volume in _as_list(docker.get("volumes")) + _as_list(docker.get("volumes_from")):
        source = _volume_source(volume)
        if source is not None and _SOCKET.search(source):
            out.append(finding("GR009", name, where + " volumes", "volume %s" % volume))
        elif source is not None:
            out.append(finding("GR010", name, where + " volumes", "volume %s" % volume))
    for key in ("devices", "services_devices", "device_cgroup_rules", "gpus"):
        if docker.get(key):
            out.append(finding("GR011", name, "%s %s" % (where, key), "%s is set" % key))
    pulls = [str(p) for p in _as_list(docker.get("pull_policy")) + _as_list(docker.get("allowed_pull_policies"))]
    if "if-not-present" in pulls:
        out.append(finding("GR012", name, where + " pull_policy",
                            "pull_policy = %s, allowed_pull_policies = %s"
                            % (_as_list(docker.get("pull_policy")), _as_list(docker.get("allowed_pull_policies")))))
    if not _truthy(flags.get("FF_NETWORK_PER_BUILD")) and not docker.get("network_mode"):
        out.append(finding("GR016", name, "[runners.feature_flags] FF_NETWORK_PER_BUILD", "not enabled"))
    return out


def evaluate_runner(runner):
    """Findings for one ``[[runners]]`` table (a mapping, as parsed from TOML)."""
    name = str(runner.get("name", "(unnamed)"))
    executor = str(runner.get("executor", ""))
    flags = runner.get("feature_flags") or {}
    out = []
    if executor == "shell":
        out.append(finding("GR001", name, "executor", 'executor = "shell"'))
    if executor.startswith("docker") or executor == "docker-autoscaler":
        out.extend(_docker_findings(name, runner.get("docker") or {}, flags))
    if executor == "ssh":
        ssh = runner.get("ssh") or {}
        if _truthy(ssh.get("disable_strict_host_key_checking")):
            out.append(finding("GR013", name, "[runners.ssh] disable_strict_host_key_checking",
                                "disable_strict_host_key_checking = true"))
    if executor == "docker+machine":
        max_builds = (runner.get("machine") or {}).get("MaxBuilds", 0)
        if max_builds != 1:
            out.append(finding("GR014", name, "[runners.machine] MaxBuilds",
                                "MaxBuilds = %s" % (max_builds if max_builds else "0/unset (unlimited)")))
    if executor in ("docker-autoscaler", "instance"):
        max_use = (runner.get("autoscaler") or {}).get("max_use_count", 0)
        if max_use != 1:
            out.append(finding("GR014", name, "[runners.autoscaler] max_use_count",
                                "max_use_count = %s" % (max_use if max_use else "0/unset (unlimited)")))
    if executor and not _truthy(flags.get("FF_ENABLE_JOB_CLEANUP")):
        out.append(finding("GR017", name, "[runners.feature_flags] FF_ENABLE_JOB_CLEANUP", "not enabled"))
    return out


def evaluate_document(document):
    """Findings for a whole parsed ``config.toml`` document (global + runners)."""
    out = []
    listen = document.get("listen_address")
    if listen and not _LOOPBACK.match(str(listen)):
        out.append(finding("GR018", None, "listen_address", "listen_address = %s" % listen))
    session = document.get("session_server") or {}
    if session.get("listen_address"):
        out.append(finding("GR019", None, "[session_server] listen_address",
                            "listen_address = %s" % session.get("listen_address")))
    for path in unknown_keys(document):
        runner = None
        if len(path) > 1 and path[0] == "runners":
            try:
                runner = str(document["runners"][int(path[1])].get("name", "(unnamed)"))
            except (ValueError, IndexError, TypeError, AttributeError):
                runner = None
        out.append(finding("GR015", runner, format_key_path(path, document), "unrecognized key %r" % path[-1]))
    for runner in document.get("runners") or []:
        if hasattr(runner, "get"):
            out.extend(evaluate_runner(runner))
    return out


def severity_at_least(finding, threshold):
    return SEVERITIES.index(finding["severity"]) >= SEVERITIES.index(threshold)


def apply_acknowledgements(findings, acknowledged):
    """Mark findings the role accepted on purpose (its hardened-acknowledgements.json).

    ``acknowledged`` is a list of {"runner", "id", "reason"} as the role's gate
    records them. A matching finding is kept, but at severity ``info`` with its
    original severity and the reason in the evidence, so an accepted risk is
    visible without failing the audit. Unmatched findings are returned as they are.
    """
    accepted = {}
    for entry in acknowledged or []:
        if hasattr(entry, "get") and entry.get("id") in CATALOG:
            accepted[(entry.get("runner"), entry.get("id"))] = str(entry.get("reason") or "no reason recorded")
    out = []
    for item in findings:
        reason = accepted.get((item.get("runner"), item.get("id")))
        if reason is not None and CATALOG[item["id"]].ack is not None:
            item = dict(item)
            item["evidence"] = "ACKNOWLEDGED (%s; was %s): %s" % (reason, item["severity"], item["evidence"])
            item["severity"] = "info"
        out.append(item)
    return out
