"""Filters that turn the audit modules' results into reports.

``playbooks/audit.yml`` runs ``hardened.gitlab_runner.runner_config_audit``
and ``hardened.gitlab_runner.runner_host_audit`` on every runner host, then,
on the controller:

* ``audit_fleet_findings`` compares the salted token and system id hashes
  across hosts and returns GR022 (cloned runner) findings;
* ``audit_report`` assembles one report dict (findings per host, totals,
  pass/fail against a severity threshold);
* ``audit_junit`` and ``audit_markdown`` render that report as a JUnit XML
  test report (for GitLab CI) and a Markdown fleet summary.

No report carries a token or a hash: hashes are only ever compared here,
``audit_report`` keeps runner names and executors only, and any string in the
copied results that equals a hash seen in the input is replaced by
``[redacted]`` (defence in depth, should a module ever put one in evidence).

The filters never raise for malformed or partial results (a host that was
unreachable or whose module failed becomes an entry with an ``error``);
only an unknown severity threshold is refused.

Ansible 2.19 hands filters its own subclasses of the builtin types (tagged
strings, lazy containers), so input is classified with ``isinstance`` against
builtins and ``collections.abc`` interfaces and copied into plain types.
Standard library only. Documentation for ``ansible-doc`` lives in the sidecar
files ``audit_*.yml`` next to this file.
"""

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - used outside Ansible
    AnsibleFilterError = ValueError

from ansible_collections.hardened.gitlab_runner.plugins.module_utils.policy import (
    AUDIT_MODULES,
    CATALOG,
    SEVERITIES,
)

FINDING_KEYS = ("id", "severity", "title", "guidance", "runner", "setting", "evidence", "ack", "enforcement")
DEFAULT_THRESHOLD = "high"
CLONE_ID = "GR022"
REDACTED = "[redacted]"
# Keys that mark a mapping as one module result (registered task result).
_RESULT_KEYS = ("findings", "failed", "unreachable", "skipped", "msg", "runners", "changed")
# Hashes shorter than this are not redacted from text (they would match too much).
_MIN_REDACT = 16
_MODULE_LABELS = {
    "config": "runner_config_audit",
    "host": "runner_host_audit",
    "docker": "docker_daemon_audit",
    "network": "network_isolation_probe",
    "job": "runner_job_probe",
}
_COLLECTION_PREFIX = "hardened.gitlab_runner."
# Characters XML 1.0 cannot carry (even escaped), plus lone surrogates.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_MAX_ERROR = 1000


def _is_seq(value):
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def _text(value, redact=()):
    """Plain ``str`` for a scalar (None stays None), with known hashes removed."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value)
    for secret in redact:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _plain(value, redact=()):
    """Deep copy into builtin types (JSON-serializable), redacting hashes."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return int(value) if isinstance(value, int) else float(value)
    if isinstance(value, Mapping):
        return {_text(k, redact): _plain(v, redact) for k, v in value.items()}
    if _is_seq(value) or isinstance(value, (set, frozenset)):
        return [_plain(v, redact) for v in value]
    return _text(value, redact)


def _threshold(threshold):
    if threshold is None or (isinstance(threshold, str) and not threshold.strip()):
        return DEFAULT_THRESHOLD
    text = str(threshold).strip().lower()
    if text == "none":
        # Report only: no finding fails the run (errors still may, see fail_on_error).
        return text
    if text not in SEVERITIES:
        raise AnsibleFilterError(
            "audit_report: unknown severity threshold %r; use one of %s or none" % (str(threshold), ", ".join(SEVERITIES))
        )
    return text


def _rank(severity):
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES) - 1


def _catalog_finding(policy_id, runner, setting, evidence):
    policy = CATALOG[policy_id]
    return {
        "id": policy.id,
        "severity": policy.severity,
        "title": policy.title,
        "guidance": policy.guidance,
        "runner": runner,
        "setting": setting,
        "evidence": evidence,
        "ack": policy.ack,
        "enforcement": policy.enforcement,
    }


def _normalize_finding(finding, redact=()):
    """A finding with exactly FINDING_KEYS; gaps are filled from the catalog.

    A severity that is not one of SEVERITIES falls back to the catalog's, or
    to ``critical`` for an id the catalog does not know (fail closed).
    """
    if not isinstance(finding, Mapping):
        finding = {"evidence": finding}
    out = {key: _plain(finding.get(key), redact) for key in FINDING_KEYS}
    out["id"] = _text(out["id"]) if out["id"] is not None else "unknown"
    policy = CATALOG.get(out["id"])
    severity = str(out["severity"]).strip().lower() if out["severity"] is not None else ""
    if severity not in SEVERITIES:
        severity = policy.severity if policy else SEVERITIES[-1]
    out["severity"] = severity
    if policy:
        for key in ("title", "guidance", "ack", "enforcement"):
            if out[key] is None:
                out[key] = getattr(policy, key)
    if out["title"] is None:
        out["title"] = out["id"]
    return out


# --------------------------------------------------------------------------
# audit_fleet_findings


def _runner_name(runner, position):
    name = runner.get("name")
    if name is None or str(name) == "":
        index = runner.get("index", position)
        return "(unnamed runner #%s)" % index
    return str(name)


def _quoted(names):
    return ", ".join("'%s'" % n for n in names)


def audit_fleet_findings(hosts):
    """GR022 findings per host for runner tokens / system ids seen on more than one host.

    ``hosts`` maps an inventory host name to ``{"runners": [{"name", "token_hash", ...}],
    "system_id_hash": str or None}`` (what ``runner_config_audit`` returns; a
    failed result simply contributes nothing). Returns a mapping with every
    host of the input, each with a (possibly empty) list of findings.

    * A token hash present on two or more hosts gives, on each of them, one
      finding per runner that carries it; the evidence names the other
      host(s) and their runner name(s).
    * A system id hash present on two or more hosts gives one host-wide
      finding (runner None) on each of them, naming the other host(s).
    * The same token used by several runners of one host is not a clone
      (GitLab Runner lets several ``[[runners]]`` entries share a runner) and
      gives no finding.

    Hashes are compared but never copied into a finding.
    """
    if not isinstance(hosts, Mapping):
        hosts = {}
    names = sorted(str(h) for h in hosts)
    by_token = {}    # hash -> {host: [runner names]}
    by_system = {}   # hash -> [hosts]
    per_host = {}    # host -> [(runner name, hash)]
    for host in names:
        data = hosts.get(host)
        if data is None:
            # keys may be tagged subclasses of str; look them up by text
            data = next((v for k, v in hosts.items() if str(k) == host), None)
        if not isinstance(data, Mapping):
            data = {}
        runners = data.get("runners")
        pairs = []
        for position, runner in enumerate(runners if _is_seq(runners) else []):
            if not isinstance(runner, Mapping):
                continue
            token_hash = runner.get("token_hash")
            if token_hash is None or str(token_hash) == "":
                continue
            name = _runner_name(runner, position)
            pairs.append((name, str(token_hash)))
            by_token.setdefault(str(token_hash), {}).setdefault(host, []).append(name)
        per_host[host] = pairs
        system_hash = data.get("system_id_hash")
        if system_hash is not None and str(system_hash) != "":
            by_system.setdefault(str(system_hash), []).append(host)

    out = {}
    for host in names:
        findings = []
        for name, token_hash in per_host[host]:
            others = by_token[token_hash]
            elsewhere = [h for h in sorted(others) if h != host]
            if not elsewhere:
                continue
            where = "; ".join("host '%s' (runner %s)" % (h, _quoted(others[h])) for h in elsewhere)
            findings.append(_catalog_finding(
                CLONE_ID, name, "[[runners]] token",
                "the same runner token is also configured on %s" % where,
            ))
        for system_hash, system_hosts in sorted(by_system.items(), key=lambda item: item[1]):
            if host not in system_hosts:
                continue
            elsewhere = sorted(set(h for h in system_hosts if h != host))
            if elsewhere:
                findings.append(_catalog_finding(
                    CLONE_ID, None, "runner system id (.runner_system_id)",
                    "the same system id is also used on %s %s"
                    % ("host" if len(elsewhere) == 1 else "hosts", _quoted(elsewhere)),
                ))
        out[host] = findings
    return out


# --------------------------------------------------------------------------
# audit_report


def _module_label(key):
    """The module a key of a host's results names: config/host/docker/... or the module's (FQ) name."""
    key = str(key)
    if key.startswith(_COLLECTION_PREFIX):
        key = key[len(_COLLECTION_PREFIX):]
    return _MODULE_LABELS.get(key, key)


def _module_results(value):
    """[(label, result or None)] for one host's entry of ``hosts_results``."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        if not value:
            return []
        if any(key in value for key in _RESULT_KEYS):
            return [("audit", value)]
        return [(_module_label(k), v) for k, v in value.items()]
    if _is_seq(value):
        return [("audit module #%d" % (n + 1), v) for n, v in enumerate(value)]
    return [("audit", None)]


def _result_error(label, result):
    """Why ``result`` carries no audit data, or None when it does."""
    if not isinstance(result, Mapping) or not result:
        return "%s: no result (the module did not run on this host)" % label
    msg = result.get("msg")
    msg = " ".join(str(msg).split()) if msg not in (None, "") else ""
    if result.get("unreachable"):
        return "%s: host unreachable%s" % (label, (": " + msg) if msg else "")
    if result.get("skipped"):
        return "%s: skipped%s" % (label, (": " + msg) if msg else "")
    if result.get("failed"):
        return "%s: failed%s" % (label, (": " + msg) if msg else "")
    return None


def _collect_hashes(value, found):
    """Every token_hash / system_id_hash string anywhere in ``value``."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            scalar = not isinstance(item, Mapping) and not _is_seq(item)
            if str(key) in ("token_hash", "system_id_hash") and item is not None and scalar:
                text = str(item)
                if len(text) >= _MIN_REDACT:
                    found.add(text)
            else:
                _collect_hashes(item, found)
    elif _is_seq(value):
        for item in value:
            _collect_hashes(item, found)


def _lookup(mapping, key):
    if key in mapping:
        return mapping[key]
    for k, v in mapping.items():
        if str(k) == key:
            return v
    return None


def _counts(findings):
    counts = {severity: 0 for severity in SEVERITIES}
    for finding in findings:
        counts[finding["severity"]] += 1
    return counts


def _host_entry(value, fleet_findings, redact):
    findings, runners, errors, modules = [], [], [], {}
    runner_version, job_user, config_path = None, {}, None
    results = _module_results(value)
    if not results:
        errors.append("no audit result for this host (it was not audited)")
    for label, result in results:
        error = _result_error(label, result)
        modules[_text(label, redact)] = "failed" if error or modules.get(label) == "failed" else "ran"
        if error:
            errors.append(_text(error, redact))
            continue
        raw = result.get("findings")
        for finding in raw if _is_seq(raw) else []:
            findings.append(_normalize_finding(finding, redact))
        if "runners" in result and _is_seq(result.get("runners")):
            for position, runner in enumerate(result.get("runners")):
                if isinstance(runner, Mapping):
                    runners.append({
                        "name": _text(_runner_name(runner, position), redact),
                        "executor": _text(runner.get("executor"), redact),
                    })
        if result.get("path") is not None and "runners" in result:
            config_path = _text(result.get("path"), redact)
        if result.get("runner_version") is not None:
            runner_version = _text(result.get("runner_version"), redact)
        if "job_user" in result and result.get("job_user") is not None:
            user = result.get("job_user")
            job_user = _plain(user, redact) if isinstance(user, Mapping) else {"name": _text(user, redact)}
    for finding in fleet_findings if _is_seq(fleet_findings) else []:
        findings.append(_normalize_finding(finding, redact))
    error = "; ".join(errors) if errors else None
    if error and len(error) > _MAX_ERROR:
        error = error[:_MAX_ERROR] + "..."
    return {
        "findings": findings,
        "totals": _counts(findings),
        "runner_version": runner_version,
        "job_user": job_user,
        "runners": runners,
        "config_path": config_path,
        "modules": modules,
        "error": error,
    }


def audit_report(hosts_results, fleet=None, threshold=DEFAULT_THRESHOLD, fail_on_error=True):
    """Assemble the audit report.

    ``hosts_results`` maps a host name to its module results, either as
    ``{"config": <runner_config_audit result>, "host": <runner_host_audit
    result>}`` (any keys; ``config``/``host`` are named after their modules in
    error messages), as a list of results, or as one result mapping. A result
    that is missing, failed, skipped or unreachable becomes part of the host's
    ``error`` string; the other results of that host are still used.

    ``fleet`` is the output of ``audit_fleet_findings``; None computes it from
    ``hosts_results``. ``threshold`` is the lowest severity that fails the
    report. With ``fail_on_error`` (default) a host whose audit did not run
    completely also fails it: a gate must not pass what it could not check.

    Returns ``{"threshold", "hosts": {host: {"findings", "totals",
    "runner_version", "job_user", "runners": [{"name", "executor"}],
    "config_path", "modules", "error"}}, "totals": {severity: count},
    "errors": [hosts], "failing": int, "failed": bool}``, hosts sorted by
    name, without hashes. ``modules`` maps each audit module with a result
    for the host to ``ran`` or ``failed`` (by name: a key ``config``,
    ``host``, ``docker``, ``network`` or ``job`` stands for its module), so a
    report can tell the checks no module of the run evaluated there.
    """
    threshold = _threshold(threshold)
    if not isinstance(hosts_results, Mapping):
        hosts_results = {}
    hosts = sorted(set(str(h) for h in hosts_results))
    if fleet is None:
        fleet_input = {}
        for host in hosts:
            for _label, result in _module_results(_lookup(hosts_results, host)):
                if isinstance(result, Mapping) and "runners" in result and not _result_error("", result):
                    fleet_input[host] = result
        fleet = audit_fleet_findings(fleet_input)
    if not isinstance(fleet, Mapping):
        fleet = {}
    # Hosts that only the fleet knows about still get an (error) entry.
    hosts = sorted(set(hosts) | set(str(h) for h in fleet))

    redact = set()
    _collect_hashes(hosts_results, redact)
    redact = sorted(redact, key=len, reverse=True)

    entries = {}
    for host in hosts:
        entries[host] = _host_entry(_lookup(hosts_results, host), _lookup(fleet, host), redact)

    totals = {severity: 0 for severity in SEVERITIES}
    failing = 0
    limit = len(SEVERITIES) if threshold == "none" else SEVERITIES.index(threshold)
    for entry in entries.values():
        for finding in entry["findings"]:
            totals[finding["severity"]] += 1
            if _rank(finding["severity"]) >= limit:
                failing += 1
    errors = [host for host in hosts if entries[host]["error"]]
    return {
        "threshold": threshold,
        "hosts": entries,
        "totals": totals,
        "errors": errors,
        "failing": failing,
        "failed": bool(failing) or (bool(fail_on_error) and bool(errors)),
    }


# --------------------------------------------------------------------------
# Reading a report (robust to hand-made or partial input)


def _report_hosts(report):
    """[(host, findings, error or None, modules or None)], hosts sorted by name."""
    hosts = report.get("hosts") if isinstance(report, Mapping) else None
    if not isinstance(hosts, Mapping):
        return []
    out = []
    for host in sorted(hosts, key=str):
        entry = hosts[host]
        if not isinstance(entry, Mapping):
            entry = {"error": "no report entry for this host"}
        findings = entry.get("findings")
        findings = [_normalize_finding(f) for f in (findings if _is_seq(findings) else [])]
        error = entry.get("error")
        modules = entry.get("modules")
        modules = dict((_module_label(m), str(v)) for m, v in modules.items()) if isinstance(modules, Mapping) else None
        out.append((str(host), findings, _text(error) if error not in (None, "") else None, modules))
    return out


def _report_threshold(report):
    try:
        return _threshold(report.get("threshold") if isinstance(report, Mapping) else None)
    except AnsibleFilterError:
        return DEFAULT_THRESHOLD


# --------------------------------------------------------------------------
# audit_junit


def _xml(value):
    return _XML_INVALID.sub("\ufffd", "" if value is None else str(value))


def _failure_message(finding):
    parts = []
    if finding["runner"] not in (None, ""):
        parts.append("runner '%s'" % finding["runner"])
    if finding["setting"] not in (None, ""):
        parts.append(str(finding["setting"]))
    text = ", ".join(parts)
    evidence = finding["evidence"]
    if evidence not in (None, ""):
        text = "%s: %s" % (text, evidence) if text else str(evidence)
    return text or finding["title"]


def _unchecked(policy, modules, error):
    """Why ``policy`` shows no finding although it was not verified on the host, or None when it passed.

    ``modules`` is the report entry's {module: "ran" or "failed"} (None when
    the report does not say, or names a module this collection does not know).
    """
    if modules is None or policy is None:
        return "not verified: the audit could not run completely" if error else None
    if any(modules.get(name) == "ran" for name in policy.checked_by):
        return None
    failed = [name for name in policy.checked_by if name in modules]
    if failed:
        return "not verified: %s could not run completely" % " and ".join(failed)
    return "not checked by this audit: %s (which checks %s) did not run for this host" % (
        " or ".join(policy.checked_by), policy.id)


def audit_junit(report):
    """The report as a JUnit XML document (a string, no XML declaration).

    One ``<testsuite>`` per host; in it one ``<testcase>`` per catalog check
    (``classname="hardened.gitlab_runner.<host>"``, ``name="GRxxx <title>"``)
    with one ``<failure type="<severity>">`` per finding of that check at
    severity ``low`` or above. ``info`` findings (the runner version, the key
    list used, accepted exceptions) need no action: they go, one line each,
    into the case's ``<system-out>`` and leave it passing. A check that no
    audit module of this run evaluated on the host (the report entry's
    ``modules`` against the catalog's ``checked_by``, e.g. the Docker checks
    on a host without a Docker engine) is ``<skipped>``, not passed. A host
    with an ``error`` gets an extra testcase ``audit could not run`` holding
    an ``<error>``, and the checks without findings of the modules that
    failed (all of them, when the report does not say which modules ran)
    are ``<skipped>`` too: they were not verified. A finding whose id is not
    in the catalog gets a testcase of its own.
    """
    root = ET.Element("testsuites", {"name": "hardened.gitlab_runner audit"})
    known = set(AUDIT_MODULES)
    all_tests = all_failures = all_errors = all_skipped = 0
    for host, findings, error, modules in _report_hosts(report):
        suite = ET.SubElement(root, "testsuite", {"name": _xml(host)})
        classname = _xml("hardened.gitlab_runner.%s" % host)
        # Which modules ran: unknown when the report does not say, or names a module this collection does not know.
        if modules is not None and not set(modules) <= known:
            modules = None
        by_id = {}
        for finding in findings:
            by_id.setdefault(finding["id"], []).append(finding)
        ids = list(CATALOG) + sorted(i for i in by_id if i not in CATALOG)
        tests = failures = errors = skipped = 0
        for check_id in ids:
            policy = CATALOG.get(check_id)
            title = policy.title if policy else by_id[check_id][0]["title"]
            name = "%s %s" % (check_id, title) if title != check_id else check_id
            case = ET.SubElement(suite, "testcase", {"classname": classname, "name": _xml(name)})
            tests += 1
            found = by_id.get(check_id, [])
            for finding in found:
                if finding["severity"] == "info":
                    continue
                failure = ET.SubElement(case, "failure", {
                    "message": _xml(_failure_message(finding)),
                    "type": _xml(finding["severity"]),
                })
                failure.text = _xml(finding["guidance"] or "")
                failures += 1
            infos = [finding for finding in found if finding["severity"] == "info"]
            if infos:
                out = ET.SubElement(case, "system-out")
                out.text = _xml("\n".join("info: %s" % _failure_message(finding) for finding in infos))
            reason = None if found else _unchecked(policy, modules, error)
            if reason:
                ET.SubElement(case, "skipped", {"message": _xml(reason)})
                skipped += 1
        if error:
            case = ET.SubElement(suite, "testcase", {"classname": classname, "name": "audit could not run"})
            failure = ET.SubElement(case, "error", {"message": _xml(error), "type": "error"})
            failure.text = _xml(error)
            tests += 1
            errors += 1
        suite.set("tests", str(tests))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        suite.set("skipped", str(skipped))
        all_tests += tests
        all_failures += failures
        all_errors += errors
        all_skipped += skipped
    root.set("tests", str(all_tests))
    root.set("failures", str(all_failures))
    root.set("errors", str(all_errors))
    root.set("skipped", str(all_skipped))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


# --------------------------------------------------------------------------
# audit_markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def _md(value):
    """Text for a Markdown table cell: one line, punctuation escaped."""
    text = " ".join(_xml(value).split())
    return _MD_SPECIAL.sub(r"\\\1", text) if text else "-"


def _md_code(value, table=True):
    """A code span on one line (pipes escaped when it is in a GFM table cell)."""
    if value in (None, ""):
        return "-"
    text = " ".join(_xml(value).split())
    if table:
        text = text.replace("|", "\\|")
    if not text:
        return "-"
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or longest else ""
    return "%s%s%s%s%s" % (fence, pad, text, pad, fence)


def audit_markdown(report):
    """The report as a Markdown fleet summary.

    A totals table (one row per host, one column per severity from critical
    to info, plus a total row), the hosts whose audit could not run, then one
    section per severity from critical down to info listing every finding
    (host, runner, check, title, setting, evidence, guidance), or
    ``No findings.``
    """
    hosts = _report_hosts(report)
    threshold = _report_threshold(report)
    order = list(reversed(SEVERITIES))
    failed = report.get("failed") if isinstance(report, Mapping) else None
    lines = ["# GitLab Runner audit", ""]
    verdict = "FAILED" if failed else ("passed" if failed is not None else "unknown")
    lines.append("Result: **%s** (fails at severity %s and above; %d host(s))." % (verdict, threshold, len(hosts)))
    lines += ["", "## Totals", ""]
    lines.append("| Host | " + " | ".join(order) + " | Audit |")
    lines.append("| --- | " + " | ".join("---:" for _severity in order) + " | --- |")
    sums = {severity: 0 for severity in SEVERITIES}
    for host, findings, error, _modules in hosts:
        counts = _counts(findings)
        for severity in SEVERITIES:
            sums[severity] += counts[severity]
        lines.append("| %s | %s | %s |" % (
            _md_code(host), " | ".join(str(counts[s]) for s in order), "error" if error else "ok"))
    lines.append("| **Total** | %s | %d error(s) |" % (
        " | ".join("**%d**" % sums[s] for s in order), sum(1 for h in hosts if h[2])))
    errored = [(host, error) for host, _findings, error, _modules in hosts if error]
    if errored:
        lines += ["", "## Audit errors", ""]
        lines.append("These hosts could not be audited completely; checks without a finding there are not verified.")
        lines.append("")
        for host, error in errored:
            lines.append("- %s: %s" % (_md_code(host, table=False), _md_code(error, table=False)))
    for severity in order:
        lines += ["", "## %s" % severity.capitalize(), ""]
        rows = [(host, f) for host, findings, _error, _modules in hosts for f in findings if f["severity"] == severity]
        if not rows:
            lines.append("No findings.")
            continue
        lines.append("| Host | Runner | Check | Title | Setting | Evidence | Guidance |")
        lines.append("| --- | --- | --- | --- | --- | --- | --- |")
        for host, finding in rows:
            lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                _md_code(host),
                _md_code(finding["runner"]),
                _md(finding["id"]),
                _md(finding["title"]),
                _md_code(finding["setting"]),
                _md_code(finding["evidence"]),
                _md(finding["guidance"]),
            ))
    return "\n".join(lines) + "\n"


class FilterModule(object):
    def filters(self):
        return {
            "audit_fleet_findings": audit_fleet_findings,
            "audit_report": audit_report,
            "audit_junit": audit_junit,
            "audit_markdown": audit_markdown,
        }
