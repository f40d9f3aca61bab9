"""One job per autoscaled machine (GR014): docker+machine's [runners.machine] MaxBuilds and
docker-autoscaler's and instance's [runners.autoscaler] max_use_count.

What GitLab Runner does with them (common/config.go, executors/docker/machine/provider.go,
executors/internal/autoscaler/provider.go): both are Go ``int`` fields; 0 or less means no limit,
so a machine takes job after job. Its TOML decoder (BurntSushi/toml) loads only a TOML integer
into an int: ``"1"``, ``1.0`` or ``true`` make it refuse the whole config.toml, and the service
keeps running the configuration it had before (or does not start). A key is matched exactly,
else in any case, so every spelling counts.
"""

import tomllib

import pytest

from ansible_collections.hardened.gitlab_runner.plugins.filter.runner_config import runner_policy_gate, toml_document
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config import build_document

from ansible_collections.hardened.gitlab_runner.tests.unit.plugins.filter.test_policy_cases import audit_findings
from ansible_collections.hardened.gitlab_runner.tests.unit.plugins.filter.test_policy_gate import DEFAULTS, SETTINGS, TOKEN

# (executor, section, key)
EXECUTORS = [("docker+machine", "machine", "MaxBuilds"), ("docker-autoscaler", "autoscaler", "max_use_count"),
             ("instance", "autoscaler", "max_use_count")]
IDS = [e[0] for e in EXECUTORS]


def runner(executor, **extra):
    base = {"name": "r1", "url": "https://gitlab.example.test", "token": TOKEN, "executor": executor}
    base.update(extra)
    return base


def gate(given, defaults=None):
    return runner_policy_gate([given], SETTINGS, defaults or DEFAULTS, None)


def gr014(result):
    return [r for r in result["refusals"] if " - GR014 " in r]


@pytest.mark.parametrize("executor,section,key", EXECUTORS, ids=IDS)
def test_one_job_per_machine_is_written_by_default(executor, section, key):
    text = toml_document(build_document(SETTINGS, [runner(executor)], DEFAULTS))
    table = tomllib.loads(text)["runners"][0]
    assert table[section][key] == 1 and isinstance(table[section][key], int) and not isinstance(table[section][key], bool)
    result = gate(runner(executor))
    assert result["refusals"] == [] and result["errors"] == []


# (value, words its refusal must contain)
WRONG = [
    (0, "unlimited"),
    (-1, "unlimited"),
    (2, "up to 2 jobs"),
    (10, "up to 10 jobs"),
    ("1", "a string"),
    (1.0, "a float"),
    (True, "a boolean"),
]


@pytest.mark.parametrize("executor,section,key", EXECUTORS, ids=IDS)
@pytest.mark.parametrize("value,words", WRONG, ids=[repr(w[0]) for w in WRONG])
def test_anything_but_the_integer_one_is_refused_and_nothing_unlocks_it(executor, section, key, value, words):
    given = runner(executor, trusted=True, allow_privileged={"reason": "x", "protected_refs_only": True},
                   **{section: {key: value}})
    refused = gr014(gate(given))
    assert refused, gate(given)["refusals"]
    assert "[runners.%s] %s" % (section, key) in refused[0] and words in refused[0]
    assert "No acknowledgement unlocks it" in refused[0]


@pytest.mark.parametrize("executor,section,key", EXECUTORS, ids=IDS)
@pytest.mark.parametrize("spelling", ["lower", "upper", "key"])
def test_runner_defaults_cannot_get_around_it_in_any_spelling(executor, section, key, spelling):
    if spelling == "lower":
        override = {section: {key: 2}}
    elif spelling == "upper":
        override = {section.capitalize(): {key: 2}}
    else:
        override = {section: {key.swapcase(): 2}}
    defaults = dict(DEFAULTS, runner=dict(DEFAULTS["runner"], **override))
    refused = gr014(gate(runner(executor), defaults))
    assert refused and "up to 2 jobs" in refused[0]


@pytest.mark.parametrize("executor,section,key", EXECUTORS, ids=IDS)
@pytest.mark.parametrize("name", ["section", "Section", "dotted"])
def test_settings_cannot_set_it(executor, section, key, name):
    settings = {"section": {section: {key: 5}}, "Section": {section.upper(): {key: 5}},
                "dotted": {"%s.%s" % (section, key): 5}}[name]
    result = gate(runner(executor, settings=settings))
    if name == "dotted":
        # A quoted key with a dot in it is one unknown key of [[runners]], not the section's.
        assert any(" - GR015 " in r for r in result["refusals"]), result
        text = toml_document(build_document(SETTINGS, [runner(executor, settings=settings)], DEFAULTS))
        assert tomllib.loads(text)["runners"][0][section][key] == 1
    else:
        assert any("settings may not set" in e for e in result["errors"]), result


AUDITED = [
    ("machine_section_missing", "docker+machine", {}),
    ("machine_key_missing", "docker+machine", {"machine": {"IdleCount": 0}}),
    ("machine_string", "docker+machine", {"machine": {"MaxBuilds": "1"}}),
    ("machine_two_spellings", "docker+machine", {"machine": {"MaxBuilds": 1, "maxbuilds": 3}}),
    ("machine_two_sections", "docker+machine", {"machine": {"MaxBuilds": 1}, "Machine": {"MaxBuilds": 0}}),
    ("autoscaler_section_missing", "docker-autoscaler", {}),
    ("autoscaler_key_missing", "docker-autoscaler", {"autoscaler": {"plugin": "p"}}),
    ("instance_key_missing", "instance", {"autoscaler": {"plugin": "p"}}),
    ("instance_zero", "instance", {"autoscaler": {"max_use_count": 0}}),
]


@pytest.mark.parametrize("case,executor,sections", AUDITED, ids=[a[0] for a in AUDITED])
def test_the_audit_reports_a_config_toml_without_it(case, executor, sections):
    table = {"name": "hand", "url": "https://gitlab.example.test", "token": TOKEN, "executor": executor,
             "feature_flags": {"FF_ENABLE_JOB_CLEANUP": True, "FF_NETWORK_PER_BUILD": True},
             "docker": {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"],
                        "services_security_opt": ["no-new-privileges:true"]}}
    if executor == "instance":
        del table["docker"]
    table.update(sections)
    found = [f for f in audit_findings({"runners": [table]}) if f["id"] == "GR014"]
    assert found and found[0]["severity"] == "high", (case, found)


def test_the_audit_passes_one_job_per_machine():
    table = {"name": "hand", "executor": "docker-autoscaler", "autoscaler": {"max_use_count": 1},
             "feature_flags": {"FF_ENABLE_JOB_CLEANUP": True, "FF_NETWORK_PER_BUILD": True},
             "docker": {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"],
                        "services_security_opt": ["no-new-privileges:true"]}}
    assert [f["id"] for f in audit_findings({"runners": [table]})] == []
