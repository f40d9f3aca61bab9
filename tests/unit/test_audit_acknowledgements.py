"""Acknowledgements cannot be borrowed or forged.

The audit lowers a finding only when the controller declares the exact setting
accepted (what the role's gate accepted from the inventory); the host's own
acknowledgements file can explain a finding but never lowers it, a changed
setting is reported at full severity, and no runner can use another's exception
by taking its name.
"""

import json

import pytest

from ansible.module_utils.testing import patch_module_args
from ansible_collections.hardened.gitlab_runner.plugins.filter.runner_config import (
    runner_config_document,
    runner_policy_gate,
    toml_document,
)
from ansible_collections.hardened.gitlab_runner.plugins.modules import runner_config_audit
# The gate tests' role defaults.
from ansible_collections.hardened.gitlab_runner.tests.unit.plugins.filter.test_policy_gate import DEFAULTS, SETTINGS, TOKEN

PRIVILEGED = {"name": "dind", "url": "https://gitlab.example.test", "token": TOKEN + "-dind", "executor": "docker",
              "docker": {"privileged": True},
              "allow_privileged": {"reason": "docker-in-docker builds", "protected_refs_only": True}}
PLAIN = {"name": "plain", "url": "https://gitlab.example.test", "token": TOKEN + "-plain", "executor": "docker"}


@pytest.fixture(autouse=True)
def no_installed_runner(monkeypatch):
    """The audit finds no GitLab Runner installed (no command runs): the newest key list."""
    monkeypatch.setattr(runner_config_audit, "runner_version", lambda module: (None, "not installed"))


def run_audit(tmp_path, capsys, runners, declared, host_file=None, document=None, runner_version=None):
    if document is None:
        document = runner_config_document(runners, SETTINGS, DEFAULTS, None)
    config = tmp_path / "config.toml"
    config.write_text(toml_document(document))
    if host_file is not None:
        (tmp_path / "hardened-acknowledgements.json").write_text(json.dumps({"acknowledged": host_file}))
    args = {"path": str(config)}
    if runner_version is not None:
        args["runner_version"] = runner_version
    if declared is not None:
        args["acknowledged"] = declared
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            runner_config_audit.main()
    out = capsys.readouterr().out
    assert TOKEN not in out
    return json.loads(out)["findings"]


def severities(findings, policy_id):
    return [f["severity"] for f in findings if f["id"] == policy_id]


def declared_for(runners):
    result = runner_policy_gate(runners, SETTINGS, DEFAULTS, None)
    assert result["refusals"] == [] and result["errors"] == [], result
    return result["acknowledged"]


def test_declared_exception_is_lowered_to_info(tmp_path, capsys):
    declared = declared_for([PRIVILEGED])
    assert {a["id"] for a in declared} == {"GR002"}
    assert all(a["setting"] and a["evidence"] for a in declared)
    findings = run_audit(tmp_path, capsys, [PRIVILEGED], declared)
    assert severities(findings, "GR002") == ["info"]
    assert "ACKNOWLEDGED (docker-in-docker builds; was critical)" in \
        [f for f in findings if f["id"] == "GR002"][0]["evidence"]


def test_hand_edited_host_file_cannot_silence_a_critical_finding(tmp_path, capsys):
    """Someone with root on the runner adds a socket mount and writes an acknowledgement for it."""
    document = runner_config_document([PLAIN], SETTINGS, DEFAULTS, None)
    document["runners"][0]["docker"]["volumes"].append("/var/run/docker.sock:/var/run/docker.sock")
    document["runners"][0]["docker"]["privileged"] = True
    forged = [{"runner": "plain", "id": "GR009", "setting": "[runners.docker] volumes",
               "evidence": "volume /var/run/docker.sock:/var/run/docker.sock", "reason": "needed"},
              {"runner": "plain", "id": "GR002", "setting": "[runners.docker] privileged",
               "evidence": "privileged = True", "reason": "approved by ops"}]
    for declared in (None, []):
        findings = run_audit(tmp_path, capsys, None, declared, host_file=forged, document=document)
        assert severities(findings, "GR009") == ["critical"]
        assert severities(findings, "GR002") == ["critical"]
        note = [f for f in findings if f["id"] == "GR002"][0]["evidence"]
        assert "not accepted" in note and "approved by ops" in note


def test_host_file_that_matches_the_declaration_still_needs_the_declaration(tmp_path, capsys):
    declared = declared_for([PRIVILEGED])
    findings = run_audit(tmp_path, capsys, [PRIVILEGED], None, host_file=declared)
    assert severities(findings, "GR002") == ["critical"]


def test_setting_changed_since_it_was_accepted_is_reported_at_full_severity(tmp_path, capsys):
    declared = declared_for([dict(PRIVILEGED, docker={"devices": ["/dev/kvm"]})])
    assert [a["id"] for a in declared] == ["GR011"]
    changed = dict(PRIVILEGED, docker={"devices": ["/dev/kvm", "/dev/mem"]})
    findings = run_audit(tmp_path, capsys, [changed], declared)
    assert severities(findings, "GR011") == ["high"]


def test_a_runner_with_the_same_name_does_not_share_the_exception(tmp_path, capsys):
    declared = declared_for([PRIVILEGED])
    document = runner_config_document([PRIVILEGED], SETTINGS, DEFAULTS, None)
    twin = dict(document["runners"][0], token=TOKEN + "-twin")
    document["runners"].append(twin)
    findings = run_audit(tmp_path, capsys, None, declared, document=document)
    assert severities(findings, "GR002") == ["critical", "critical"]


def test_declaration_for_a_never_unlockable_policy_changes_nothing(tmp_path, capsys):
    document = runner_config_document([PLAIN], SETTINGS, DEFAULTS, None)
    document["runners"][0]["docker"]["security_opt"] = []
    finding = [f for f in run_audit(tmp_path, capsys, None, None, document=document) if f["id"] == "GR007"][0]
    forged = [dict([(k, finding[k]) for k in ("runner", "id", "setting", "evidence")], reason="x")]
    findings = run_audit(tmp_path, capsys, None, forged, document=document)
    assert severities(findings, "GR007") == ["medium"]


@pytest.mark.parametrize("settings", [{"name": "dind"}, {"Name": "dind"}, {"NAME": "dind"},
                                      {"docker": {"privileged": True}}, {"Executor": "shell"}, {"token": "x"}])
def test_settings_cannot_take_another_runners_name_or_managed_keys(settings):
    borrower = dict(PLAIN, docker={"privileged": True}, settings=settings)
    result = runner_policy_gate([PRIVILEGED, borrower], SETTINGS, DEFAULTS, None)
    assert result["errors"] and "settings may not set" in result["errors"][0]
    assert TOKEN not in json.dumps(result)


def test_acknowledgement_is_bound_to_the_runner_entry_not_its_name():
    """Two entries: only the one carrying allow_privileged is accepted, even if names collide in the output."""
    result = runner_policy_gate([PRIVILEGED, dict(PLAIN, docker={"privileged": True})], SETTINGS, DEFAULTS, None)
    refused = " ".join(result["refusals"])
    assert 'runner "plain"' in refused and "GR002" in refused
    assert {a["runner"] for a in result["acknowledged"]} == {"dind"}


# --- unknown keys (GR015) and the runner version ---------------------------------------------

# [[runners]] prepare_timeout came with GitLab Runner 19.0: unknown to the 18.x key lists.
NEWER = dict(PLAIN, name="newer", token=TOKEN + "-newer", settings={"prepare_timeout": "10m"},
             allow_unknown_keys={"keys": ["prepare_timeout"], "reason": "fleet moves to 19.0"})


def test_an_unknown_key_declared_by_the_inventory_is_info_whatever_version_the_host_runs(tmp_path, capsys):
    # audit.yml computes the declaration without a runner version (the newest list, which knows the key) ...
    declared = declared_for([NEWER])
    assert [(a["id"], a["ack"]) for a in declared] == [("GR015", "allow_unknown_keys")]
    # ... and the host runs 18.11, whose list does not: still accepted, as the converge's gate accepted it.
    findings = run_audit(tmp_path, capsys, [NEWER], declared, runner_version="18.11.2-1")
    (unknown,) = [f for f in findings if f["id"] == "GR015"]
    assert unknown["severity"] == "info"
    assert unknown["evidence"].startswith("ACKNOWLEDGED (fleet moves to 19.0; was high): unrecognized key "
                                          "'prepare_timeout' (not in the key list of GitLab Runner 18.11")
    # On a host whose runner knows the key there is nothing to accept.
    assert severities(run_audit(tmp_path, capsys, [NEWER], declared, runner_version="19.0.0"), "GR015") == []


def test_an_undeclared_unknown_key_stays_high_even_with_a_host_file(tmp_path, capsys):
    declared = declared_for([NEWER])
    for given, host_file in ((None, None), ([], declared)):
        findings = run_audit(tmp_path, capsys, [NEWER], given, host_file=host_file, runner_version="18.11.2")
        assert severities(findings, "GR015") == ["high"]


def test_the_declaration_covers_only_the_named_key(tmp_path, capsys):
    declared = declared_for([NEWER])
    document = runner_config_document([NEWER], SETTINGS, DEFAULTS, None)
    document["runners"][0]["prepare_timout"] = "10m"  # a typo next to the accepted key
    findings = run_audit(tmp_path, capsys, None, declared, document=document, runner_version="18.11.2")
    assert sorted(severities(findings, "GR015")) == ["high", "info"]
    (typo,) = [f for f in findings if f["id"] == "GR015" and f["severity"] == "high"]
    assert "prepare_timout" in typo["setting"]
