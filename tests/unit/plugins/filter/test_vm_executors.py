"""The virtualbox and parallels executors: what jobs may pick as their VM, and the sections the role writes.

From GitLab Runner's source (executors/vm/vm.go, GetBaseName and
ValidateAllowedImages): with ``allowed_images`` empty, a job's ``image:`` is
ignored and ``base_name`` is used; with it set, a job may name any VM the
runner's user can see whose name one entry *finds* (Go regexp MatchString,
unanchored), and the runner clones that VM for the job (a snapshot of it,
then a linked clone). Only entries that spell out whole VM names keep that
choice to the VMs meant for jobs.
"""

import tomllib

import pytest

from ansible_collections.hardened.gitlab_runner.plugins.filter.runner_config import runner_policy_gate, toml_document
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.policy import (
    CATALOG,
    severity_at_least,
    whole_vm_name_pattern,
)
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config import build_document

from ansible_collections.hardened.gitlab_runner.tests.unit.plugins.filter.test_policy_cases import (
    audit_findings,
    written_straight,
)
from ansible_collections.hardened.gitlab_runner.tests.unit.plugins.filter.test_policy_gate import DEFAULTS, SETTINGS, TOKEN
from ansible_collections.hardened.gitlab_runner.tests.unit.plugins.filter.test_ssh_known_hosts import ED25519

PIN = "10.211.55.* ssh-ed25519 " + ED25519


def VM(executor="virtualbox", **section):
    section.setdefault("base_name", "ci-template")
    return {"name": "r1", "url": "https://gitlab.example.test", "token": TOKEN, "executor": executor,
            "ssh": {"user": "ci"}, "ssh_known_hosts": [PIN], executor: section}


LOOSE = [
    ("unanchored_word", ["ubuntu"]),
    ("start_only", ["^ubuntu"]),
    ("end_only", ["ubuntu$"]),
    ("everything", [".*"]),
    ("anchored_everything", ["^.*$"]),
    ("anchored_prefix", ["^ubuntu-.*$"]),
    ("top_level_alternation", ["^ubuntu|debian$"]),
    ("character_class", ["^ci-[0-9]+$"]),
    ("plus", ["^ci-1+$"]),
    ("question_mark", ["^ci-1?$"]),
    ("repeat", ["^ci-1{2}$"]),
    ("flags", ["(?i)^ubuntu$"]),
    ("class_escape", ["^ubuntu\\w$"]),
    ("escaped_dollar_is_no_anchor", ["^ubuntu\\$"]),
    ("empty_entry", [""]),
    ("one_loose_among_exact", ["^ubuntu-24\\.04$", "debian"]),
    ("a_string_not_a_list", "ubuntu"),
    ("unbalanced", ["^(ubuntu$"]),
]

EXACT = [
    ("empty_list", []),
    ("one_name", ["^ubuntu-24\\.04$"]),
    ("alternatives", ["^(ubuntu-24\\.04|debian-12)$"]),
    ("non_capturing", ["^(?:macos-14|macos-15)$"]),
    ("text_anchors", ["\\Aci-template\\z"]),
    ("escaped_punctuation", ["^ci\\-template\\.v2$"]),
    ("space_in_name", ["^CI template$"]),
    ("several", ["^a$", "^(b|c)$"]),
]


@pytest.mark.parametrize("case,patterns", LOOSE, ids=[c[0] for c in LOOSE])
def test_patterns_that_find_more_than_whole_names_are_loose(case, patterns):
    entries = [patterns] if isinstance(patterns, str) else patterns
    assert not all(whole_vm_name_pattern(p) for p in entries), case


@pytest.mark.parametrize("case,patterns", EXACT, ids=[c[0] for c in EXACT])
def test_patterns_that_spell_out_whole_names_are_exact(case, patterns):
    assert all(whole_vm_name_pattern(p) for p in patterns), case


@pytest.mark.parametrize("executor", ["virtualbox", "parallels"])
@pytest.mark.parametrize("case,patterns", LOOSE, ids=[c[0] for c in LOOSE])
def test_a_loose_allowed_images_is_refused_and_audited(executor, case, patterns):
    given = VM(executor, allowed_images=patterns)
    result = runner_policy_gate([given], SETTINGS, DEFAULTS, None)
    refused = [r for r in result["refusals"] if " - GR048 " in r]
    assert refused, (case, result["refusals"])
    assert "[runners.%s] allowed_images" % executor in refused[0] and "trusted: true" in refused[0]
    findings = audit_findings(written_straight(given, None, None))
    assert [f for f in findings if f["id"] == "GR048" and severity_at_least(f, "high")], findings


@pytest.mark.parametrize("executor", ["virtualbox", "parallels"])
@pytest.mark.parametrize("case,patterns", EXACT, ids=[c[0] for c in EXACT])
def test_whole_vm_names_pass_the_gate_and_the_audit(executor, case, patterns):
    given = VM(executor, allowed_images=patterns)
    result = runner_policy_gate([given], SETTINGS, DEFAULTS, None)
    assert result["errors"] == [] and result["refusals"] == [] and result["warnings"] == [], result
    assert [f for f in audit_findings(written_straight(given, None, None)) if severity_at_least(f, "medium")] == []


def test_a_trusted_runner_may_let_jobs_choose_and_the_exception_is_recorded():
    given = dict(VM(allowed_images=[".*"]), trusted=True)
    result = runner_policy_gate([given], SETTINGS, DEFAULTS, None)
    assert result["refusals"] == []
    assert [(a["id"], a["setting"]) for a in result["acknowledged"]] == [("GR048", "[runners.virtualbox] allowed_images")]
    policy = CATALOG["GR048"]
    assert (policy.severity, policy.ack, policy.enforcement) == ("high", "trusted", "refuse")


def test_the_key_is_read_in_any_case_as_gitlab_runner_does():
    table = {"name": "hand", "executor": "parallels", "ssh": {"known_hosts_file": "/k"},
             "parallels": {"base_name": "t", "Allowed_Images": ["macos"]},
             "feature_flags": {"FF_ENABLE_JOB_CLEANUP": True}}
    assert "GR048" in [f["id"] for f in audit_findings({"runners": [table]})]


def test_an_allowed_images_of_another_executors_section_is_not_judged():
    """GitLab Runner reads only the section of the runner's own executor."""
    table = {"name": "hand", "executor": "virtualbox", "ssh": {"known_hosts_file": "/k"},
             "virtualbox": {"base_name": "t"}, "parallels": {"base_name": "t", "allowed_images": [".*"]},
             "feature_flags": {"FF_ENABLE_JOB_CLEANUP": True}}
    assert [f["id"] for f in audit_findings({"runners": [table]})] == []


@pytest.mark.parametrize("executor", ["virtualbox", "parallels"])
def test_the_section_is_written_with_snapshots_on_by_default(executor):
    text = toml_document(build_document(SETTINGS, [VM(executor)], DEFAULTS))
    section = tomllib.loads(text)["runners"][0][executor]
    assert section == {"base_name": "ci-template", "disable_snapshots": False}
    other = "parallels" if executor == "virtualbox" else "virtualbox"
    assert other not in tomllib.loads(text)["runners"][0]


@pytest.mark.parametrize("executor", ["virtualbox", "parallels"])
def test_snapshots_off_is_accepted(executor):
    """Both ways a job gets a VM in its first state: a revert to the clone's snapshot, or (snapshots off)
    a new clone that is deleted after the job. Neither is refused."""
    given = VM(executor, disable_snapshots=True)
    result = runner_policy_gate([given], SETTINGS, DEFAULTS, None)
    assert result["refusals"] == [] and result["warnings"] == []


@pytest.mark.parametrize("executor", ["virtualbox", "parallels"])
def test_a_vm_runner_needs_a_base_name(executor):
    given = VM(executor)
    del given[executor]["base_name"]
    result = runner_policy_gate([given], SETTINGS, DEFAULTS, None)
    assert any("base_name" in e and 'runner "r1"' in e for e in result["errors"]), result["errors"]


def test_the_base_name_may_come_from_the_runner_defaults():
    given = VM()
    del given["virtualbox"]
    defaults = dict(DEFAULTS, runner=dict(DEFAULTS["runner"], virtualbox={"base_name": "shared-template"}))
    doc = build_document(SETTINGS, [given], defaults)
    assert doc["runners"][0]["virtualbox"]["base_name"] == "shared-template"


def test_the_audit_accepts_exactly_what_the_gate_accepted():
    from ansible_collections.hardened.gitlab_runner.plugins.module_utils.policy import apply_acknowledgements

    given = dict(VM("parallels", allowed_images=["macos"]), trusted=True)
    declared = runner_policy_gate([given], SETTINGS, DEFAULTS, None)["acknowledged"]
    findings = apply_acknowledgements(audit_findings(written_straight(given, None, None)), declared, None, ["r1"])
    (accepted,) = [f for f in findings if f["id"] == "GR048"]
    assert accepted["severity"] == "info" and accepted["evidence"].startswith("ACKNOWLEDGED (trusted runner; was high)")
    widened = dict(given, parallels={"base_name": "ci-template", "allowed_images": ["macos", ".*"]})
    findings = apply_acknowledgements(audit_findings(written_straight(widened, None, None)), declared, None, ["r1"])
    assert [f["severity"] for f in findings if f["id"] == "GR048"] == ["high"]
