"""Tests for the audit report filters (plugins/filter/audit_report.py).

The inputs mimic registered results of runner_config_audit and
runner_host_audit. Every runner and system id carries a recognizable fake
hash, and every rendered output (report JSON, JUnit, Markdown) is searched
for them: no report may carry even a salted derivative of a token.
"""

import json
import re

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.gitlab_runner.plugins.filter.audit_report import (
    FINDING_KEYS,
    FilterModule,
    audit_fleet_findings,
    audit_junit,
    audit_markdown,
    audit_report,
)
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.policy import (
    CATALOG,
    SEVERITIES,
)


def fake_hash(label):
    """A 64-character lowercase hex string that is easy to recognize."""
    return ("feedface" + label.encode().hex() + "0" * 64)[:64]


SHARED_TOKEN = fake_hash("shared-token")
TOKEN_A2 = fake_hash("token-a2")
TOKEN_B2 = fake_hash("token-b2")
SYSTEM_A = fake_hash("system-a")
SYSTEM_B = fake_hash("system-b")
ALL_HASHES = (SHARED_TOKEN, TOKEN_A2, TOKEN_B2, SYSTEM_A, SYSTEM_B)


def finding(policy_id, runner=None, setting="setting", evidence="evidence"):
    policy = CATALOG[policy_id]
    return {
        "id": policy.id, "severity": policy.severity, "title": policy.title, "guidance": policy.guidance,
        "runner": runner, "setting": setting, "evidence": evidence, "ack": policy.ack,
        "enforcement": policy.enforcement,
    }


def runner(index, name, token_hash, executor="docker"):
    return {"index": index, "name": name, "executor": executor, "url": "https://gitlab.example.test/",
            "token_hash": token_hash}


def config_result(runners, system_id_hash, findings=()):
    return {"changed": False, "failed": False, "parsed": True, "path": "/etc/gitlab-runner/config.toml",
            "findings": list(findings), "runners": runners, "system_id_hash": system_id_hash}


def host_result(findings=(), version="18.2.1-1"):
    return {"changed": False, "findings": list(findings), "runner_version": version,
            "job_user": {"name": "gitlab-runner", "exists": True, "uid": 999, "groups": ["gitlab-runner"]},
            "sudo_rights": False}


def fleet_input(*hosts):
    """{host: {"runners": ..., "system_id_hash": ...}} from (host, runners, system id) triples."""
    return {host: {"runners": runners, "system_id_hash": system} for host, runners, system in hosts}


# --------------------------------------------------------------------------
# audit_fleet_findings


def test_shared_token_is_gr022_on_both_hosts_naming_the_other():
    fleet = audit_fleet_findings(fleet_input(
        ("alpha", [runner(0, "build", SHARED_TOKEN)], SYSTEM_A),
        ("beta", [runner(0, "deploy", SHARED_TOKEN)], SYSTEM_B),
    ))
    assert sorted(fleet) == ["alpha", "beta"]
    for host, other, name, other_name in (("alpha", "beta", "build", "deploy"), ("beta", "alpha", "deploy", "build")):
        assert len(fleet[host]) == 1
        found = fleet[host][0]
        assert list(found) == list(FINDING_KEYS)
        assert found["id"] == "GR022"
        assert found["severity"] == CATALOG["GR022"].severity
        assert found["title"] == CATALOG["GR022"].title
        assert found["guidance"] == CATALOG["GR022"].guidance
        assert found["enforcement"] == CATALOG["GR022"].enforcement
        assert found["runner"] == name
        assert "'%s'" % other in found["evidence"]
        assert "'%s'" % other_name in found["evidence"]
        assert SHARED_TOKEN not in json.dumps(found)


def test_shared_system_id_is_gr022_on_both_hosts():
    fleet = audit_fleet_findings(fleet_input(
        ("alpha", [runner(0, "build", TOKEN_A2)], SYSTEM_A),
        ("beta", [runner(0, "deploy", TOKEN_B2)], SYSTEM_A),
    ))
    for host, other in (("alpha", "beta"), ("beta", "alpha")):
        assert [f["id"] for f in fleet[host]] == ["GR022"]
        assert fleet[host][0]["runner"] is None
        assert "system id" in fleet[host][0]["evidence"]
        assert "'%s'" % other in fleet[host][0]["evidence"]
        assert SYSTEM_A not in json.dumps(fleet)


def test_distinct_hashes_give_no_findings():
    fleet = audit_fleet_findings(fleet_input(
        ("alpha", [runner(0, "build", TOKEN_A2)], SYSTEM_A),
        ("beta", [runner(0, "deploy", TOKEN_B2)], SYSTEM_B),
    ))
    assert fleet == {"alpha": [], "beta": []}


def test_same_token_twice_on_one_host_is_not_a_clone():
    fleet = audit_fleet_findings(fleet_input(
        ("alpha", [runner(0, "docker", SHARED_TOKEN), runner(1, "docker-large", SHARED_TOKEN)], SYSTEM_A),
        ("beta", [runner(0, "deploy", TOKEN_B2)], SYSTEM_B),
    ))
    assert fleet == {"alpha": [], "beta": []}


def test_token_on_two_runners_of_one_host_and_on_another_host():
    fleet = audit_fleet_findings(fleet_input(
        ("alpha", [runner(0, "one", SHARED_TOKEN), runner(1, "two", SHARED_TOKEN)], SYSTEM_A),
        ("beta", [runner(0, "deploy", SHARED_TOKEN)], SYSTEM_B),
    ))
    assert sorted(f["runner"] for f in fleet["alpha"]) == ["one", "two"]
    assert len(fleet["beta"]) == 1
    assert "'one', 'two'" in fleet["beta"][0]["evidence"]


def test_three_hosts_evidence_names_every_other_host():
    fleet = audit_fleet_findings(fleet_input(
        ("alpha", [runner(0, "a", SHARED_TOKEN)], SYSTEM_A),
        ("beta", [runner(0, "b", SHARED_TOKEN)], SYSTEM_A),
        ("gamma", [runner(0, "c", SHARED_TOKEN)], SYSTEM_A),
    ))
    token, system = fleet["alpha"]
    assert "'beta'" in token["evidence"] and "'gamma'" in token["evidence"]
    assert "'beta'" in system["evidence"] and "'gamma'" in system["evidence"]


@pytest.mark.parametrize("hosts", [
    None, [], {}, {"alpha": None}, {"alpha": "broken"}, {"alpha": {"runners": None}},
    {"alpha": {"runners": ["x", None, {"name": "no hash"}]}},
    {"alpha": {"failed": True, "msg": "boom"}},
])
def test_fleet_tolerates_missing_or_broken_input(hosts):
    fleet = audit_fleet_findings(hosts)
    assert all(v == [] for v in fleet.values())


def test_null_and_empty_hashes_never_match():
    fleet = audit_fleet_findings(fleet_input(
        ("alpha", [runner(0, "a", None), runner(1, "b", "")], None),
        ("beta", [runner(0, "c", None), runner(1, "d", "")], None),
    ))
    assert fleet == {"alpha": [], "beta": []}


# --------------------------------------------------------------------------
# audit_report

def two_host_results():
    """alpha and beta share a token and a system id; each has its own findings."""
    return {
        "alpha": {
            "config": config_result(
                [runner(0, "build", SHARED_TOKEN), runner(1, "other", TOKEN_A2, "shell")], SYSTEM_A,
                [finding("GR002", "build", "[runners.docker] privileged", "privileged = true"),
                 finding("GR001", "other", "executor", 'executor = "shell"'),
                 finding("GR017", "build", "[runners.feature_flags] FF_ENABLE_JOB_CLEANUP", "not enabled")]),
            "host": host_result([finding("GR027", None, "gitlab-runner", "18.2.1-1"),
                                 finding("GR024", None, "/home/gitlab-runner", "mode 0755")]),
        },
        "beta": {
            "config": config_result([runner(0, "deploy", SHARED_TOKEN)], SYSTEM_A,
                                    [finding("GR018", None, "listen_address", "listen_address = 0.0.0.0:9252")]),
            "host": host_result([finding("GR027", None, "gitlab-runner", "18.2.1-1")]),
        },
    }


def build(results, threshold="high", **kwargs):
    fleet = audit_fleet_findings({h: r.get("config") for h, r in results.items()})
    return audit_report(results, fleet, threshold, **kwargs)


def test_report_shape_and_no_hashes():
    report = build(two_host_results())
    assert report["threshold"] == "high"
    assert list(report["hosts"]) == ["alpha", "beta"]
    alpha = report["hosts"]["alpha"]
    assert alpha["runners"] == [{"name": "build", "executor": "docker"}, {"name": "other", "executor": "shell"}]
    assert alpha["runner_version"] == "18.2.1-1"
    assert alpha["job_user"]["name"] == "gitlab-runner"
    assert alpha["error"] is None
    ids = [f["id"] for f in alpha["findings"]]
    assert ids.count("GR022") == 2  # token (runner build) and system id
    assert sorted(ids) == sorted(["GR002", "GR001", "GR017", "GR027", "GR024", "GR022", "GR022"])
    assert all(list(f) == list(FINDING_KEYS) for h in report["hosts"].values() for f in h["findings"])
    assert report["totals"] == {"info": 2, "low": 1, "medium": 2, "high": 5, "critical": 1}
    assert alpha["totals"] == {"info": 1, "low": 1, "medium": 1, "high": 3, "critical": 1}
    text = json.dumps(report)
    for value in ALL_HASHES:
        assert value not in text
    assert "token_hash" not in text and "system_id_hash" not in text


def test_hash_in_module_evidence_is_redacted():
    results = two_host_results()
    results["alpha"]["config"]["findings"].append(
        finding("GR015", "build", "[[runners]] x", "value %s here" % SHARED_TOKEN))
    report = build(results)
    text = json.dumps(report) + audit_junit(report) + audit_markdown(report)
    for value in ALL_HASHES:
        assert value not in text
    assert "value [redacted] here" in json.dumps(report)


@pytest.mark.parametrize("threshold, failed", [
    ("critical", True), ("high", True), ("medium", True), ("low", True), ("info", True),
])
def test_threshold_with_a_critical_finding(threshold, failed):
    assert build(two_host_results(), threshold)["failed"] is failed


def only(findings_ids):
    return {"solo": {"config": config_result([], None, [finding(i) for i in findings_ids]), "host": host_result()}}


@pytest.mark.parametrize("ids, threshold, failed, failing", [
    ([], "info", False, 0),
    (["GR027"], "info", True, 1),
    (["GR027"], "low", False, 0),
    (["GR017"], "low", True, 1),
    (["GR017"], "medium", False, 0),
    (["GR016", "GR017"], "medium", True, 1),
    (["GR016", "GR017", "GR027"], "high", False, 0),
    (["GR001"], "high", True, 1),
    (["GR001", "GR010"], "critical", False, 0),
    (["GR002"], "critical", True, 1),
    (["GR002", "GR001", "GR016"], "medium", True, 3),
])
def test_threshold_logic(ids, threshold, failed, failing):
    report = build(only(ids), threshold)
    assert report["failed"] is failed
    assert report["failing"] == failing


@pytest.mark.parametrize("threshold, expected", [(None, "high"), ("", "high"), ("CRITICAL", "critical"), (" low ", "low")])
def test_threshold_default_and_normalization(threshold, expected):
    assert build(only([]), threshold)["threshold"] == expected


def test_unknown_threshold_is_refused():
    with pytest.raises(AnsibleFilterError, match="unknown severity threshold"):
        build(only([]), "severe")


def test_failed_module_becomes_an_error_entry_and_fails_the_gate():
    results = two_host_results()
    results["gamma"] = {
        "config": {"failed": True, "msg": "runner_config_audit could not audit /etc/gitlab-runner/config.toml"},
        "host": {"unreachable": True, "msg": "Failed to connect to the host via ssh"},
    }
    report = build(results, "critical")
    gamma = report["hosts"]["gamma"]
    assert gamma["findings"] == []
    assert gamma["runners"] == []
    assert "runner_config_audit: failed" in gamma["error"]
    assert "runner_host_audit: host unreachable" in gamma["error"]
    assert report["errors"] == ["gamma"]
    assert report["failed"] is True
    # Only errors, no finding at the threshold: fail_on_error decides.
    clean = {"gamma": results["gamma"]}
    assert build(clean, "critical")["failed"] is True
    assert build(clean, "critical", fail_on_error=False)["failed"] is False


def test_partial_result_keeps_the_working_module():
    results = two_host_results()
    results["beta"]["host"] = {"failed": True, "msg": "runner_host_audit failed: OSError: x"}
    beta = build(results)["hosts"]["beta"]
    assert "runner_host_audit: failed" in beta["error"]
    assert {f["id"] for f in beta["findings"]} == {"GR018", "GR022"}
    assert beta["runner_version"] is None


@pytest.mark.parametrize("value", [None, {}, [], "garbage", {"config": None, "host": None}])
def test_missing_results_become_errors(value):
    report = audit_report({"ghost": value}, None, "high")
    assert report["hosts"]["ghost"]["error"]
    assert report["hosts"]["ghost"]["findings"] == []
    assert report["failed"] is True


def test_fleet_none_is_computed_from_the_results():
    results = two_host_results()
    assert audit_report(results, None, "high") == build(results)


def test_report_tolerates_garbage():
    report = audit_report(None, None, None)
    assert report == {"threshold": "high", "hosts": {}, "totals": dict.fromkeys(SEVERITIES, 0),
                      "errors": [], "failing": 0, "failed": False}


def test_findings_are_normalized_from_the_catalog():
    results = {"solo": {"config": config_result([], None, [
        {"id": "GR009", "runner": "r", "evidence": "volume /var/run/docker.sock:/var/run/docker.sock"},
        {"id": "GR017", "severity": "bogus"},
        {"id": "GR999", "title": "made up"},
    ]), "host": host_result()}}
    findings = audit_report(results, {}, "high")["hosts"]["solo"]["findings"]
    assert findings[0]["severity"] == "critical" and findings[0]["title"] == CATALOG["GR009"].title
    assert findings[1]["severity"] == CATALOG["GR017"].severity
    assert findings[2]["severity"] == "critical"  # unknown id, no severity: fail closed


# --------------------------------------------------------------------------
# audit_junit


def suites_by_name(xml):
    return {suite.name: suite for suite in JUnitXml.fromstring(xml)}


def results_of(case, kind):
    return [r for r in case.result if isinstance(r, kind)]


NOT_RUN = ("docker_daemon_audit", "network_isolation_probe")  # two_host_results has config and host results


def test_junit_one_suite_per_host_one_case_per_check():
    report = build(two_host_results())
    xml = audit_junit(report)
    suites = suites_by_name(xml)
    assert sorted(suites) == ["alpha", "beta"]
    for host, suite in suites.items():
        cases = list(suite)
        assert len(cases) == len(CATALOG)
        assert [c.name.split(" ", 1)[0] for c in cases] == list(CATALOG)
        assert all(c.classname == "hardened.gitlab_runner.%s" % host for c in cases)
        failures = [f for c in cases for f in results_of(c, Failure)]
        actionable = [f for f in report["hosts"][host]["findings"] if f["severity"] != "info"]
        assert len(failures) == len(actionable)
        assert suite.tests == len(CATALOG)
        assert suite.failures == len(failures)
        assert suite.errors == 0
        by_case = {c.name.split(" ", 1)[0]: c for c in cases}
        for found in actionable:
            assert any(f.type == found["severity"] and f.text == found["guidance"]
                       and found["evidence"] in f.message for f in results_of(by_case[found["id"]], Failure))
        # An info finding (the runner version) is a passing case with its text in system-out.
        assert by_case["GR027"].is_passed
        assert by_case["GR027"].system_out == "info: gitlab-runner: 18.2.1-1"
        # The checks of modules that did not run are skipped, never passed.
        not_run = [p.id for p in CATALOG.values() if set(p.checked_by) <= set(NOT_RUN)]
        assert not_run == ["GR033", "GR034", "GR035", "GR036", "GR037", "GR038", "GR039", "GR040", "GR041",
                           "GR042", "GR043", "GR044", "GR045"]
        for check_id in not_run:
            (skip,) = results_of(by_case[check_id], Skipped)
            assert skip.message.startswith("not checked by this audit: ")
            assert CATALOG[check_id].checked_by[0] in skip.message
        assert suite.skipped == len(not_run)
    # Passing checks are plain passes.
    gr013 = next(c for c in suites["alpha"] if c.name.startswith("GR013 "))
    assert gr013.is_passed
    assert gr013.name == "GR013 " + CATALOG["GR013"].title


def test_report_says_which_modules_ran():
    results = two_host_results()
    results["beta"]["host"] = {"failed": True, "msg": "boom"}
    results["beta"]["docker"] = {"changed": False, "findings": []}
    report = build(results)
    assert report["hosts"]["alpha"]["modules"] == {"runner_config_audit": "ran", "runner_host_audit": "ran"}
    assert report["hosts"]["beta"]["modules"] == {"runner_config_audit": "ran", "runner_host_audit": "failed",
                                                  "docker_daemon_audit": "ran"}


def test_junit_only_info_findings_means_no_failures():
    """Acceptance: a host whose findings are all info (the version, the key list, accepted exceptions) has
    0 failures, and the info texts are in the cases' system-out."""
    acknowledged = finding("GR001", "build", "executor",
                           'ACKNOWLEDGED (trusted runner; was high): executor = "shell"')
    acknowledged["severity"] = "info"
    key_list = finding("GR027", None, "config.toml keys (GR015)",
                       "config.toml keys and feature flags are checked against the key list of GitLab Runner 18.5 "
                       "(v18.5.0), for GitLab Runner 18.5.0-1 (installed).")
    results = {"demo": {
        "config": config_result([runner(0, "build", TOKEN_A2, "shell")], SYSTEM_A, [acknowledged, key_list]),
        "host": host_result([finding("GR027", None, "gitlab-runner", "package gitlab-runner 18.5.0-1")]),
    }}
    report = build(results)
    assert report["failed"] is False and report["totals"]["info"] == 3
    xml = audit_junit(report)
    root = JUnitXml.fromstring(xml)
    assert '<testsuites name="hardened.gitlab_runner audit" tests="%d" failures="0" errors="0"' % len(CATALOG) in xml
    (suite,) = list(root)
    assert suite.failures == 0 and suite.errors == 0
    by_case = {c.name.split(" ", 1)[0]: c for c in suite}
    assert by_case["GR001"].is_passed
    assert by_case["GR001"].system_out == (
        "info: runner 'build', executor: ACKNOWLEDGED (trusted runner; was high): executor = \"shell\"")
    assert by_case["GR027"].is_passed
    assert by_case["GR027"].system_out.splitlines() == [
        "info: config.toml keys (GR015): " + key_list["evidence"],
        "info: gitlab-runner: package gitlab-runner 18.5.0-1",
    ]


def test_junit_info_and_actionable_findings_of_one_check():
    low = finding("GR017", "a", "[runners.feature_flags] FF_ENABLE_JOB_CLEANUP", "not enabled")
    info = dict(finding("GR017", "b", "[runners.feature_flags] FF_ENABLE_JOB_CLEANUP", "accepted"), severity="info")
    report = build({"h": {"config": config_result([], None, [low, info]), "host": host_result()}})
    case = next(c for c in suites_by_name(audit_junit(report))["h"] if c.name.startswith("GR017 "))
    (failure,) = results_of(case, Failure)
    assert failure.type == "low" and "runner 'a'" in failure.message
    assert case.system_out == "info: runner 'b', [runners.feature_flags] FF_ENABLE_JOB_CLEANUP: accepted"


def test_junit_docker_and_network_checks_pass_only_when_their_module_ran():
    results = two_host_results()
    results["alpha"]["docker"] = {"changed": False, "findings": [finding("GR035", None, "live-restore", "off")]}
    results["alpha"]["network"] = {"changed": False, "findings": []}
    suites = suites_by_name(audit_junit(build(results)))
    alpha = {c.name.split(" ", 1)[0]: c for c in suites["alpha"]}
    beta = {c.name.split(" ", 1)[0]: c for c in suites["beta"]}
    assert alpha["GR033"].is_passed and alpha["GR043"].is_passed
    assert results_of(alpha["GR035"], Failure)
    assert results_of(beta["GR033"], Skipped) and results_of(beta["GR043"], Skipped)
    assert suites["alpha"].skipped == 0


def test_junit_checks_of_a_failed_module_are_not_verified_the_others_pass():
    results = two_host_results()
    results["beta"]["host"] = {"failed": True, "msg": "runner_host_audit failed: OSError: x"}
    beta = {c.name.split(" ", 1)[0]: c for c in suites_by_name(audit_junit(build(results)))["beta"]}
    (skip,) = results_of(beta["GR020"], Skipped)
    assert skip.message == "not verified: runner_host_audit could not run completely"
    assert beta["GR013"].is_passed  # runner_config_audit ran
    assert results_of(beta["audit"], Error)  # the "audit could not run" case


def test_junit_report_without_modules_keeps_every_check():
    """A hand-made report that does not say which modules ran: no check is marked as not checked."""
    report = {"hosts": {"x": {"findings": [finding("GR001")]}}}
    suite = suites_by_name(audit_junit(report))["x"]
    assert suite.skipped == 0 and suite.failures == 1


def test_junit_failure_message_names_runner_setting_evidence():
    report = build(two_host_results())
    suite = suites_by_name(audit_junit(report))["alpha"]
    gr002 = next(c for c in suite if c.name.startswith("GR002 "))
    (failure,) = results_of(gr002, Failure)
    assert failure.message == "runner 'build', [runners.docker] privileged: privileged = true"
    assert failure.type == "critical"


def test_junit_error_host_gets_an_error_testcase():
    results = two_host_results()
    results["gamma"] = {"config": {"unreachable": True, "msg": "ssh: connect to host gamma"},
                        "host": {"unreachable": True, "msg": "ssh: connect to host gamma"}}
    report = build(results)
    suites = suites_by_name(audit_junit(report))
    assert sorted(suites) == ["alpha", "beta", "gamma"]
    gamma = suites["gamma"]
    cases = list(gamma)
    assert len(cases) == len(CATALOG) + 1
    error_cases = [c for c in cases if results_of(c, Error)]
    assert [c.name for c in error_cases] == ["audit could not run"]
    assert "unreachable" in results_of(error_cases[0], Error)[0].message
    assert gamma.errors == 1
    # Nothing was verified there: the checks are skipped, not passed.
    assert sum(1 for c in cases if results_of(c, Skipped)) == len(CATALOG)
    assert not any(c.is_passed for c in cases)
    assert len(list(suites["alpha"])) == len(CATALOG)


def test_junit_escapes_and_survives_hostile_text():
    hostile = 'a<b>&"c\' ]]> \x00\x1b\n--> \ud800 \u202e'
    results = {"host<&>": {"config": config_result([runner(0, hostile, TOKEN_A2)], None,
                                                   [finding("GR001", hostile, hostile, hostile)]),
                           "host": {"failed": True, "msg": hostile}}}
    report = build(results)
    xml = audit_junit(report)
    xml.encode("utf-8")  # no lone surrogates
    suites = suites_by_name(xml)
    suite = suites["host<&>"]
    gr001 = next(c for c in suite if c.name.startswith("GR001 "))
    (failure,) = results_of(gr001, Failure)
    assert 'a<b>&"c\'' in failure.message


@pytest.mark.parametrize("report", [None, {}, {"hosts": None}, {"hosts": {"x": None}}, {"hosts": {"x": {}}}])
def test_junit_tolerates_partial_reports(report):
    xml = audit_junit(report)
    JUnitXml.fromstring(xml)


def test_junit_unknown_check_id_gets_its_own_case():
    report = {"hosts": {"x": {"findings": [{"id": "GR999", "severity": "low", "title": "new check"}]}}}
    suite = suites_by_name(audit_junit(report))["x"]
    assert len(list(suite)) == len(CATALOG) + 1
    assert suite.failures == 1


# --------------------------------------------------------------------------
# audit_markdown


def test_markdown_lists_every_finding_and_host_in_severity_order():
    results = two_host_results()
    results["gamma"] = {"config": {"failed": True, "msg": "config broken"}, "host": None}
    report = build(results)
    text = audit_markdown(report)
    for host, entry in report["hosts"].items():
        assert host in text
        for found in entry["findings"]:
            assert found["id"] in text
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    severity_headings = [h for h in headings if h[3:].lower() in SEVERITIES]
    assert severity_headings == ["## Critical", "## High", "## Medium", "## Low", "## Info"]
    assert headings.index("## Totals") < headings.index("## Critical")
    # Each finding sits in its severity's section.
    sections = re.split(r"^## ", text, flags=re.M)
    by_title = {s.split("\n", 1)[0]: s for s in sections}
    for entry in report["hosts"].values():
        for found in entry["findings"]:
            assert "| %s |" % found["id"] in by_title[found["severity"].capitalize()]
    assert "config broken" in by_title["Audit errors"]
    assert "FAILED" in text


def test_markdown_totals_table():
    text = audit_markdown(build(two_host_results()))
    assert "| Host | critical | high | medium | low | info | Audit |" in text
    assert "| `alpha` | 1 | 3 | 1 | 1 | 1 | ok |" in text
    assert "| `beta` | 0 | 2 | 1 | 0 | 1 | ok |" in text
    assert "| **Total** | **1** | **5** | **2** | **1** | **2** | 0 error(s) |" in text


def test_markdown_no_findings():
    text = audit_markdown(build(only([])))
    assert text.count("No findings.") == len(SEVERITIES)
    assert "passed" in text


def test_markdown_cells_stay_on_one_row():
    hostile = "pipe | new\nline ` tick"
    report = build({"h": {"config": config_result([], None, [finding("GR001", hostile, hostile, hostile)]),
                          "host": host_result()}})
    text = audit_markdown(report)
    rows = [line for line in text.splitlines() if "GR001" in line]
    assert len(rows) == 1
    # 7 columns: 8 unescaped pipes.
    assert len(re.findall(r"(?<!\\)\|", rows[0])) == 8


@pytest.mark.parametrize("report", [None, {}, {"hosts": None}, {"hosts": {"x": None}}, {"threshold": "bogus"}])
def test_markdown_tolerates_partial_reports(report):
    assert audit_markdown(report).startswith("# GitLab Runner audit")


# --------------------------------------------------------------------------
# No hashes anywhere


def test_no_hash_in_any_output():
    results = two_host_results()
    results["gamma"] = {"config": config_result([runner(0, "x", TOKEN_B2)], SYSTEM_B), "host": {"failed": True, "msg": "x"}}
    report = build(results)
    outputs = {
        "report": json.dumps(report),
        "junit": audit_junit(report),
        "markdown": audit_markdown(report),
    }
    for name, text in outputs.items():
        for value in ALL_HASHES:
            assert value not in text, "%s carries a hash" % name
            assert value[:16] not in text, "%s carries part of a hash" % name


def test_filter_module_exports():
    assert set(FilterModule().filters()) == {"audit_fleet_findings", "audit_report", "audit_junit", "audit_markdown"}
