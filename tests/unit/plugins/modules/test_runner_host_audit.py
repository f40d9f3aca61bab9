"""runner_host_audit: GR020/GR021/GR024/GR025/GR026/GR027 from a fake host
(temporary directories, a fake passwd entry, fake tools), and no crash when
the tools are missing.

The tests run as root, so readability is checked for the ``nobody`` user."""

import grp
import json
import os
import pwd
import shutil
import tempfile

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.hardened.gitlab_runner.plugins.modules import runner_host_audit

KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n"
NOBODY = pwd.getpwnam("nobody")
NOBODY_GROUP = grp.getgrgid(NOBODY.pw_gid).gr_name

SYSTEMCTL_SHOW = (
    "ExecStart={ path=/usr/bin/gitlab-runner ; argv[]=/usr/bin/gitlab-runner run --config "
    "/etc/gitlab-runner/config.toml --working-directory /home/gitlab-runner --service gitlab-runner%s ; "
    "ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }\n"
)


@pytest.fixture
def tools(monkeypatch, tmp_path):
    """No tool exists unless a test adds it; run_command answers from ``answers``."""
    state = {"bins": {}, "answers": {}, "calls": []}

    def get_bin_path(self, arg, required=False, opt_dirs=None):
        return state["bins"].get(arg)

    def run_command(self, args, check_rc=False, **kwargs):
        assert check_rc is False
        state["calls"].append(list(args))
        answer = state["answers"][os.path.basename(args[0])]
        return answer(args) if callable(answer) else answer

    def add(name, answer):
        state["bins"][name] = "/usr/bin/" + name
        state["answers"][name] = answer

    state["add"] = add
    monkeypatch.setattr(AnsibleModule, "get_bin_path", get_bin_path)
    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    # Never read the real host's units.
    units = tmp_path / "units"
    monkeypatch.setattr(runner_host_audit, "UNIT_DIRS", (str(units / "etc"), str(units / "lib")))
    return state


@pytest.fixture
def warnings(monkeypatch):
    """Warnings given by the module (once another test has loaded controller code,
    ansible-core displays module warnings instead of returning them)."""
    given = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, warning, *args, **kwargs: given.append(warning))
    return given


@pytest.fixture
def open_dir():
    """A directory everybody can search (pytest's tmp_path is below a 0700 directory)."""
    path = tempfile.mkdtemp(prefix="hgr-host-audit-", dir="/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


def run(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            runner_host_audit.main()
    out = capsys.readouterr().out
    result = json.loads(out)
    assert exit_info.value.code == 0, result
    assert result["changed"] is False
    return result


def audit(capsys, tmp_path, **args):
    params = {
        "config_dir": str(tmp_path / "no-config-dir"),
        "job_user": "nobody",
        "ssh_key_paths": [],
    }
    params.update(args)
    return run(params, capsys)


def by_id(result, policy_id):
    return [f for f in result["findings"] if f["id"] == policy_id]


def write(path, data, mode, uid=0, gid=0):
    with open(path, "wb") as handle:
        handle.write(data)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


# --- missing tools -----------------------------------------------------------

def test_no_tools_and_no_user(tools, capsys, tmp_path):
    result = audit(capsys, tmp_path, job_user="hgr-no-such-user")
    assert result["job_user"] == {"name": "hgr-no-such-user", "exists": False, "uid": None, "gid": None,
                                  "groups": [], "shell": None, "home": None, "home_mode": None}
    assert [f["id"] for f in result["findings"]] == ["GR027"]
    assert "not installed" in result["findings"][0]["evidence"]
    assert result["runner_version"] is None
    assert result["sudo_rights"] is None
    assert result["service_exec_start_user"] is None and result["service_exec_start"] is None
    assert result["files_scanned"] == 0 and result["scan_truncated"] is False
    assert tools["calls"] == []


def test_default_job_user_without_service(tools, capsys, tmp_path):
    result = audit(capsys, tmp_path, job_user=None)
    assert result["job_user"]["name"] == "gitlab-runner"
    assert result["job_user_source"] == "default"
    assert by_id(result, "GR026") == []


def test_systemctl_without_systemd_falls_back_to_unit_files(tools, capsys, tmp_path):
    tools["add"]("systemctl", (1, "", "System has not been booted with systemd as init system (PID 1).\n"))
    etc = tmp_path / "units" / "etc"
    etc.mkdir(parents=True)
    (etc / "gitlab-runner.service").write_text(
        "[Unit]\nDescription=GitLab Runner\n\n[Service]\n"
        "ExecStart=/usr/bin/gitlab-runner \\\n  run --config /etc/gitlab-runner/config.toml\n")
    result = audit(capsys, tmp_path, job_user=None)
    assert result["service_exec_start"] == "/usr/bin/gitlab-runner run --config /etc/gitlab-runner/config.toml"
    assert result["service_exec_start_user"] is None
    assert [f["id"] for f in by_id(result, "GR026")] == ["GR026"]
    assert "no --user" in by_id(result, "GR026")[0]["evidence"]


def test_drop_in_sets_the_user_last_exec_start_wins(tools, capsys, tmp_path):
    etc = tmp_path / "units" / "etc"
    lib = tmp_path / "units" / "lib"
    (lib / "gitlab-runner.service.d").mkdir(parents=True)
    (etc / "gitlab-runner.service.d").mkdir(parents=True)
    (lib / "gitlab-runner.service").write_text("[Service]\nExecStart=/usr/bin/gitlab-runner run\n")
    (lib / "gitlab-runner.service.d" / "10-first.conf").write_text(
        "[Service]\nExecStart=\nExecStart=/usr/bin/gitlab-runner run --user early\n")
    (etc / "gitlab-runner.service.d" / "50-hardened.conf").write_text(
        "[Service]\nExecStart=\nExecStart=/usr/bin/gitlab-runner run --user=nobody --service gitlab-runner\n")
    result = audit(capsys, tmp_path, job_user=None)
    assert result["service_exec_start_user"] == "nobody"
    assert result["job_user"]["name"] == "nobody" and result["job_user_source"] == "service"
    assert by_id(result, "GR026") == []


def test_systemctl_show_gives_the_user(tools, capsys, tmp_path):
    tools["add"]("systemctl", (0, SYSTEMCTL_SHOW % " --user nobody", ""))
    result = audit(capsys, tmp_path, job_user=None)
    assert tools["calls"][0][1:] == ["show", "-p", "ExecStart", "--", "gitlab-runner.service"]
    assert result["service_exec_start_user"] == "nobody"
    assert result["job_user"]["name"] == "nobody"
    assert by_id(result, "GR026") == []


def test_systemctl_show_without_user_gives_gr026_unless_disabled(tools, capsys, tmp_path):
    tools["add"]("systemctl", (0, SYSTEMCTL_SHOW % "", ""))
    result = audit(capsys, tmp_path)
    assert len(by_id(result, "GR026")) == 1
    assert result["service_exec_start_user"] is None
    result = audit(capsys, tmp_path, check_service_user=False)
    assert by_id(result, "GR026") == []


# --- GR020 -------------------------------------------------------------------

def test_permissive_config_dir(tools, capsys, tmp_path):
    config_dir = tmp_path / "gitlab-runner"
    config_dir.mkdir()
    os.chmod(str(config_dir), 0o755)
    write(str(config_dir / "config.toml"), b"concurrent = 1\n", 0o644)
    write(str(config_dir / ".runner_system_id"), b"s_0123456789ab\n", 0o600)
    write(str(config_dir / "hardened-acknowledgements.json"), b"{}", 0o640)
    write(str(config_dir / "not-root.txt"), b"", 0o600, uid=NOBODY.pw_uid)
    (config_dir / "certs").mkdir()
    result = audit(capsys, tmp_path, config_dir=str(config_dir))
    found = {f["setting"]: f["evidence"] for f in by_id(result, "GR020")}
    assert sorted(found) == sorted([
        str(config_dir), str(config_dir / "config.toml"),
        str(config_dir / "hardened-acknowledgements.json"), str(config_dir / "not-root.txt"),
    ])
    assert found[str(config_dir / "config.toml")] == "%s mode 0644 owner root:root" % (config_dir / "config.toml")
    assert found[str(config_dir)].endswith("mode 0755 owner root:root")
    assert "owner nobody:" in found[str(config_dir / "not-root.txt")]


def test_tight_config_dir(tools, capsys, tmp_path):
    config_dir = tmp_path / "gitlab-runner"
    config_dir.mkdir()
    os.chmod(str(config_dir), 0o700)
    write(str(config_dir / "config.toml"), b"concurrent = 1\n", 0o600)
    write(str(config_dir / ".runner_system_id"), b"s_0123456789ab\n", 0o400)
    result = audit(capsys, tmp_path, config_dir=str(config_dir))
    assert by_id(result, "GR020") == []


# --- GR021 -------------------------------------------------------------------

def test_root_job_user(tools, capsys, tmp_path):
    result = audit(capsys, tmp_path, job_user="root")
    evidence = [f["evidence"] for f in by_id(result, "GR021")]
    assert "root has uid 0 (root)" in evidence
    assert "root is in group root (primary)" in evidence


def test_forbidden_group(tools, capsys, tmp_path):
    result = audit(capsys, tmp_path, forbidden_groups=[NOBODY_GROUP])
    assert [f["evidence"] for f in by_id(result, "GR021")] == [
        "nobody is in group %s (primary)" % NOBODY_GROUP]
    assert result["job_user"]["groups"][0] == NOBODY_GROUP
    assert by_id(audit(capsys, tmp_path), "GR021") == []


def test_sudo_rights(tools, capsys, tmp_path):
    tools["add"]("sudo", (0, "Matching Defaults entries for nobody on host:\n    env_reset\n\n"
                             "User nobody may run the following commands on host:\n"
                             "    (ALL) NOPASSWD: ALL\n    (root) /usr/bin/systemctl\n", ""))
    result = audit(capsys, tmp_path)
    assert tools["calls"][0] == ["/usr/bin/sudo", "-n", "-l", "-U", "nobody"]
    (found,) = by_id(result, "GR021")
    assert found["evidence"] == "sudo -l: (ALL) NOPASSWD: ALL; (root) /usr/bin/systemctl"
    assert result["sudo_rights"] is True


def test_no_sudo_rights(tools, capsys, tmp_path):
    tools["add"]("sudo", (1, "User nobody is not allowed to run sudo on host.\n", ""))
    result = audit(capsys, tmp_path)
    assert by_id(result, "GR021") == [] and result["sudo_rights"] is False


def test_sudo_answer_unknown_warns(tools, capsys, tmp_path, warnings):
    tools["add"]("sudo", (1, "", "sudo: a password is required\n"))
    result = audit(capsys, tmp_path)
    assert result["sudo_rights"] is None
    assert "sudo rights of nobody" in " ".join(warnings)


# --- GR024 -------------------------------------------------------------------

def _fake_user(monkeypatch, home):
    """The current user, with ``home`` as its home directory."""
    me = pwd.getpwuid(os.getuid())
    fake = pwd.struct_passwd((me.pw_name, "x", me.pw_uid, me.pw_gid, "", str(home), "/bin/sh"))
    real = pwd.getpwnam
    monkeypatch.setattr(runner_host_audit.pwd, "getpwnam", lambda name: fake if name == me.pw_name else real(name))
    return me.pw_name


def test_open_home(tools, capsys, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "builds").mkdir(parents=True)
    os.chmod(str(home), 0o755)
    os.chmod(str(home / "builds"), 0o700)
    name = _fake_user(monkeypatch, home)
    result = audit(capsys, tmp_path, job_user=name)
    found = by_id(result, "GR024")
    assert [f["setting"] for f in found] == [str(home)]
    assert found[0]["evidence"].endswith("mode 0755 owner %s:%s" % (name, grp.getgrgid(os.getgid()).gr_name))
    assert result["job_user"]["home"] == str(home) and result["job_user"]["home_mode"] == "0755"


def test_builds_dir_open_or_not_owned(tools, capsys, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "builds").mkdir(parents=True)
    os.chmod(str(home), 0o700)
    os.chmod(str(home / "builds"), 0o770)
    name = _fake_user(monkeypatch, home)
    assert [f["setting"] for f in by_id(audit(capsys, tmp_path, job_user=name), "GR024")] == [str(home / "builds")]
    os.chmod(str(home / "builds"), 0o700)
    os.chown(str(home / "builds"), NOBODY.pw_uid, -1)
    assert [f["setting"] for f in by_id(audit(capsys, tmp_path, job_user=name), "GR024")] == [str(home / "builds")]
    os.chown(str(home / "builds"), os.getuid(), -1)
    assert by_id(audit(capsys, tmp_path, job_user=name), "GR024") == []


# --- GR025 -------------------------------------------------------------------

def test_private_keys_readable_by_nobody(tools, capsys, tmp_path, open_dir):
    keys = os.path.join(open_dir, "keys")
    os.mkdir(keys)
    os.chmod(keys, 0o755)
    readable = write(os.path.join(keys, "deploy"), KEY, 0o644)
    write(os.path.join(keys, "root-only"), KEY, 0o600)
    via_group = write(os.path.join(keys, "group"), KEY, 0o640, gid=NOBODY.pw_gid)
    # Owner bits apply to the owner even when "other" may read.
    write(os.path.join(keys, "owner-denied"), KEY, 0o044, uid=NOBODY.pw_uid)
    by_name = write(os.path.join(keys, "id_deploy"), b"not a key, but named like one\n", 0o644)
    write(os.path.join(keys, "id_deploy.pub"), b"ssh-ed25519 AAAA\n", 0o644)
    write(os.path.join(keys, "id_map.py"), b"x = 1\n", 0o644)
    write(os.path.join(keys, "big"), KEY + b"x" * (64 * 1024), 0o644)  # too big to sniff, name says nothing
    os.symlink(readable, os.path.join(keys, "link-to-key"))
    hidden = os.path.join(keys, "closed")
    os.mkdir(hidden)
    os.chmod(hidden, 0o700)
    write(os.path.join(hidden, "id_rsa"), KEY, 0o644)  # parent not searchable by nobody
    result = audit(capsys, tmp_path, ssh_key_paths=[open_dir])
    found = {f["setting"]: f["evidence"] for f in by_id(result, "GR025")}
    assert sorted(found) == sorted([readable, via_group, by_name])
    assert found[readable] == "%s mode 0644 owner root:root, readable by nobody via other" % readable
    assert found[via_group].endswith("readable by nobody via group %s" % NOBODY_GROUP)
    assert result["files_scanned"] == 9
    assert result["scan_truncated"] is False
    assert "fake" not in json.dumps(result)


def test_key_in_closed_pytest_dir_is_not_readable(tools, capsys, tmp_path):
    # tmp_path's ancestor /tmp/pytest-of-root is 0700: nobody cannot reach the key.
    write(str(tmp_path / "id_ed25519"), KEY, 0o644)
    result = audit(capsys, tmp_path, ssh_key_paths=[str(tmp_path)])
    assert result["files_scanned"] == 1
    assert by_id(result, "GR025") == []


def test_etc_ssh_host_key_name_rule(tools, capsys, tmp_path):
    assert runner_host_audit.KeyScanner._looks_like_key("/etc/ssh", "ssh_host_ed25519_key", os.stat("/"), "/nope")
    assert not runner_host_audit.KeyScanner._looks_like_key("/srv", "api_key", os.stat("/"), "/nope")


def test_max_files(tools, capsys, tmp_path, open_dir, warnings):
    for index in range(5):
        write(os.path.join(open_dir, "f%d" % index), b"data\n", 0o644)
    result = audit(capsys, tmp_path, ssh_key_paths=[open_dir, open_dir], max_files=2)
    assert result["files_scanned"] == 2 and result["scan_truncated"] is True
    assert "max_files=2" in " ".join(warnings)
    result = audit(capsys, tmp_path, ssh_key_paths=[open_dir, open_dir, os.path.join(open_dir, "f0")])
    assert result["files_scanned"] == 5 and result["scan_truncated"] is False


def test_pseudo_file_systems_are_skipped(tools, capsys, tmp_path):
    result = audit(capsys, tmp_path, ssh_key_paths=["/proc", "/sys/kernel", "/dev"])
    assert result["files_scanned"] == 0


def test_missing_job_user_skips_user_checks(tools, capsys, tmp_path, open_dir):
    write(os.path.join(open_dir, "id_rsa"), KEY, 0o644)
    result = audit(capsys, tmp_path, job_user="hgr-no-such-user", ssh_key_paths=[open_dir])
    assert result["job_user"]["exists"] is False
    assert [f["id"] for f in result["findings"]] == ["GR027"]


# --- GR027 -------------------------------------------------------------------

def test_version_from_dpkg_and_binary(tools, capsys, tmp_path):
    tools["add"]("dpkg-query", (0, "ii |18.2.1-1", ""))
    tools["add"]("gitlab-runner", (0, "Version:      18.2.1\nGit revision: 12345678\n", ""))
    result = audit(capsys, tmp_path)
    assert result["runner_version"] == "18.2.1-1"
    (found,) = by_id(result, "GR027")
    assert found["evidence"] == "package gitlab-runner 18.2.1-1; gitlab-runner --version: Version: 18.2.1"
    assert found["severity"] == "info"


def test_version_from_binary_only_and_removed_package(tools, capsys, tmp_path):
    tools["add"]("dpkg-query", (0, "rc |18.2.1-1", ""))
    tools["add"]("gitlab-runner", (0, "Version:      18.3.0\n", ""))
    assert audit(capsys, tmp_path)["runner_version"] == "18.3.0"


def test_not_installed(tools, capsys, tmp_path):
    tools["add"]("dpkg-query", (1, "", "dpkg-query: no packages found matching gitlab-runner\n"))
    result = audit(capsys, tmp_path)
    assert result["runner_version"] is None
    assert by_id(result, "GR027")[0]["evidence"] == "GitLab Runner is not installed (checked: dpkg-query)"


# --- helpers -----------------------------------------------------------------

@pytest.mark.parametrize("argv, user", [
    (["gitlab-runner", "run", "--user", "ci"], "ci"),
    (["gitlab-runner", "run", "--user=ci"], "ci"),
    (["gitlab-runner", "run", "-u", "ci"], "ci"),
    (["gitlab-runner", "run", "-user", "ci"], "ci"),
    (["gitlab-runner", "run", "--user"], None),
    (["gitlab-runner", "run", "--working-directory", "/home/u"], None),
])
def test_user_from_argv(argv, user):
    assert runner_host_audit.user_from_argv(argv) == user
