"""The gate judges unknown keys by the key list of the runner version, and a runner can accept
a key its list does not know yet by naming it (allow_unknown_keys); typos stay refused."""

import json

import pytest

from ansible_collections.hardened.gitlab_runner.plugins.filter.runner_config import runner_policy_gate
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config import gate as module_gate
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config_schema import (
    KEY_LISTS,
    NEWEST,
)
from ansible_collections.hardened.gitlab_runner.tests.unit.plugins.filter.test_policy_gate import (
    DEFAULTS,
    SETTINGS,
    TOKEN,
)

V18_11 = next(k for k in KEY_LISTS if k.line == "18.11")
V19_0 = next(k for k in KEY_LISTS if k.line == "19.0")
V19_1 = next(k for k in KEY_LISTS if k.line == "19.1")
ACK = {"keys": ["prepare_timeout"], "reason": "runners are upgraded to 19.0 next week"}


def runner(name="r1", **extra):
    base = {"name": name, "url": "https://gitlab.example.test", "token": TOKEN + name, "executor": "docker"}
    base.update(extra)
    return base


def gate(runners, version):
    result = runner_policy_gate(runners, SETTINGS, DEFAULTS, None, version)
    assert result["errors"] == [], result
    assert TOKEN not in json.dumps(result)
    return result


def gr015(result):
    return [r for r in result["refusals"] if "GR015" in r]


# A key GitLab Runner added in 19.0 ([[runners]] prepare_timeout), set through `settings`.
NEWER_KEY = runner(settings={"prepare_timeout": "10m"})


def test_the_role_defaults_pass_on_every_release_line():
    for key_list in KEY_LISTS:
        result = gate([runner()], "%s.0" % key_list.line)
        assert result["refusals"] == [] and result["warnings"] == [], key_list.line
        assert result["key_list"]["release"] == key_list.line and result["key_list"]["exact"] is True


def test_a_key_of_the_newer_list_is_refused_on_the_older_version_and_accepted_on_the_newer():
    refused = gate([NEWER_KEY], "18.11.2")
    (message,) = gr015(refused)
    assert message.startswith('REFUSED runner "r1": runners[0] (name "r1").prepare_timeout')
    assert refused["key_list"]["name"] == V18_11.name
    accepted = gate([NEWER_KEY], "19.0.1")
    assert accepted["refusals"] == [] and accepted["acknowledged"] == []
    assert accepted["key_list"]["name"] == V19_0.name


def test_the_refusal_names_the_key_the_runner_version_and_the_acknowledgement():
    (message,) = gr015(gate([NEWER_KEY], "18.11.2"))
    assert "unrecognized key 'prepare_timeout' (not in the %s)" % V18_11.name in message
    assert "GitLab Runner 18.11.2, the version this configuration is for" in message
    assert 'allow_unknown_keys: {keys: ["prepare_timeout"], reason: "..."}' in message
    assert "A misspelt key stays refused" in message


def test_an_acknowledged_unknown_key_is_accepted_and_recorded():
    result = gate([dict(NEWER_KEY, allow_unknown_keys=ACK)], "18.11.2")
    assert result["refusals"] == []
    (recorded,) = result["acknowledged"]
    assert recorded == {
        "runner": "r1", "id": "GR015", "setting": 'runners[0] (name "r1").prepare_timeout',
        "evidence": "unrecognized key 'prepare_timeout' (not in the %s)" % V18_11.name,
        "ack": "allow_unknown_keys", "reason": ACK["reason"]}
    (notice,) = result["warnings"]
    assert notice.startswith("ACKNOWLEDGED ") and "prepare_timeout" in notice and ACK["reason"] in notice


@pytest.mark.parametrize("version", ["18.0.0", "18.5.0-1", "19.0.0", "19.3.0", None])
def test_an_acknowledged_key_is_declared_for_every_list_that_lacks_it(version):
    """The audit checks the host against its installed version's list: the declaration covers them all."""
    result = gate([dict(NEWER_KEY, allow_unknown_keys=ACK)], version)
    assert result["refusals"] == []
    if version is None or not version.startswith("18."):
        # Known to the list used: no finding, no notice, but still declared for the 18.x lists.
        assert not any(w.startswith("ACKNOWLEDGED") for w in result["warnings"])
    assert [(a["id"], a["setting"]) for a in result["acknowledged"]] == [
        ("GR015", 'runners[0] (name "r1").prepare_timeout')]


def test_feature_flags_follow_the_version_too():
    flag = runner(feature_flags={"FF_USE_NATIVE_CONTAINER_STOP": True})
    (message,) = gr015(gate([flag], "19.0.3"))
    assert "FF_USE_NATIVE_CONTAINER_STOP" in message
    assert 'allow_unknown_keys: {keys: ["feature_flags.FF_USE_NATIVE_CONTAINER_STOP"]' in message
    assert gate([flag], "19.1.0")["refusals"] == []
    ack = {"keys": ["feature_flags.FF_USE_NATIVE_CONTAINER_STOP"], "reason": "new flag"}
    assert gate([dict(flag, allow_unknown_keys=ack)], "19.0.3")["refusals"] == []


def test_nested_keys_are_named_by_their_path_without_array_indexes():
    services = [{"name": "postgres:16"}, {"name": "redis:7", "suspend_data_path": "/data"}]
    given = runner(docker={"services": services})
    (message,) = gr015(gate([given], "19.3.0"))
    assert "docker.services[1].suspend_data_path" in message
    assert 'allow_unknown_keys: {keys: ["docker.services.suspend_data_path"]' in message
    ack = {"keys": ["docker.services.suspend_data_path"], "reason": "GitLab Runner 19.4"}
    assert gate([dict(given, allow_unknown_keys=ack)], "19.3.0")["refusals"] == []


@pytest.mark.parametrize("ack", [
    {"keys": ["prepare_timeut"], "reason": "typo in the acknowledgement"},
    {"keys": ["docker.prepare_timeout"], "reason": "wrong section"},
    {"keys": ["prepare_timeout"], "reason": ""},
    {"keys": ["prepare_timeout"]},
    {"keys": "prepare_timeout", "reason": "not a list"},
    {"reason": "no keys"},
    "prepare_timeout",
])
def test_an_acknowledgement_that_does_not_name_the_key_with_a_reason_accepts_nothing(ack):
    result = gate([dict(NEWER_KEY, allow_unknown_keys=ack)], "18.11.2")
    assert gr015(result) and result["acknowledged"] == []


def test_a_typo_stays_refused_when_the_right_name_is_acknowledged():
    typo = runner(settings={"prepare_timout": "10m"}, allow_unknown_keys=ACK)
    result = gate([typo], "18.11.2")
    (message,) = gr015(result)
    assert "prepare_timout" in message
    assert result["acknowledged"] == []
    assert any('allow_unknown_keys names "prepare_timeout", which is not an unknown key of this runner' in w
               for w in result["warnings"])


@pytest.mark.parametrize("docker,name", [({"Privileged": False}, "docker.Privileged"),
                                         ({"CAP_DROP": ["ALL"]}, "docker.CAP_DROP")])
def test_a_known_key_in_another_case_is_never_accepted(docker, name):
    given = runner(docker=docker, allow_unknown_keys={"keys": [name], "reason": "x"})
    (message,) = gr015(gate([given], "19.3.0"))
    assert "No acknowledgement unlocks it: it is the known key" in message


def test_a_feature_flag_not_shaped_like_one_is_never_accepted():
    given = runner(feature_flags={"ff_use_fastzip": True},
                   allow_unknown_keys={"keys": ["feature_flags.ff_use_fastzip"], "reason": "x"})
    (message,) = gr015(gate([given], "19.3.0"))
    assert "No acknowledgement unlocks it: a feature flag is named FF_" in message


def test_one_runners_acknowledgement_does_not_cover_another():
    result = gate([dict(NEWER_KEY, allow_unknown_keys=ACK), runner("r2", settings={"prepare_timeout": "5m"})],
                  "18.11.2")
    (message,) = gr015(result)
    assert 'runner "r2"' in message
    assert [a["runner"] for a in result["acknowledged"]] == ["r1"]


def test_without_a_version_the_newest_list_is_used_and_named():
    result = gate([runner()], None)
    assert result["key_list"]["name"] == NEWEST.name and result["key_list"]["runner_version"] is None
    assert result["key_list"]["text"].startswith("No GitLab Runner version is known (none was given)")


def test_a_version_without_a_list_warns_and_uses_the_nearest_older():
    result = gate([runner(docker={"suspend_data_path": "/x"})], "19.9.0")
    assert result["key_list"]["name"] == NEWEST.name and result["key_list"]["exact"] is False
    assert result["key_list"]["text"].startswith("WARNING: the collection has no key list")
    (message,) = gr015(result)
    assert "GitLab Runner 19.9.0" in message and NEWEST.name in message


def test_the_gate_names_where_the_version_came_from():
    result = module_gate({"runners": []}, [], "18.11.2-1", "installed")
    assert result["key_list"]["text"] == (
        "config.toml keys and feature flags are checked against the %s, for GitLab Runner 18.11.2-1 (installed)."
        % V18_11.name)
    result = module_gate({"runners": []}, [], "", "installed", "none is pinned, and gitlab-runner is not installed")
    assert "(none is pinned, and gitlab-runner is not installed)" in result["key_list"]["text"]


def test_pid_mode_is_an_unknown_key_before_19_1_and_still_checked_by_policy_after():
    given = runner(docker={"pid_mode": "host"})
    assert gr015(gate([given], "19.0.0"))
    refused = gate([given], "19.1.0")["refusals"]
    assert not gr015({"refusals": refused}) and any("GR008" in r for r in refused)
    assert V19_1.release == (19, 1)
