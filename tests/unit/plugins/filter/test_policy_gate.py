"""The policy gate: every refused setting gives a clear error naming the runner,
the setting, the guidance and how to unlock it; acknowledgements unlock only
what they may; the rendered document parses back to exactly the runners given."""

import os
import tomllib

import pytest
import yaml

from ansible_collections.hardened.gitlab_runner.plugins.filter.runner_config import (
    from_toml,
    runner_config_document,
    runner_policy_gate,
    toml_document,
)
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.policy import CATALOG, evaluate_document
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config_schema import unknown_keys

ROLE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles", "gitlab_runner")
TOKEN = "glrt-FAKE-unit-test-token-0123456789"
# A pinned host key (ssh_known_hosts) for the ssh, virtualbox and parallels runners.
PIN = "vm ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"


def _role_defaults():
    with open(os.path.join(ROLE, "defaults", "main.yml")) as handle:
        data = yaml.safe_load(handle)
    settings = {
        "concurrent": data["gitlab_runner_concurrent"],
        "check_interval": data["gitlab_runner_check_interval"],
        "log_level": data["gitlab_runner_log_level"],
        "log_format": data["gitlab_runner_log_format"],
        "shutdown_timeout": data["gitlab_runner_shutdown_timeout"],
        "listen_address": data["gitlab_runner_listen_address"],
        "session_server": data["gitlab_runner_session_server"],
    }
    defaults = {
        "docker": data["gitlab_runner_docker_defaults"],
        "kubernetes": data["gitlab_runner_kubernetes_defaults"],
        "feature_flags": data["gitlab_runner_feature_flags"],
        "runner": data["gitlab_runner_runner_defaults"],
        "cap_drop_extra": data["gitlab_runner_docker_cap_drop_extra"],
    }
    return settings, defaults


SETTINGS, DEFAULTS = _role_defaults()


def runner(name="r1", executor="docker", **extra):
    base = {"name": name, "url": "https://gitlab.example.test", "token": TOKEN + name, "executor": executor}
    base.update(extra)
    return base


def gate(runners, settings=None):
    return runner_policy_gate(runners, settings or SETTINGS, DEFAULTS, None)


def test_role_defaults_pass_the_gate_without_findings_that_refuse_or_warn():
    result = gate([runner()])
    assert result["errors"] == [] and result["refusals"] == [] and result["warnings"] == []


# (case id, runner input, policy id, setting text, unlock hint or None when it can never be unlocked)
REFUSED = [
    ("shell", runner(executor="shell"), "GR001", "executor", "trusted: true"),
    ("privileged", runner(docker={"privileged": True}), "GR002", "privileged", "allow_privileged"),
    ("services_privileged", runner(docker={"services_privileged": True}), "GR003", "services_privileged", "allow_privileged"),
    ("privileged_images", runner(docker={"allowed_privileged_images": ["docker:dind"]}), "GR004",
     "allowed_privileged_images", "allow_privileged"),
    ("cap_add", runner(docker={"cap_add": ["NET_ADMIN"]}), "GR005", "cap_add", "allow_capabilities"),
    ("no_new_privs_removed", runner(docker={"security_opt": []}), "GR007", "security_opt", None),
    ("pid_host", runner(docker={"pid_mode": "host"}), "GR008", "pid_mode", None),
    ("network_host", runner(docker={"network_mode": "host"}), "GR008", "network_mode", None),
    ("seccomp_unconfined", runner(docker={"security_opt": ["no-new-privileges:true", "seccomp:unconfined"]}),
     "GR008", "security_opt", None),
    ("docker_sock", runner(docker={"volumes": ["/cache", "/var/run/docker.sock:/var/run/docker.sock"]}),
     "GR009", "volumes", None),
    ("host_path", runner(docker={"volumes": ["/srv/data:/data:ro"]}), "GR010", "volumes", "allow_host_volumes"),
    ("devices", runner(docker={"devices": ["/dev/kvm"]}), "GR011", "devices", "allow_privileged"),
    ("if_not_present", runner(docker={"pull_policy": ["if-not-present"]}), "GR012", "pull_policy", "trusted: true"),
    ("allowed_if_not_present", runner(docker={"allowed_pull_policies": ["always", "if-not-present"]}), "GR012",
     "pull_policy", "trusted: true"),
    ("ssh_no_host_key_check", runner(executor="ssh", ssh={"host": "vm", "disable_strict_host_key_checking": True}),
     "GR013", "disable_strict_host_key_checking", None),
    ("machine_maxbuilds", runner(executor="docker+machine", machine={"MaxBuilds": 10}), "GR014", "MaxBuilds", None),
    ("autoscaler_max_use", runner(executor="docker-autoscaler", autoscaler={"max_use_count": 0}), "GR014",
     "max_use_count", None),
    ("typo", runner(docker={"privilegd": True}), "GR015", "privilegd",
     'allow_unknown_keys: {keys: ["docker.privilegd"]'),
    ("case_variant", runner(docker={"Privileged": False},
                            allow_unknown_keys={"keys": ["docker.Privileged"], "reason": "x"}),
     "GR015", "Privileged", None),
    ("global_key", runner(), "GR015", "session_server.listen_adress", None),
]


@pytest.mark.parametrize("case,given,policy_id,setting,unlock", REFUSED, ids=[c[0] for c in REFUSED])
def test_each_refused_setting_names_runner_setting_guidance_and_unlock(case, given, policy_id, setting, unlock):
    result = gate([given], dict(SETTINGS, session_server={"listen_adress": "[::]:8093"}) if case == "global_key" else None)
    matching = [r for r in result["refusals"] if policy_id in r]
    assert matching, result["refusals"]
    message = matching[0]
    assert ('global settings' if case == "global_key" else 'runner "r1"') in message
    assert setting in message
    assert CATALOG[policy_id].guidance in message
    if unlock:
        assert unlock in message
    else:
        assert "No acknowledgement unlocks it" in message
    assert TOKEN not in str(result)


@pytest.mark.parametrize("given,ack", [
    (runner(executor="shell", trusted=True), "GR001"),
    (runner(docker={"privileged": True}, allow_privileged={"reason": "dind", "protected_refs_only": True}), "GR002"),
    (runner(docker={"cap_add": ["NET_ADMIN"]}, allow_capabilities={"reason": "vpn tests"}), "GR005"),
    (runner(docker={"volumes": ["/srv/data:/data:ro"]}, allow_host_volumes={"reason": "read-only dataset"}), "GR010"),
    (runner(docker={"pull_policy": ["if-not-present"]}, trusted=True), "GR012"),
])
def test_acknowledgement_unlocks_and_is_recorded(given, ack):
    result = gate([given])
    assert result["refusals"] == []
    assert [a["id"] for a in result["acknowledged"]] == [ack]
    assert any(w.startswith("ACKNOWLEDGED") and ack in w for w in result["warnings"])


@pytest.mark.parametrize("ack_value", [
    {"reason": "dind"},                                   # protected refs not confirmed
    {"reason": "", "protected_refs_only": True},          # no reason
    {"protected_refs_only": True},
    "yes",
])
def test_incomplete_privileged_acknowledgement_is_refused(ack_value):
    result = gate([runner(docker={"privileged": True}, allow_privileged=ack_value)])
    assert any("GR002" in r for r in result["refusals"])


def test_trusted_does_not_unlock_privileged_and_acks_do_not_leak_to_other_runners():
    result = gate([
        runner("a", docker={"privileged": True}, trusted=True),
        runner("b", executor="shell"),
        runner("c", executor="shell", trusted=True),
    ])
    refused = " ".join(result["refusals"])
    assert 'runner "a"' in refused and "GR002" in refused
    assert 'runner "b"' in refused and "GR001" in refused
    assert 'runner "c"' not in refused


def test_required_cap_drops_cannot_be_overridden_away():
    doc = runner_config_document([runner(docker={"cap_drop": ["NET_ADMIN"]})], SETTINGS, DEFAULTS, None)
    drops = doc["runners"][0]["docker"]["cap_drop"]
    for cap in ("SETUID", "SETGID", "NET_RAW", "MKNOD", "NET_ADMIN"):
        assert cap in drops


@pytest.mark.parametrize("settings,policy_id", [
    (dict(SETTINGS, listen_address="0.0.0.0:9252"), "GR018"),
    (dict(SETTINGS, session_server={"listen_address": "[::]:8093"}), "GR019"),
])
def test_global_exposures_warn(settings, policy_id):
    result = gate([runner()], settings)
    assert result["refusals"] == []
    assert any(policy_id in w for w in result["warnings"])


@pytest.mark.parametrize("runners,expected", [
    ([runner("x"), runner("x")], "used twice"),
    ([{"name": "x", "url": "https://g", "executor": "docker"}], "token is required"),
    ([runner(url="ftp://gitlab")], "url must be an http(s) URL"),
    ([runner(executor="bogus")], "executor must be one of"),
    ([{"url": "https://g"}], "needs a non-empty name"),
])
def test_bad_input_is_an_error_without_token(runners, expected):
    result = gate(runners)
    assert any(expected in e for e in result["errors"]), result
    assert TOKEN not in str(result)


def test_absent_runner_is_removed_and_needs_no_token():
    doc = runner_config_document([runner("keep"), {"name": "gone", "state": "absent"}], SETTINGS, DEFAULTS, None)
    assert [r["name"] for r in doc["runners"]] == ["keep"]


def test_runner_managed_fields_are_kept_only_for_the_same_token():
    existing = from_toml(
        '[[runners]]\nname = "r1"\ntoken = "%sr1"\nid = 77\ntoken_obtained_at = 2025-01-02T03:04:05Z\n'
        'token_expires_at = 0001-01-01T00:00:00Z\n' % TOKEN)
    doc = runner_config_document([runner()], SETTINGS, DEFAULTS, existing)
    text = toml_document(doc)
    parsed = tomllib.loads(text)["runners"][0]
    assert parsed["id"] == 77
    assert parsed["token_obtained_at"].year == 2025  # still a TOML datetime, not a string
    rotated = runner_config_document([runner(token="glrt-FAKE-rotated")], SETTINGS, DEFAULTS, existing)
    assert "id" not in rotated["runners"][0]


def test_a_datetime_field_with_a_trailing_newline_stays_a_quoted_string():
    """Only a whole RFC 3339 text is written bare; "...Z\\n" (a regex `$` would accept it) is quoted."""
    existing = {"runners": [{"name": "r1", "token": TOKEN + "r1", "token_obtained_at": "2025-01-02T03:04:05Z\n"}]}
    text = toml_document(runner_config_document([runner()], SETTINGS, DEFAULTS, existing))
    assert 'token_obtained_at = "2025-01-02T03:04:05Z\\n"\n' in text
    assert tomllib.loads(text)["runners"][0]["token_obtained_at"] == "2025-01-02T03:04:05Z\n"


def test_injection_through_a_runner_name_yields_exactly_the_runners_given():
    evil = 'x"\n[[runners]]\nname = "evil'
    doc = runner_config_document([runner(evil), runner("second")], SETTINGS, DEFAULTS, None)
    parsed = tomllib.loads(toml_document(doc))
    assert [r["name"] for r in parsed["runners"]] == [evil, "second"]


def test_every_key_the_role_can_emit_is_recognized_by_gitlab_runner():
    """Render with every option set; a misspelt key would be silently ignored by the runner."""
    everything = [
        runner("docker-all", limit=3, request_concurrency=2, output_limit=8192, environment=["A=1"],
               builds_dir="/builds", cache_dir="/cache", shell="bash", clone_url="https://gitlab.example.test",
               docker={"user": "1000:1000", "tmpfs": {"/tmp": "rw,noexec"}, "services": [{"name": "postgres:16"}]},
               cache={"Type": "s3", "Shared": False, "s3": {"ServerAddress": "s3.example.test", "BucketName": "c"}},
               custom_build_dir={"enabled": False}, feature_flags={"FF_USE_FASTZIP": True},
               settings={"pre_get_sources_script": "true", "unhealthy_requests_limit": 3}),
        runner("shell-all", executor="shell", trusted=True),
        runner("ssh-all", executor="ssh", ssh={"host": "vm", "port": "22", "user": "ci", "identity_file": "/k"},
               ssh_known_hosts=[PIN]),
        runner("virtualbox-all", executor="virtualbox", ssh={"user": "ci", "port": "22"}, ssh_known_hosts=[PIN],
               virtualbox={"base_name": "t", "base_snapshot": "s", "base_folder": "/vms", "disable_snapshots": False,
                           "allowed_images": ["^t$"], "start_type": "headless"}),
        runner("parallels-all", executor="parallels", ssh={"user": "ci"}, ssh_known_hosts=[PIN],
               parallels={"base_name": "t", "template_name": "t-template", "disable_snapshots": False,
                          "time_server": "time.example.test", "allowed_images": ["^(t|u)$"]}),
        runner("machine-all", executor="docker+machine", machine={"IdleCount": 0, "MachineDriver": "none",
                                                                  "MachineName": "m-%s"}),
        runner("autoscaler-all", executor="docker-autoscaler", autoscaler={"plugin": "aws", "capacity_per_instance": 1,
                                                                           "max_instances": 2}),
    ]
    settings = dict(SETTINGS, session_server={"listen_address": "127.0.0.1:8093", "session_timeout": 1800},
                    connection_max_age="15m")
    doc = runner_config_document(everything, settings, DEFAULTS, None)
    parsed = tomllib.loads(toml_document(doc))
    assert unknown_keys(parsed) == []
    assert len(parsed["runners"]) == 7
    # The audit evaluates the rendered file exactly like the gate evaluated the wanted one.
    assert [f["id"] for f in evaluate_document(parsed)] == [f["id"] for f in evaluate_document(doc)]


def test_acknowledged_findings_become_info_with_reason_and_others_stay():
    from ansible_collections.hardened.gitlab_runner.plugins.module_utils.policy import apply_acknowledgements
    given = [runner("sh", executor="shell", trusted=True), runner("priv", docker={"privileged": True})]
    doc = runner_config_document(given, SETTINGS, DEFAULTS, None)
    recorded = gate(given)["acknowledged"]
    findings = apply_acknowledgements(evaluate_document(doc), recorded)
    shell = [f for f in findings if f["id"] == "GR001"][0]
    assert shell["severity"] == "info" and "ACKNOWLEDGED (trusted runner; was high)" in shell["evidence"]
    # Not acknowledged (the gate refused it): stays critical.
    assert [f["severity"] for f in findings if f["id"] == "GR002"] == ["critical"]
    # An acknowledgement for a policy that can never be unlocked changes nothing.
    forged = apply_acknowledgements(findings, [{"runner": "priv", "id": "GR009", "reason": "x"},
                                               {"runner": "priv", "id": "GR007", "reason": "x"}])
    assert forged == findings


def test_the_role_rendering_itself_renders_recognized_keys_only():
    """Render config.toml as the role does (the runner_config action's render()), every option set."""
    from ansible_collections.hardened.gitlab_runner.plugins.action.runner_config import render

    everything = [
        runner("d", limit=1, request_concurrency=1, output_limit=1, environment=["A=1"], builds_dir="/b",
               cache_dir="/c", shell="bash", clone_url="https://g.example.test",
               docker={"user": "1000", "services": [{"name": "redis:7", "alias": "cache"}]},
               cache={"Type": "gcs", "gcs": {"BucketName": "b"}}, custom_build_dir={"enabled": False},
               feature_flags={"FF_SCRIPT_SECTIONS": True}, settings={"post_build_script": "true"}),
        runner("s", executor="shell", trusted=True),
        runner("ssh", executor="ssh", ssh={"host": "vm", "user": "ci"}, ssh_known_hosts=[PIN]),
        runner("m", executor="docker+machine", machine={"IdleCount": 1, "MachineDriver": "none", "MachineName": "x-%s"}),
        runner("a", executor="docker-autoscaler", autoscaler={"plugin": "p", "max_instances": 1}),
        runner("k", executor="kubernetes", kubernetes={"namespace": "ci", "privileged": False}),
        runner("c", executor="custom", custom={"run_exec": "/bin/run"}),
    ]
    settings = dict(SETTINGS, session_server={"listen_address": "127.0.0.1:8093", "advertise_address": "r:8093",
                                              "session_timeout": 1800})
    text = render(runner_config_document(everything, settings, DEFAULTS, {}))
    parsed = tomllib.loads(text)
    assert unknown_keys(parsed) == []
    assert [r["name"] for r in parsed["runners"]] == ["d", "s", "ssh", "m", "a", "k", "c"]
    # The rendering is deterministic: the same input gives the same file (no flapping).
    again = render(runner_config_document(everything, settings, DEFAULTS, {}))
    assert again == text


def test_argument_spec_and_document_builder_agree_on_runner_keys():
    """Every executor section the builder writes is a runner option of the argument
    spec, and every runner option is something the builder or the gate reads."""
    from ansible_collections.hardened.gitlab_runner.plugins.module_utils import runner_config

    with open(os.path.join(ROLE, "meta", "argument_specs.yml")) as handle:
        spec = yaml.safe_load(handle)
    options = spec["argument_specs"]["main"]["options"]["gitlab_runner_runners"]["options"]
    acknowledgements = {p.ack for p in CATALOG.values() if p.ack}
    built = (set(runner_config.EXECUTOR_SECTIONS) | set(runner_config._SCALARS) | set(runner_config.RUNNER_INPUTS)
             | {"state", "settings"})
    assert set(runner_config.EXECUTOR_SECTIONS) <= set(options)
    assert acknowledgements <= set(options)
    assert set(options) == built | acknowledgements
    assert set(options["executor"]["choices"]) == set(runner_config.EXECUTORS)
