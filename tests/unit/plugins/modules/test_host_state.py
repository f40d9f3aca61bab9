"""host_state: reads (files, packages, users, groups, names, environment) and
puts directories and files in place, with check mode and refusals, on a
temporary directory. The tests run as root, so ownership is checked with the
``nobody`` user."""

import base64
import grp
import json
import os
import pwd

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.hardened.gitlab_runner.plugins.modules import host_state

NOBODY = pwd.getpwnam("nobody")
NOBODY_GROUP = grp.getgrgid(NOBODY.pw_gid).gr_name


def run(capsys, check_mode=False, diff=False, **args):
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            host_state.main()
    result = json.loads(capsys.readouterr().out)
    result["rc"] = exit_info.value.code
    return result


def mode(path):
    return "%04o" % (os.stat(path).st_mode & 0o7777)


def test_reads_files_without_following_links(capsys, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"key material\n")
    secret.chmod(0o640)
    (tmp_path / "link").symlink_to(secret)
    result = run(capsys, read=[{"path": str(secret), "content": True}, str(tmp_path / "link"),
                               {"path": str(tmp_path / "link"), "content": True}, str(tmp_path / "none"),
                               str(secret / "below-a-file")])
    assert result["rc"] == 0 and result["changed"] is False
    files = result["files"]
    assert files[str(secret)]["type"] == "file"
    assert files[str(secret)]["mode"] == "0640"
    assert files[str(secret)]["owner"] == "root"
    assert base64.b64decode(files[str(secret)]["content"]) == b"key material\n"
    assert files[str(tmp_path / "link")]["type"] == "link"
    assert "content" not in files[str(tmp_path / "link")]
    assert files[str(tmp_path / "none")] == {"type": "missing"}
    assert files[str(secret / "below-a-file")] == {"type": "missing"}


def test_relative_read_path_is_refused(capsys):
    result = run(capsys, read=["etc/passwd"])
    assert result["rc"] == 1 and "not an absolute path" in result["msg"]


def test_packages_in_package_facts_shape_with_holds(capsys, monkeypatch):
    calls = []

    def run_command(self, args, check_rc=False, **kwargs):
        calls.append(args)
        return 1, ("gitlab-runner\t19.3.0-1\tamd64\thi \n"
                   "docker.io\t26.1.5\tamd64\tii \n"
                   "nftables\t\t\tun \n"
                   "libc6:amd64\t2.36\tamd64\tii \n"), "dpkg-query: no packages found matching absent-one\n"

    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name)
    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    result = run(capsys, packages=["gitlab-runner", "docker.io", "nftables", "libc6", "absent-one"])
    assert result["rc"] == 0
    assert calls[0][-6:] == ["--", "gitlab-runner", "docker.io", "nftables", "libc6", "absent-one"]
    assert result["packages"] == {
        "gitlab-runner": [{"name": "gitlab-runner", "version": "19.3.0-1", "arch": "amd64", "source": "apt"}],
        "docker.io": [{"name": "docker.io", "version": "26.1.5", "arch": "amd64", "source": "apt"}],
        "libc6": [{"name": "libc6", "version": "2.36", "arch": "amd64", "source": "apt"}],
    }
    assert result["held"] == ["gitlab-runner"]


def test_dpkg_query_failure_is_an_error(capsys, monkeypatch):
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name)
    monkeypatch.setattr(AnsibleModule, "run_command", lambda self, args, check_rc=False, **kw: (2, "", "database locked"))
    result = run(capsys, packages=["gitlab-runner"])
    assert result["rc"] == 1 and "database locked" in result["msg"]


def test_users_groups_names_and_environment(capsys, monkeypatch):
    monkeypatch.setenv("HGR_TEST_VAR", "10.0.0.1 4242 22")
    monkeypatch.delenv("HGR_TEST_UNSET", raising=False)
    result = run(capsys, users=["nobody", "no-such-user-hgr"], groups=[NOBODY_GROUP, "no-such-group-hgr"],
                 resolve=["localhost", "no-such-host.invalid"], environment=["HGR_TEST_VAR", "HGR_TEST_UNSET"])
    assert result["users"] == {"nobody": {"uid": NOBODY.pw_uid, "gid": NOBODY.pw_gid, "home": NOBODY.pw_dir,
                                          "shell": NOBODY.pw_shell}}
    group = result["groups"][NOBODY_GROUP]
    assert group["gid"] == NOBODY.pw_gid and "nobody" in group["primary_members"]
    assert "no-such-group-hgr" not in result["groups"]
    assert "127.0.0.1" in result["addresses"]["localhost"] or "::1" in result["addresses"]["localhost"]
    assert len(result["addresses"]["localhost"]) == len(set(result["addresses"]["localhost"]))
    assert result["addresses"]["no-such-host.invalid"] == []
    assert result["environment"] == {"HGR_TEST_VAR": "10.0.0.1 4242 22", "HGR_TEST_UNSET": None}
    assert "passwd" not in result
    everyone = run(capsys, passwd=True)["passwd"]
    assert everyone["root"]["uid"] == 0 and everyone["nobody"]["gid"] == NOBODY.pw_gid
    assert len(everyone) == len(pwd.getpwall())


def test_puts_directories_and_files_in_place_then_changes_nothing(capsys, tmp_path):
    top = tmp_path / "etc" / "unit.d"
    files = [
        {"path": str(top), "state": "directory", "mode": "0755"},
        {"path": str(top / "private"), "state": "directory", "mode": "0700", "owner": "nobody", "group": NOBODY_GROUP},
        {"path": str(top / "zz.conf"), "content": "[Service]\nUser=x\n", "mode": "0644"},
    ]
    result = run(capsys, files=files)
    assert result["rc"] == 0 and result["changed"] is True
    assert result["changed_paths"] == [str(top), str(top / "private"), str(top / "zz.conf")]
    assert mode(top) == "0755" and mode(tmp_path / "etc") == "0755"
    assert mode(top / "private") == "0700" and os.stat(top / "private").st_uid == NOBODY.pw_uid
    assert (top / "zz.conf").read_text() == "[Service]\nUser=x\n" and mode(top / "zz.conf") == "0644"
    assert sorted(os.listdir(top)) == ["private", "zz.conf"]  # no temporary file left

    again = run(capsys, files=files)
    assert again["rc"] == 0 and again["changed"] is False and again["changed_paths"] == []


def test_drift_in_mode_owner_and_content_is_put_back(capsys, tmp_path):
    path = tmp_path / "pin"
    path.write_text("old\n")
    path.chmod(0o666)
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    inode = os.stat(path).st_ino
    result = run(capsys, diff=True, files=[{"path": str(path), "content": "new\n", "mode": "0644"}])
    assert result["changed_paths"] == [str(path)]
    assert path.read_text() == "new\n" and mode(path) == "0644" and os.stat(path).st_uid == 0
    assert os.stat(path).st_ino != inode  # replaced by a rename, not rewritten in place
    assert {"before": "old\n", "after": "new\n", "before_header": str(path), "after_header": str(path)} in result["diff"]

    path.chmod(0o600)
    only_mode = run(capsys, files=[{"path": str(path), "content": "new\n", "mode": "0644"}])
    assert only_mode["changed_paths"] == [str(path)] and mode(path) == "0644"


def test_check_mode_changes_nothing(capsys, tmp_path):
    existing = tmp_path / "existing"
    existing.write_text("old\n")
    existing.chmod(0o600)
    result = run(capsys, check_mode=True, files=[
        {"path": str(tmp_path / "new-dir"), "state": "directory", "mode": "0700"},
        {"path": str(tmp_path / "new-dir" / "file"), "content": "x", "mode": "0644"},
        {"path": str(existing), "content": "new\n", "mode": "0644"},
        {"path": str(existing), "state": "absent"},
    ])
    assert result["rc"] == 0 and result["changed"] is True
    assert result["changed_paths"] == [str(tmp_path / "new-dir"), str(tmp_path / "new-dir" / "file"), str(existing)]
    assert not (tmp_path / "new-dir").exists()
    assert existing.read_text() == "old\n" and mode(existing) == "0600"


@pytest.mark.parametrize("kind", ["link", "directory"])
def test_another_type_is_refused_not_replaced(capsys, tmp_path, kind):
    path = tmp_path / "daemon.json"
    target = tmp_path / "elsewhere"
    target.write_text("keep\n")
    if kind == "link":
        path.symlink_to(target)
    else:
        path.mkdir()
    result = run(capsys, files=[{"path": str(path), "content": "{}", "mode": "0644"}])
    assert result["rc"] == 1 and "refused to replace it" in result["msg"]
    assert target.read_text() == "keep\n"
    assert path.is_symlink() if kind == "link" else path.is_dir()


def test_a_file_where_a_directory_is_wanted_is_refused(capsys, tmp_path):
    path = tmp_path / "rules.d"
    path.write_text("x")
    result = run(capsys, files=[{"path": str(path), "state": "directory", "mode": "0755"}])
    assert result["rc"] == 1 and "is a file, not a directory" in result["msg"]


def test_absent_removes_files_only(capsys, tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text("x")
    result = run(capsys, files=[{"path": str(path), "state": "absent"}, {"path": str(tmp_path / "gone"), "state": "absent"}])
    assert result["changed_paths"] == [str(path)] and not path.exists()
    refused = run(capsys, files=[{"path": str(tmp_path), "state": "absent"}])
    assert refused["rc"] == 1 and tmp_path.is_dir()


def test_file_without_content_or_directory_is_an_error(capsys, tmp_path):
    no_content = run(capsys, files=[{"path": str(tmp_path / "f"), "mode": "0644"}])
    assert no_content["rc"] == 1 and "no content" in no_content["msg"]
    no_dir = run(capsys, files=[{"path": str(tmp_path / "missing" / "f"), "content": "x"}])
    assert no_dir["rc"] == 1 and "does not exist" in no_dir["msg"]


def test_units_from_one_systemctl_show(capsys, monkeypatch):
    calls = []

    def run_command(self, args, check_rc=False, **kwargs):
        calls.append(args)
        return 0, ("Id=docker.socket\nUnitFileState=enabled\nActiveState=active\n\n"
                   "Id=docker.service\nActiveState=inactive\nUnitFileState=disabled\n"), ""

    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: "/bin/" + name)
    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    result = run(capsys, units=["docker.socket", "docker.service"])
    assert len(calls) == 1 and calls[0][-2:] == ["docker.socket", "docker.service"]
    assert result["units"] == {"docker.socket": {"enabled": "enabled", "active": "active"},
                               "docker.service": {"enabled": "disabled", "active": "inactive"}}


@pytest.mark.parametrize("systemctl", [None, "/bin/systemctl"])
def test_units_without_systemd_are_unknown(capsys, monkeypatch, systemctl):
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: systemctl)
    monkeypatch.setattr(AnsibleModule, "run_command",
                        lambda self, args, check_rc=False, **kw: (1, "", "System has not been booted with systemd"))
    assert run(capsys, units=["docker.service"])["units"] == {}
