#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: network_isolation_probe
short_description: Prove from real job contexts that jobs cannot reach metadata endpoints or blocked hosts
version_added: "0.1.0"
description:
  - Tries real connections from the places jobs run and reports what got through as findings of this
    collection's policy catalog, in the same format as the audit modules.
  - "Contexts (O(contexts)): C(container) - a throwaway container on a job network: a fresh bridge
    network created for the probe and removed afterwards, as GitLab Runner creates one per job with
    C(FF_NETWORK_PER_BUILD) (O(job_network=per_build)), or an existing network such as C(bridge).
    C(shell_user) - a process on the host running as the shell executor's job user O(job_user): the
    module starts a Python child that sets the user's supplementary groups, gid and uid (and checks
    they held) before it connects, so host firewall rules matching the job user (C(meta skuid))
    apply to it as they apply to the user's jobs."
  - "Each attempt, with the timeout O(timeout): C(tcp) - a TCP connect (closed at once, nothing is
    sent); C(udp) - one datagram (a DNS query for the root's NS records to port 53, one zero byte
    elsewhere), then a wait for an answer or an ICMP error. A host name is resolved in the context
    (up to 4 of its addresses are tried); an IPv6 literal may be written with or without brackets."
  - "Outcomes, with the raw errno kept in RV(results): C(connected) (TCP handshake completed, or a UDP
    answer); C(refused) (C(ECONNREFUSED): a TCP reset or ICMP port unreachable came back);
    C(rejected) (C(EHOSTUNREACH), C(EACCES), C(EPERM) and similar: an ICMP administratively
    prohibited or host unreachable, a local reject, a prohibit route, or no neighbour answering);
    C(timeout) (no answer: dropped); C(no_route) (C(ENETUNREACH), C(EADDRNOTAVAIL), no IPv6 in the
    context); C(unresolved) (the name did not resolve); C(error) (anything else)."
  - "Findings: a blocked target (O(targets_blocked)) that is C(connected), or C(refused) while
    O(refused_means_reached) is on, is C(GR043) (critical) for a cloud metadata endpoint and C(GR044)
    (high) for any other blocked target. A blocked target with the outcome C(error) is reported as
    inconclusive, not as passed."
  - "Positive controls (O(targets_allowed), O(gitlab_url), O(dns_names)) must succeed: a TCP control
    must connect, a name must resolve. With O(require_positive_controls), each control that fails is
    C(GR045) (medium): either the firewall blocks what jobs need, or the context has no network and
    proves nothing. The blocked targets of that context that did not get through are then reported
    with RV(results[].status) C(inconclusive), and so are they when no control is given at all."
  - "Check mode: the module starts a throwaway container (and, for O(job_network=per_build), a
    throwaway network) or a throwaway process in both modes but changes no configuration; it always
    reports C(changed=false). Every container and network it starts is removed, also when a probe
    fails or times out; their names start with C(hgr-netprobe-)."
author:
  - hardened.gitlab_runner maintainers (@hardened)
options:
  targets_blocked:
    description:
      - Targets jobs must not reach.
      - "Unset: the metadata endpoints of every major cloud, IPv4 and IPv6: C(169.254.169.254:80)
        (AWS, Azure, GCP, OCI, OpenStack, Hetzner, DigitalOcean), C([fd00:ec2::254]:80) (AWS IPv6),
        C(100.100.100.200:80) (Alibaba Cloud), C(168.63.129.16:80) and C(168.63.129.16:32526)
        (Azure WireServer), C(192.0.0.192:80) (Oracle Cloud C@C). Port 53 of 169.254.169.254 is not in
        the list: on GCE it is the DNS resolver jobs need."
      - An empty list probes no blocked target.
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - A label for reports. Defaults to C(host:port/proto).
        type: str
      host:
        description:
          - IP address (IPv6 with or without brackets) or host name, resolved in the context.
        type: str
        required: true
      port:
        description:
          - Port to try.
        type: int
        required: true
      proto:
        description:
          - C(tcp) tries a connect; C(udp) sends one datagram and waits for an answer.
          - Without a firewall that answers, a UDP target that does not answer looks the same as a
            blocked one; prefer TCP targets.
        type: str
        choices: [tcp, udp]
        default: tcp
      expect:
        description:
          - What must happen. Only C(blocked) here; positive controls go in O(targets_allowed).
        type: str
        choices: [blocked]
        default: blocked
      kind:
        description:
          - C(metadata) reports reaching the target as C(GR043), C(internal) as C(GR044).
          - Unset, C(metadata) for the addresses in the default list, else C(internal).
        type: str
        choices: [metadata, internal]
  targets_allowed:
    description:
      - Positive controls jobs must reach (TCP), for example the GitLab instance or a package mirror.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - A label for reports. Defaults to C(host:port/tcp).
        type: str
      host:
        description:
          - IP address (IPv6 with or without brackets) or host name, resolved in the context.
        type: str
        required: true
      port:
        description:
          - Port to connect to.
        type: int
        required: true
  gitlab_url:
    description:
      - The GitLab instance's URL. Its host and port (443 for C(https), 80 for C(http) when not given)
        become a positive control named C(gitlab).
    type: str
  dns_names:
    description:
      - Names that must resolve in each context (positive control).
    type: list
    elements: str
    default: []
  require_positive_controls:
    description:
      - Report each failed positive control as C(GR045) and the blocked results of its context that
        did not get through as C(inconclusive).
      - When off, failed controls are only given in RV(results) and as warnings.
    type: bool
    default: true
  refused_means_reached:
    description:
      - Count C(refused) (C(ECONNREFUSED)) as reaching a blocked target. A TCP reset or ICMP port
        unreachable came back, normally from the target itself, so its address is reachable even if
        that port is closed.
      - A firewall that rejects with C(tcp reset) or ICMP port unreachable (nftables' default
        C(reject)) gives the same errno; reject with C(icmpx admin-prohibited) or drop, so the probe can
        tell a block from an answer, or turn this off.
    type: bool
    default: true
  contexts:
    description:
      - Where to probe from.
    type: list
    elements: str
    choices: [container, shell_user]
    default: [container]
  job_network:
    description:
      - For the C(container) context, C(per_build) (a fresh bridge network, removed afterwards) or the
        name of an existing Docker network to attach the probe container to (for example C(bridge)).
      - C(container:<name>) joins the network namespace of that container, as C(network_mode) does.
    type: str
    default: per_build
  image:
    description:
      - The image of the probe container, present on the Docker engine (it is never pulled); it needs
        C(python3) (3.6+).
    type: str
    default: hardened-gitlab-runner/probe:latest
  docker_host:
    description:
      - The Docker API to start the container on, as a Docker SDK C(base_url).
    type: str
    default: unix:///var/run/docker.sock
  job_user:
    description:
      - The user shell-executor jobs run as (the runner's C(--user)), for the C(shell_user) context.
      - A name or a numeric uid with a passwd entry on the host.
    type: str
    default: gitlab-runner
  timeout:
    description:
      - Seconds each connection attempt may take.
    type: float
    default: 3
notes:
  - The container runs with every capability dropped and C(no-new-privileges), as the image's user.
    Job containers' traffic is forwarded through the host, so the host's forward rules decide what it
    reaches whatever the container's user.
  - The C(shell_user) context needs root (C(become)) unless the module already runs as O(job_user).
  - A probe that cannot run (missing image, Docker unreachable, unknown job user, output that is not
    the probe's) fails the task, naming the context; the result still holds what the other contexts
    found.
  - "Safety: the module connects to the addresses it is given, from the managed host. The defaults are
    the clouds' metadata addresses; on a host in a cloud, a probe that gets through did reach that
    cloud's metadata service (a connect only, nothing is requested)."
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the target.
    support: full
    details: The module changes no configuration; it does the same in check mode (the throwaway
      containers, networks and processes it starts are removed again) and always reports
      C(changed=false).
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
    details: The module changes no configuration, so there is no difference to show.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
requirements:
  - The Docker SDK for Python (C(docker)) on the managed host, for the C(container) context
seealso:
  - module: hardened.gitlab_runner.runner_job_probe
  - module: hardened.gitlab_runner.docker_daemon_audit
"""

EXAMPLES = r"""
- name: Probe the metadata endpoints from a per-build job network and as the shell job user
  hardened.gitlab_runner.network_isolation_probe:
    contexts: [container, shell_user]
    gitlab_url: https://gitlab.example.com
    dns_names: [gitlab.example.com]
  become: true
  register: network_probe

- name: Fail on findings at medium or above
  ansible.builtin.assert:
    that:
      - network_probe.findings | selectattr('severity', 'in', ['medium', 'high', 'critical']) | list | length == 0
    fail_msg: "{{ network_probe.findings | selectattr('severity', 'in', ['medium', 'high', 'critical']) | list }}"

- name: Also expect the other runner hosts and a private range to be blocked
  hardened.gitlab_runner.network_isolation_probe:
    gitlab_url: https://gitlab.example.com:8443
    targets_blocked:
      - {name: metadata, host: 169.254.169.254, port: 80}
      - {name: metadata-ipv6, host: "[fd00:ec2::254]", port: 80}
      - {name: runner-2 ssh, host: 10.20.0.12, port: 22, kind: internal}
      - {name: database, host: db.internal.example.com, port: 5432}
    job_network: bridge
  register: network_probe

- name: Show every attempt that did not go as expected
  ansible.builtin.debug:
    msg: "{{ network_probe.results | rejectattr('status', 'equalto', 'pass') | list }}"
"""

RETURN = r"""
findings:
  description: Findings from the policy catalog (C(GR043), C(GR044), C(GR045)).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Catalog id.
      type: str
      sample: GR043
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
      description: Always null (the job network and job user are shared by the host's runners).
      type: str
    setting:
      description: "The context: C(probe: job container) or C(probe: shell job user <user>)."
      type: str
      sample: "probe: job container"
    evidence:
      description: What happened, with the target, the outcome, the errno and the time taken.
      type: str
      sample: "TCP connect to 169.254.169.254:80 (metadata-ipv4) succeeded in 0.004 s (network per-build)"
    ack:
      description: Always null.
      type: str
    enforcement:
      description: C(audit).
      type: str
results:
  description: One entry per context and target (and DNS name).
  returned: always
  type: list
  elements: dict
  contains:
    context:
      description: C(container) or C(shell_user).
      type: str
    name:
      description: The target's label, or the DNS name.
      type: str
      sample: metadata-ipv4
    host:
      description: The host as given (brackets of an IPv6 literal removed).
      type: str
      sample: fd00:ec2::254
    port:
      description: The port, null for a DNS name.
      type: int
    proto:
      description: C(tcp), C(udp) or C(dns).
      type: str
    expect:
      description: C(blocked), C(reachable) (positive control) or C(resolves) (DNS positive control).
      type: str
    kind:
      description: C(metadata), C(internal), C(control) or C(dns).
      type: str
    outcome:
      description: C(connected), C(refused), C(rejected), C(timeout), C(no_route), C(unresolved) or
        C(error) (for a DNS name C(resolved), C(unresolved) or C(timeout)); of several addresses, the
        one that got furthest.
      type: str
      sample: rejected
    errno:
      description: The raw errno name (or resolver error) of that attempt, null on success or timeout.
      type: str
      sample: EHOSTUNREACH
    elapsed:
      description: Seconds the attempt took.
      type: float
      sample: 0.0012
    address:
      description: The address of that attempt.
      type: str
    addresses:
      description: Every address the host resolved to in the context.
      type: list
      elements: str
    attempts:
      description: Every attempt (C(address), C(outcome), C(errno), C(elapsed)).
      type: list
      elements: dict
    status:
      description: C(pass), C(fail) or C(inconclusive).
      type: str
    note:
      description: Why a result is inconclusive, or null.
      type: str
contexts:
  description: One entry per context run.
  returned: always
  type: list
  elements: dict
  contains:
    context:
      description: C(container) or C(shell_user).
      type: str
    setting:
      description: The C(setting) its findings carry.
      type: str
    network:
      description: For C(container), the network the probe container was attached to.
      type: str
    per_build:
      description: Whether that network was created for the probe (and removed).
      type: bool
    identity:
      description: The uid, gid, groups and user name the probe ran as.
      type: dict
    positive_controls:
      description: C(pass), C(fail) or C(none) (no control given).
      type: str
    error:
      description: Why the probe could not run in this context, or null.
      type: str
"""

import ipaddress
import json
import os
import pwd
import re
import subprocess
import sys
import traceback
import uuid
from collections.abc import Mapping
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import docker
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:
    docker = None
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.hardened.gitlab_runner.plugins.module_utils.host_text import clip as _clip
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.net_probe_script import SCRIPT
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.policy import finding

DEFAULT_IMAGE = "hardened-gitlab-runner/probe:latest"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
NAME_PREFIX = "hgr-netprobe-"
LABEL = "hardened.gitlab_runner.netprobe"
OUTPUT_LIMIT = 1024 * 1024
MAX_ADDRESSES = 4
HOST_NAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9_.])?$")

# The metadata endpoints of the major clouds (DESIGN.md, "Security policy").
DEFAULT_BLOCKED = (
    dict(name="metadata-ipv4", host="169.254.169.254", port=80),
    dict(name="aws-metadata-ipv6", host="fd00:ec2::254", port=80),
    dict(name="alibaba-metadata", host="100.100.100.200", port=80),
    dict(name="azure-wireserver", host="168.63.129.16", port=80),
    dict(name="azure-wireserver-32526", host="168.63.129.16", port=32526),
    dict(name="oracle-cc", host="192.0.0.192", port=80),
)
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(t["host"]) for t in DEFAULT_BLOCKED)

# errno name -> outcome. Anything else is "error".
ERRNO_OUTCOMES = {
    "ECONNREFUSED": "refused",
    "EHOSTUNREACH": "rejected",
    "EACCES": "rejected",
    "EPERM": "rejected",
    "ENONET": "rejected",
    "EHOSTDOWN": "rejected",
    "ENOPROTOOPT": "rejected",
    "ECONNRESET": "refused",
    "ETIMEDOUT": "timeout",
    "ENETUNREACH": "no_route",
    "EADDRNOTAVAIL": "no_route",
    "EAFNOSUPPORT": "no_route",
    "EPROTONOSUPPORT": "no_route",
}
# How far an attempt got: of several addresses, the furthest one is the target's outcome.
REACH_ORDER = ("connected", "refused", "error", "timeout", "rejected", "no_route", "unresolved")
OUTCOME_TEXT = {
    "connected": "succeeded",
    "refused": "was refused (a TCP reset or ICMP port unreachable came back: packets reach the address)",
    "rejected": "was rejected",
    "timeout": "timed out",
    "no_route": "found no route",
    "unresolved": "did not resolve",
    "error": "failed",
}


class ProbeError(Exception):
    pass


# --- targets -------------------------------------------------------------------------------

def normalize_host(host):
    """A host as the socket API takes it: an IPv6 literal loses its brackets (and zone-less
    literals are written canonically), names are kept."""
    text = str(host or "").strip() if host is not None else ""
    bracketed = text.startswith("[") and text.endswith("]")
    if bracketed:
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
    if address is not None and (address.version == 6 or not bracketed):
        return str(address)
    if bracketed or not HOST_NAME.match(text):
        raise ProbeError("target host %r is not an address or a host name" % (host,))
    return text.lower()


def show(host, port, proto=None):
    """host:port, with an IPv6 literal in brackets, and /proto when given."""
    host = "[%s]" % host if ":" in host else host
    text = "%s:%s" % (host, port) if port is not None else host
    return "%s/%s" % (text, proto) if proto else text


def _is_metadata(host):
    try:
        return ipaddress.ip_address(host) in METADATA_ADDRESSES
    except ValueError:
        return False


def _port(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ProbeError("%s: port %r is not between 1 and 65535" % (what, value))
    return value


def gitlab_control(url):
    parts = urlsplit(str(url).strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProbeError("gitlab_url %r is not an http or https URL with a host" % (url,))
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ProbeError("gitlab_url %r has an invalid port" % (url,))
    return dict(name="gitlab", host=parts.hostname, port=port)


def build_targets(params):
    """Every target to try, in order: blocked ones, then positive controls."""
    blocked = params.get("targets_blocked")
    if blocked is None:
        blocked = [dict(t) for t in DEFAULT_BLOCKED]
    allowed = list(params.get("targets_allowed") or [])
    if params.get("gitlab_url"):
        allowed.append(gitlab_control(params["gitlab_url"]))
    targets = []
    for item, expect in [(t, "blocked") for t in blocked] + [(t, "reachable") for t in allowed]:
        if not isinstance(item, Mapping):
            raise ProbeError("target %r is not a dict" % (item,))
        host = normalize_host(item.get("host"))
        proto = item.get("proto") or "tcp"
        if proto not in ("tcp", "udp"):
            raise ProbeError("target %s: proto %r is not tcp or udp" % (host, proto))
        port = _port(item.get("port"), "target %s" % host)
        if expect == "blocked":
            kind = item.get("kind") or ("metadata" if _is_metadata(host) else "internal")
        else:
            kind, proto = "control", "tcp"
        targets.append(dict(index=len(targets), name=item.get("name") or show(host, port, proto), host=host,
                            port=port, proto=proto, expect=expect, kind=kind))
    return targets


def script_options(targets, params, user=None):
    return dict(user=user, timeout=params["timeout"], dns=list(params.get("dns_names") or []),
                targets=[dict(index=t["index"], host=t["host"], port=t["port"], proto=t["proto"]) for t in targets])


def time_budget(targets, params):
    """Seconds a whole probe run may take: every target's attempts run in parallel."""
    return params["timeout"] * (MAX_ADDRESSES + 1) + 15


# --- classification ---------------------------------------------------------------------------

def classify(attempt):
    """The outcome of one attempt as the probe program recorded it."""
    if attempt.get("ok"):
        return "connected"
    if attempt.get("timeout"):
        return "timeout"
    return ERRNO_OUTCOMES.get(attempt.get("errno"), "error")


def _rank(outcome):
    return REACH_ORDER.index(outcome) if outcome in REACH_ORDER else len(REACH_ORDER)


def target_result(target, raw):
    """The result row of one target from the program's raw record (None when it never answered)."""
    row = dict(name=target["name"], host=target["host"], port=target["port"], proto=target["proto"],
               expect=target["expect"], kind=target["kind"], outcome="error", errno=None, elapsed=None,
               address=None, addresses=[], attempts=[], status=None, note=None)
    raw = raw if isinstance(raw, Mapping) else {}
    if raw.get("hung"):
        row.update(outcome="timeout", note="the attempt did not finish within the probe's time budget")
    elif raw.get("crashed"):
        row["note"] = _clip(raw["crashed"], 200)
    elif raw.get("resolve"):
        res = raw["resolve"]
        row.update(outcome="timeout" if res.get("timeout") else "unresolved", errno=res.get("gai") or res.get("errno"),
                   elapsed=res.get("elapsed"), note=_clip(res.get("error") or "", 200) or None)
    elif not raw.get("attempts"):
        row["note"] = "the probe made no attempt"
    else:
        row["addresses"] = list(raw.get("addresses") or [])
        for attempt in raw["attempts"]:
            row["attempts"].append(dict(address=attempt.get("address"), outcome=classify(attempt),
                                        errno=attempt.get("errno"), elapsed=attempt.get("elapsed")))
        best = min(row["attempts"], key=lambda a: _rank(a["outcome"]))
        row.update(outcome=best["outcome"], errno=best["errno"], elapsed=best["elapsed"], address=best["address"])
        if best["outcome"] == "error":
            failed = [a for a in raw["attempts"] if a.get("address") == best["address"]]
            row["note"] = _clip((failed[0].get("error") if failed else None) or "unexpected error", 200)
    return row


def dns_result(raw, name):
    raw = raw if isinstance(raw, Mapping) else {}
    ok = bool(raw.get("ok"))
    if ok:
        outcome = "resolved"
    elif raw.get("hung") or raw.get("timeout"):
        outcome = "timeout"
    else:
        outcome = "unresolved"
    return dict(name=name, host=name, port=None, proto="dns", expect="resolves", kind="dns", outcome=outcome,
                errno=raw.get("gai") or raw.get("errno"), elapsed=raw.get("elapsed"),
                address=(raw.get("addresses") or [None])[0], addresses=list(raw.get("addresses") or []),
                attempts=[], status="pass" if ok else "fail",
                note=None if ok else _clip(raw.get("error") or raw.get("crashed") or "did not resolve", 200))


def _reached(row, refused_means_reached):
    return row["outcome"] == "connected" or (row["outcome"] == "refused" and refused_means_reached)


def _evidence(row, where):
    if row["proto"] == "dns":
        what = "name %s" % row["name"]
        happened = ("resolved to %s" % ", ".join(row["addresses"][:4]) if row["outcome"] == "resolved"
                    else "did not resolve" if row["outcome"] == "unresolved" else "resolution timed out")
    else:
        what = "%s %s to %s (%s)" % (row["proto"].upper(), "connect" if row["proto"] == "tcp" else "datagram",
                                     show(row["address"] or row["host"], row["port"]), row["name"])
        happened = OUTCOME_TEXT.get(row["outcome"], row["outcome"])
        if row["proto"] == "udp" and row["outcome"] == "connected":
            happened = "was answered"
    extra = [e for e in (row["errno"], "in %.3f s" % row["elapsed"] if row["elapsed"] is not None else None) if e]
    return "%s %s%s (%s)" % (what, happened, " (%s)" % ", ".join(extra) if extra else "", where)


def evaluate(context, output, targets, params):
    """Rows and findings of one context from the program's output."""
    setting, where = context["setting"], context["where"]
    raw_targets = list(output.get("targets") or [])
    raw_dns = list(output.get("dns") or [])
    rows, findings = [], []
    for i, target in enumerate(targets):
        row = target_result(target, raw_targets[i] if i < len(raw_targets) else None)
        if target["expect"] == "blocked":
            if _reached(row, params["refused_means_reached"]):
                row["status"] = "fail"
            elif row["outcome"] == "error":
                row["status"] = "inconclusive"
            else:
                row["status"] = "pass"
        else:
            row["status"] = "pass" if row["outcome"] == "connected" else "fail"
        rows.append(row)
    for i, name in enumerate(params.get("dns_names") or []):
        rows.append(dns_result(raw_dns[i] if i < len(raw_dns) else {"hung": True}, name))

    controls = [r for r in rows if r["expect"] != "blocked"]
    failed_controls = [r for r in controls if r["status"] == "fail"]
    context["positive_controls"] = "none" if not controls else "fail" if failed_controls else "pass"
    if params["require_positive_controls"] and context["positive_controls"] != "pass":
        note = ("no positive control was given: a context without network looks the same"
                if not controls else "positive control failed (%s): a context without network looks the same"
                % ", ".join(r["name"] for r in failed_controls))
        for row in rows:
            if row["expect"] == "blocked" and row["status"] == "pass":
                row.update(status="inconclusive", note=note)

    for row in rows:
        row["context"] = context["context"]
        if row["status"] != "fail":
            continue
        if row["expect"] == "blocked":
            findings.append(finding("GR043" if row["kind"] == "metadata" else "GR044", None, setting,
                                    _evidence(row, where)))
        elif params["require_positive_controls"]:
            blocked = [r for r in rows if r["expect"] == "blocked" and r["status"] == "inconclusive"]
            findings.append(finding("GR045", None, setting, _evidence(row, where) + (
                "; %d blocked result(s) of this context are inconclusive" % len(blocked) if blocked else "")))
    return rows, findings


# --- running the program -----------------------------------------------------------------------

def parse_output(stdout):
    """The JSON object on the last non-empty line of the program's stdout."""
    text = stdout.decode("utf-8", "replace") if isinstance(stdout, bytes) else str(stdout or "")
    lines = [line for line in text[-OUTPUT_LIMIT:].splitlines() if line.strip()]
    if not lines:
        raise ProbeError("the probe printed nothing")
    try:
        data = json.loads(lines[-1])
    except ValueError:
        raise ProbeError("the probe's output is not JSON: %s" % _clip(lines[-1], 120))
    if not isinstance(data, dict) or data.get("version") != 1:
        raise ProbeError("the probe's output is not from this module's probe program")
    if data.get("drop_error"):
        raise ProbeError("the probe could not become %s: %s" % (data.get("user"), _clip(data["drop_error"], 200)))
    return data


def _not_found(exc):
    return getattr(exc, "status_code", None) == 404 or type(exc).__name__ in ("NotFound", "ImageNotFound")


def run_container(api, image, name, network, options, timeout):
    """Start the probe container, wait, read its output and remove it (always)."""
    container = None
    error = None
    host_config = {"NetworkMode": network, "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges:true"]}
    try:
        try:
            created = api.create_container(
                image=image, name=name, entrypoint=["python3", "-I", "-c", SCRIPT], command=[json.dumps(options)],
                host_config=host_config, labels={LABEL: "1"}, network_disabled=False)
        except Exception:
            # Docker may have created it before the call failed: remove it by name.
            container = name
            raise
        container = created.get("Id") or name
        api.start(container)
        state = api.wait(container, timeout=timeout)
        code = state.get("StatusCode") if isinstance(state, Mapping) else state
        stdout = api.logs(container, stdout=True, stderr=False)
        if code != 0:
            stderr = api.logs(container, stdout=False, stderr=True)
            text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else str(stderr)
            raise ProbeError("the probe exited with %s: %s" % (code, _clip("".join(text.strip().splitlines()[-1:]))))
        return parse_output(stdout)
    except ProbeError:
        raise
    except Exception as exc:
        error = exc
        raise ProbeError("%s: %s" % (type(exc).__name__, _clip(exc)))
    finally:
        if container is not None:
            try:
                api.remove_container(container, v=True, force=True)
            except Exception as exc:
                if not (error is not None and _not_found(exc)):
                    raise ProbeError("container %s could not be removed: %s%s" % (
                        name, _clip(exc), "; after: %s" % _clip(error) if error is not None else ""))


def probe_container(api, params, targets, token):
    """The container context: returns (context, output)."""
    per_build = params["job_network"] == "per_build"
    network = NAME_PREFIX + token + "-net" if per_build else params["job_network"]
    context = dict(context="container", setting="probe: job container", network=network, per_build=per_build,
                   where="job container on %s" % ("a per-build network" if per_build else "network %s" % network),
                   identity=None, positive_controls=None, error=None)
    created = False
    output = None
    try:
        if per_build:
            api.create_network(network, driver="bridge", labels={LABEL: "1"})
            created = True
        elif network not in ("bridge", "host", "none") and not network.startswith("container:"):
            try:
                api.inspect_network(network)
            except Exception as exc:
                if _not_found(exc):
                    raise ProbeError("Docker network %s does not exist (job_network)" % network)
                raise
        output = run_container(api, params["image"], NAME_PREFIX + token, network,
                               script_options(targets, params), time_budget(targets, params) + 30)
    except ProbeError as exc:
        context["error"] = str(exc)
    except Exception as exc:
        context["error"] = "%s: %s" % (type(exc).__name__, _clip(exc))
    finally:
        if created:
            try:
                api.remove_network(network)
            except Exception as exc:
                problem = "network %s could not be removed: %s" % (network, _clip(exc))
                context["error"] = "; ".join(e for e in (context["error"], problem) if e)
                output = None
    return context, output


def _run(args, timeout):
    return subprocess.run(args, capture_output=True, timeout=timeout, cwd="/", env={
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}, check=False)


def probe_shell_user(params, targets, runner=None, python=None):
    """The shell_user context: the program runs on this host as the job user. Returns (context, output)."""
    runner = runner or _run
    user = params["job_user"]
    context = dict(context="shell_user", setting="probe: shell job user %s" % user, network=None, per_build=False,
                   where="process of the shell job user %s" % user, identity=None, positive_controls=None, error=None)
    try:
        entry = pwd.getpwuid(int(user)) if str(user).isdigit() else pwd.getpwnam(user)
    except (KeyError, ValueError):
        context["error"] = "the job user %s does not exist on this host" % user
        return context, None
    if os.geteuid() not in (0, entry.pw_uid):
        context["error"] = ("running as uid %d, the probe cannot act as the job user %s: run the module as root "
                            "(become: true)" % (os.geteuid(), user))
        return context, None
    args = [python or sys.executable, "-I", "-c", SCRIPT, json.dumps(script_options(targets, params, user=user))]
    budget = time_budget(targets, params) + 15
    try:
        proc = runner(args, budget)
        if proc.returncode != 0:
            text = proc.stderr.decode("utf-8", "replace") if isinstance(proc.stderr, bytes) else str(proc.stderr)
            last_line = "".join(text.strip().splitlines()[-1:])
            raise ProbeError("the probe exited with %s: %s" % (proc.returncode, _clip(last_line)))
        return context, parse_output(proc.stdout)
    except subprocess.TimeoutExpired:
        context["error"] = "the probe did not finish within %d s" % budget
    except ProbeError as exc:
        context["error"] = str(exc)
    except Exception as exc:
        context["error"] = "%s: %s" % (type(exc).__name__, _clip(exc))
    return context, None


def _connect(client_factory, params):
    base_url = params["docker_host"]
    try:
        client = client_factory(base_url, 60)
        client.ping()
    except Exception as exc:
        raise ProbeError("the Docker API at %s did not answer: %s" % (base_url, _clip(exc)))
    try:
        client.api.inspect_image(params["image"])
    except Exception as exc:
        client.close()
        if _not_found(exc):
            raise ProbeError("probe image %s is not on the Docker engine at %s (it is never pulled)"
                             % (params["image"], base_url))
        raise ProbeError("probe image %s cannot be inspected: %s" % (params["image"], _clip(exc)))
    return client


def run(params, client_factory=None, shell_runner=None):
    """Probe every context; returns the result dict (without changed)."""
    targets = build_targets(params)
    result = dict(findings=[], results=[], contexts=[])
    for name in params["contexts"]:
        if name == "container":
            client = None
            try:
                client = _connect(client_factory, params)
                context, output = probe_container(client.api, params, targets, uuid.uuid4().hex[:10])
            except ProbeError as exc:
                context, output = dict(context="container", setting="probe: job container", network=None,
                                       per_build=params["job_network"] == "per_build", where="job container",
                                       identity=None, positive_controls=None, error=str(exc)), None
            finally:
                if client is not None:
                    try:
                        client.close()
                    except Exception:
                        pass
        else:
            context, output = probe_shell_user(params, targets, runner=shell_runner)
        if output is not None:
            context["identity"] = output.get("identity")
            rows, findings = evaluate(context, output, targets, params)
            result["results"].extend(rows)
            result["findings"].extend(findings)
        context.pop("where", None)
        result["contexts"].append(context)
    return result


def _client_factory(base_url, timeout):
    return docker.DockerClient(base_url=base_url, timeout=timeout)


def run_module():
    target_options = dict(name=dict(type="str"), host=dict(type="str", required=True),
                          port=dict(type="int", required=True))
    module = AnsibleModule(
        argument_spec=dict(
            targets_blocked=dict(type="list", elements="dict", options=dict(
                target_options, proto=dict(type="str", choices=["tcp", "udp"], default="tcp"),
                expect=dict(type="str", choices=["blocked"], default="blocked"),
                kind=dict(type="str", choices=["metadata", "internal"]))),
            targets_allowed=dict(type="list", elements="dict", default=[], options=target_options),
            gitlab_url=dict(type="str"),
            dns_names=dict(type="list", elements="str", default=[]),
            require_positive_controls=dict(type="bool", default=True),
            refused_means_reached=dict(type="bool", default=True),
            contexts=dict(type="list", elements="str", choices=["container", "shell_user"], default=["container"]),
            job_network=dict(type="str", default="per_build"),
            image=dict(type="str", default=DEFAULT_IMAGE),
            docker_host=dict(type="str", default=DEFAULT_DOCKER_HOST),
            job_user=dict(type="str", default="gitlab-runner"),
            timeout=dict(type="float", default=3),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if not params["contexts"]:
        module.fail_json(msg="contexts must name at least one context", changed=False)
    if not 0 < params["timeout"] <= 60:
        module.fail_json(msg="timeout must be more than 0 and at most 60 seconds, got %s" % params["timeout"],
                         changed=False)
    if "container" in params["contexts"] and not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"), exception=DOCKER_IMPORT_ERROR)
    params = dict(params, contexts=list(dict.fromkeys(params["contexts"])))
    try:
        result = run(params, _client_factory)
    except ProbeError as exc:
        module.fail_json(msg=str(exc), changed=False)
    except Exception as exc:
        module.fail_json(msg="network_isolation_probe failed: %s: %s" % (type(exc).__name__, _clip(exc)),
                         changed=False)
    if params["require_positive_controls"] and not any(r["expect"] != "blocked" for r in result["results"]):
        module.warn("no positive control (gitlab_url, targets_allowed, dns_names) was given: a job context without "
                    "network would pass every blocked target, so those results are inconclusive")
    if not params["require_positive_controls"]:
        for row in result["results"]:
            if row["expect"] != "blocked" and row["status"] == "fail":
                module.warn("positive control %s failed in the %s context: %s"
                            % (row["name"], row["context"], row["outcome"]))
    failed = [c for c in result["contexts"] if c["error"]]
    if failed:
        module.fail_json(msg="the probe could not run in: %s" % "; ".join(
            "%s context: %s" % (c["context"], c["error"]) for c in failed), changed=False, **result)
    module.exit_json(changed=False, **result)


def main():
    run_module()


if __name__ == "__main__":
    main()
