"""The runner_config action picks the key list of the runner version: the pinned one, else the
installed package's (read with dpkg-query over the connection), else the newest; it says which.
It writes the host keys ssh-type runners pin to their own known_hosts files, and removes them
with their runner."""

import json
import os
import subprocess
import sys
import tomllib

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


# --- pinned SSH host keys: one managed known_hosts file per runner ------------------------------

PIN_A = "vm ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"
PIN_B = "[localhost]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB8eHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgEA"


def _ssh_runner(name, pins, executor="ssh"):
    runner = {"name": name, "url": "https://gitlab.example.test", "token": TOKEN + name, "executor": executor,
              "ssh": {"host": "vm", "user": "ci"}, "ssh_known_hosts": pins}
    if executor in ("virtualbox", "parallels"):
        runner[executor] = {"base_name": "template"}
    return runner


def _step(tmp_path, runners, check=False):
    """A task running the action as the role's config.yml does (not gate-only)."""
    from ansible_collections.hardened.gitlab_runner.tests.unit.plugins.filter.test_policy_gate import DEFAULTS

    args = {"runners": runners, "path": str(tmp_path / "etc" / "config.toml"), "defaults": DEFAULTS,
            "acknowledgements_path": str(tmp_path / "etc" / "hardened-acknowledgements.json")}
    return {"name": "apply", "hardened.gitlab_runner.runner_config": args, "check_mode": check}


def _play(tmp_path, collections_path, tasks, allow_failure=False):
    """Run the tasks on this machine in one play; returns their results, none failed unless allowed."""
    playbook = tmp_path / "apply.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path, ANSIBLE_CONFIG=str(config),
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_PIPELINING="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "local"))
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
               "-e", "ansible_python_interpreter=%s" % sys.executable, str(playbook)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    try:
        results = [task["hosts"]["localhost"] for task in json.loads(proc.stdout)["plays"][0]["tasks"]]
    except (ValueError, KeyError, IndexError):
        pytest.fail("no JSON from ansible-playbook (rc %d): %s %s" % (proc.returncode, proc.stdout, proc.stderr))
    assert TOKEN not in proc.stdout
    assert len(results) == len(tasks) and (allow_failure or not any(r.get("failed") for r in results)), results
    return results


def _known_hosts_dir(tmp_path):
    return tmp_path / "etc" / "known_hosts.d"


def _pinned(tmp_path):
    """{file name: (mode, uid, gid, lines)} of the managed directory."""
    out = {}
    for entry in sorted(os.listdir(_known_hosts_dir(tmp_path))):
        path = _known_hosts_dir(tmp_path) / entry
        info = os.lstat(path)
        lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
        out[entry] = ("%04o" % (info.st_mode & 0o7777), info.st_uid, info.st_gid, lines)
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="the action writes config.toml and the pins as root")
def test_pins_are_written_kept_changed_and_removed_with_their_runner(tmp_path, collections_path):
    from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config import known_hosts_path

    (tmp_path / "etc").mkdir(mode=0o700)
    directory = str(_known_hosts_dir(tmp_path))
    path_a, path_b = known_hosts_path(directory, "a"), known_hosts_path(directory, "b/vbox")
    runners = [_ssh_runner("a", [PIN_A]), _ssh_runner("b/vbox", [PIN_B, PIN_A], "virtualbox")]

    first, again = _play(tmp_path, collections_path, [_step(tmp_path, runners), _step(tmp_path, runners)])
    assert first["changed"] is True and first["known_hosts_changed"] is True
    assert again["changed"] is False and again["known_hosts_changed"] is False
    assert _pinned(tmp_path) == {os.path.basename(path_a): ("0644", 0, 0, [PIN_A]),
                                 os.path.basename(path_b): ("0644", 0, 0, [PIN_B, PIN_A])}
    info = os.stat(directory)
    assert "%04o" % (info.st_mode & 0o7777) == "0700" and info.st_uid == 0
    config = tomllib.loads((tmp_path / "etc" / "config.toml").read_text())
    assert [r["ssh"]["known_hosts_file"] for r in config["runners"]] == [path_a, path_b]
    assert [r["ssh"]["disable_strict_host_key_checking"] for r in config["runners"]] == [False, False]

    # A changed pin, a runner gone, a stray file and a wrong mode: all put right in one run.
    (_known_hosts_dir(tmp_path) / "stray").write_text("x\n")
    os.chmod(path_a, 0o666)
    (changed,) = _play(tmp_path, collections_path,
                       [_step(tmp_path, [_ssh_runner("a", [PIN_B]), {"name": "b/vbox", "state": "absent"}])])
    assert changed["changed"] is True and changed["known_hosts_changed"] is True
    assert _pinned(tmp_path) == {os.path.basename(path_a): ("0644", 0, 0, [PIN_B])}

    # In check mode nothing moves, though the task says it would; then no runner connects over
    # SSH any more and the directory goes.
    docker = {"name": "d", "url": "https://gitlab.example.test", "token": TOKEN + "d", "executor": "docker"}
    look = {"name": "look", "ansible.builtin.stat": {"path": path_a}}
    checked, kept, last, after = _play(tmp_path, collections_path, [
        _step(tmp_path, [docker], check=True), look, _step(tmp_path, [docker]), _step(tmp_path, [docker])])
    assert checked["changed"] is True and checked["known_hosts_changed"] is True
    assert kept["stat"]["exists"] is True
    assert last["known_hosts_changed"] is True
    assert not os.path.exists(directory)
    assert after["changed"] is False and after["known_hosts_changed"] is False


@pytest.mark.skipif(os.geteuid() != 0, reason="the action writes config.toml as root")
def test_a_host_without_ssh_runners_gets_no_directory(tmp_path, collections_path):
    (tmp_path / "etc").mkdir(mode=0o700)
    docker = {"name": "d", "url": "https://gitlab.example.test", "token": TOKEN + "d", "executor": "docker"}
    (result,) = _play(tmp_path, collections_path, [_step(tmp_path, [docker])])
    assert result["known_hosts_changed"] is False
    assert not os.path.exists(_known_hosts_dir(tmp_path))


@pytest.mark.parametrize("path,directory", [
    ("/etc/gitlab-runner/config.toml", "/etc/gitlab-runner/known_hosts.d"),
    ("/etc/gitlab-runner//config.toml", "/etc/gitlab-runner/known_hosts.d"),
    ("/etc/gitlab-runner/./config.toml", "/etc/gitlab-runner/known_hosts.d"),
    ("/srv/x/../runner/config.toml", "/srv/runner/known_hosts.d"),
])
def test_the_directory_is_named_as_find_lists_it(path, directory):
    """A path spelt two ways would make every pinned file look stale: written, then removed, every run."""
    from ansible_collections.hardened.gitlab_runner.plugins.action.runner_config import known_hosts_dir

    assert known_hosts_dir(path) == directory


def test_only_a_config_naming_the_directory_sends_the_action_looking():
    from ansible_collections.hardened.gitlab_runner.plugins.action.runner_config import names_known_hosts_dir

    directory = "/etc/gitlab-runner/known_hosts.d"
    assert names_known_hosts_dir({"runners": [{"ssh": {"known_hosts_file": directory + "/a-1"}}]}, directory)
    assert names_known_hosts_dir({"runners": [{"SSH": {"Known_Hosts_File": directory + "/a-1"}}]}, directory)
    for document in ({}, {"runners": "x"}, {"runners": [1, {"ssh": "x"}]},
                     {"runners": [{"ssh": {"known_hosts_file": directory}}]},
                     {"runners": [{"ssh": {"known_hosts_file": directory + ".old/a"}}]},
                     {"runners": [{"docker": {"known_hosts_file": directory + "/a"}}]}):
        assert not names_known_hosts_dir(document, directory), document
