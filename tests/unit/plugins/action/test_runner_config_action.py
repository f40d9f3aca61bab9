"""The runner_config action picks the key list of the runner version: the pinned one, else the
installed package's (read with dpkg-query over the connection), else the newest; it says which."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from ansible_collections.hardened.gitlab_runner.plugins.action.runner_config import INSTALLED_VERSION, ActionModule
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config_schema import KEY_LISTS

TOKEN = "glrt-FAKE-action-test-token-0123456789"
RUNNER = {"name": "r1", "url": "https://gitlab.example.test", "token": TOKEN, "executor": "docker",
          "settings": {"prepare_timeout": "10m"}}  # a key of GitLab Runner 19.0 and later


def _gate(tmp_path, collections_path, runner_version):
    playbook = tmp_path / "play.yml"
    args = {"runners": [RUNNER], "path": str(tmp_path / "config.toml"), "gate_only": True,
            "defaults": {"docker": {"image": "debian:13", "security_opt": ["no-new-privileges:true"],
                                    "services_security_opt": ["no-new-privileges:true"],
                                    "pull_policy": ["always"]},
                         "feature_flags": {"FF_NETWORK_PER_BUILD": True, "FF_ENABLE_JOB_CLEANUP": True}}}
    if runner_version is not None:
        args["runner_version"] = runner_version
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": "gate", "hardened.gitlab_runner.runner_config": args, "ignore_errors": True}],
    }]))
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path, ANSIBLE_CONFIG=str(config),
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "local"))
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
               "-e", "ansible_python_interpreter=%s" % sys.executable, str(playbook)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    try:
        result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        pytest.fail("no JSON from ansible-playbook (rc %d): %s %s" % (proc.returncode, proc.stdout, proc.stderr))
    assert TOKEN not in proc.stdout
    return result


def test_the_pinned_version_picks_the_list_and_the_first_notice_names_it(tmp_path, collections_path):
    refused = _gate(tmp_path, collections_path, "18.11.2")
    assert refused["failed"] is True
    assert refused["key_list"]["release"] == "18.11" and refused["key_list"]["runner_version"] == "18.11.2"
    assert "prepare_timeout" in refused["msg"] and "GitLab Runner 18.11.2" in refused["msg"]
    assert 'allow_unknown_keys: {keys: ["prepare_timeout"]' in refused["msg"]
    assert refused["notices"][0] == refused["key_list"]["text"]
    assert refused["notices"][0].endswith("for GitLab Runner 18.11.2 (pinned).")
    passed = _gate(tmp_path, collections_path, "19.0.1-1")
    assert not passed.get("failed") and passed["refusals"] == []
    assert passed["key_list"]["release"] == "19.0"


def test_without_a_pin_the_installed_version_or_the_newest_list_is_used(tmp_path, collections_path):
    result = _gate(tmp_path, collections_path, None)
    assert result["key_list"]["name"] in [key_list.name for key_list in KEY_LISTS]
    text = result["notices"][0]
    assert "(installed)" in text or text.startswith(
        "No GitLab Runner version is known (none is pinned, and gitlab-runner is not installed on the host yet)")


class _Connection(object):
    def __init__(self, rc, stdout):
        self.rc, self.stdout, self.commands = rc, stdout, []

    def __call__(self, command, sudoable=True):
        self.commands.append((command, sudoable))
        return {"rc": self.rc, "stdout": self.stdout, "stderr": ""}


@pytest.mark.parametrize("rc,stdout,version", [
    (0, "ii |18.5.0-1", "18.5.0-1"),
    (0, "hi |19.3.0-1\n", "19.3.0-1"),
    (0, "rc |18.5.0-1", ""),     # removed, configuration files left
    (1, "", ""),                 # not known to dpkg
    (127, "", ""),               # no dpkg-query
    (0, "garbage", ""),
])
def test_installed_version_reads_dpkg_query(rc, stdout, version):
    fake = _Connection(rc, stdout)
    holder = type("Holder", (), {"_low_level_execute_command": staticmethod(fake)})()
    assert ActionModule._installed_version(holder) == version
    assert fake.commands == [(INSTALLED_VERSION, False)]
