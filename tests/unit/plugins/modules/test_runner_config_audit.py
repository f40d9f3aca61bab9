"""runner_config_audit: catalog findings for a config.toml, GR023 for every kind
of broken file (never a traceback), salted token hashes and no token in the
module's output."""

import json
import os

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.hardened.gitlab_runner.plugins.modules import runner_config_audit

TOKEN = "glrt-FAKE-config-audit-token-0123456789"
OTHER_TOKEN = "glrt-FAKE-other-runner-token-9876543210"
SALT = "unit-test-salt-0123456789abcdef"

SECURE = """
concurrent = 2
check_interval = 0
listen_address = "127.0.0.1:9252"

[[runners]]
  name = "ci-docker"
  url = "https://gitlab.example.com/"
  token = "%s"
  executor = "docker"
  [runners.feature_flags]
    FF_NETWORK_PER_BUILD = true
    FF_ENABLE_JOB_CLEANUP = true
  [runners.docker]
    image = "debian:13"
    privileged = false
    services_privileged = false
    cap_drop = ["ALL"]
    security_opt = ["no-new-privileges:true"]
    pull_policy = ["always"]
    volumes = ["/cache"]
""" % TOKEN

INSECURE = """
concurrent = 2

[[runners]]
  name = "ci-docker"
  url = "https://gitlab.example.com/"
  token = "%s"
  executor = "docker"
  [runners.docker]
    image = "debian:13"
    privileged = true
    privilegd = false
    pull_policy = ["if-not-present"]
    volumes = ["/var/run/docker.sock:/var/run/docker.sock", "/cache"]

[[runners]]
  name = "ci-shell"
  url = "https://gitlab.example.com/"
  token = "%s"
  executor = "shell"
""" % (TOKEN, OTHER_TOKEN)


@pytest.fixture(autouse=True)
def installed(monkeypatch):
    """The GitLab Runner version the module finds installed (none unless a test sets one); no command runs."""
    found = {"version": None}
    monkeypatch.setattr(runner_config_audit, "runner_version", lambda module: (
        found["version"], "package gitlab-runner %s" % found["version"] if found["version"] else "not installed"))
    return found


def run(args, capsys):
    """Run the module's main() as Ansible would; return (result, exit code)."""
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            runner_config_audit.main()
    out = capsys.readouterr().out
    return json.loads(out), out, exit_info.value.code


def audit(tmp_path, capsys, text=None, data=None, **args):
    path = tmp_path / "config.toml"
    if data is not None:
        path.write_bytes(data)
    elif text is not None:
        path.write_text(text)
    params = {"path": str(path)}
    params.update(args)
    result, out, code = run(params, capsys)
    assert code == 0, result
    assert result["changed"] is False
    return result, out


def ids(result):
    return [f["id"] for f in result["findings"]]


def gr023(result):
    found = [f for f in result["findings"] if f["id"] == "GR023"]
    assert found, result["findings"]
    return found


def test_secure_config_has_no_high_findings(tmp_path, capsys):
    result, out = audit(tmp_path, capsys, SECURE)
    assert result["parsed"] is True
    assert [f for f in result["findings"] if f["severity"] in ("high", "critical")] == []
    assert result["runners"] == [{
        "index": 0, "name": "ci-docker", "executor": "docker", "url": "https://gitlab.example.com/",
        "token_hash": runner_config_audit.salted_hash("", TOKEN),
    }]
    assert TOKEN not in out


def test_insecure_config_gives_the_right_ids(tmp_path, capsys):
    result, out = audit(tmp_path, capsys, INSECURE)
    found = ids(result)
    for policy_id in ("GR002", "GR012", "GR009", "GR001", "GR015"):
        assert policy_id in found, (policy_id, found)
    typo = [f for f in result["findings"] if f["id"] == "GR015"]
    assert typo[0]["runner"] == "ci-docker" and "privilegd" in typo[0]["setting"]
    shell = [f for f in result["findings"] if f["id"] == "GR001"]
    assert shell[0]["runner"] == "ci-shell"
    assert "GR023" not in found
    assert TOKEN not in out and OTHER_TOKEN not in out
    # Every finding has the catalog's shape.
    for f in result["findings"]:
        assert list(f) == ["id", "severity", "title", "guidance", "runner", "setting", "evidence", "ack",
                           "enforcement"]


def test_not_toml(tmp_path, capsys):
    result, out = audit(tmp_path, capsys, '[[runners]]\n  name = "x"\n  token = "%s\n' % TOKEN)
    assert result["parsed"] is False
    (found,) = gr023(result)
    assert found["evidence"].startswith("not valid TOML: ")
    assert "line" in found["evidence"]
    assert len(found["evidence"]) <= len("not valid TOML: ") + 200
    assert TOKEN not in out


def test_missing_file(tmp_path, capsys):
    result, out = audit(tmp_path, capsys)
    assert result["parsed"] is False
    assert [f["evidence"] for f in gr023(result)] == ["no such file"]
    assert result["runners"] == [] and result["system_id_hash"] is None


def test_missing_parent_is_no_such_file(tmp_path, capsys):
    result, out, code = run({"path": str(tmp_path / "nope" / "config.toml")}, capsys)
    assert code == 0
    assert [f["evidence"] for f in gr023(result)] == ["no such file"]


def test_directory_instead_of_file(tmp_path, capsys):
    (tmp_path / "config.toml").mkdir()
    result, out = audit(tmp_path, capsys)
    assert "directory" in gr023(result)[0]["evidence"]


def test_binary_file(tmp_path, capsys):
    result, out = audit(tmp_path, capsys, data=b"\x7fELF\x02\x01\x01\x00\xff\xfe\x00\x00binary")
    assert "not UTF-8 text" in gr023(result)[0]["evidence"]


def test_nul_bytes(tmp_path, capsys):
    result, out = audit(tmp_path, capsys, data=b'concurrent = 1\x00\n')
    assert "NUL" in gr023(result)[0]["evidence"]


def test_fifo_is_not_opened(tmp_path, capsys):
    os.mkfifo(str(tmp_path / "config.toml"))
    result, out = audit(tmp_path, capsys)
    assert "not a regular file" in gr023(result)[0]["evidence"]


def test_huge_file_is_not_read(tmp_path, capsys, monkeypatch):
    path = tmp_path / "config.toml"
    path.write_text("# padding\n" * 2000)  # 20000 bytes
    reads = []
    real_read = os.read

    def counting_read(fd, size):
        reads.append(size)
        return real_read(fd, size)

    monkeypatch.setattr(runner_config_audit.os, "read", counting_read)
    result, out = audit(tmp_path, capsys, max_size=1000)
    assert "larger than max_size" in gr023(result)[0]["evidence"]
    assert "20000 bytes" in gr023(result)[0]["evidence"]
    assert reads == []


def test_file_that_grows_is_read_at_most_max_size_plus_one(tmp_path, capsys, monkeypatch):
    path = tmp_path / "config.toml"
    path.write_text("concurrent = 1\n" * 200)  # 3000 bytes
    real_stat = os.stat

    class Small(object):
        def __init__(self, st):
            self.st_mode = st.st_mode
            self.st_size = 10

    monkeypatch.setattr(runner_config_audit.os, "stat",
                        lambda p, *a, **k: Small(real_stat(p)) if p == str(path) else real_stat(p, *a, **k))
    reads = []
    real_read = os.read
    monkeypatch.setattr(runner_config_audit.os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    result, out = audit(tmp_path, capsys, max_size=100)
    assert "larger than max_size" in gr023(result)[0]["evidence"]
    assert sum(reads) <= 101


def test_permission_denied(tmp_path, capsys, monkeypatch):
    (tmp_path / "config.toml").write_text(SECURE)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(runner_config_audit.os, "open", denied)
    result, out = audit(tmp_path, capsys)
    assert [f["evidence"] for f in gr023(result)] == ["permission denied"]


@pytest.mark.parametrize("runners", ['"ci"', "5", "true", '{ name = "x", executor = "shell" }'])
def test_runners_not_an_array_of_tables(tmp_path, capsys, runners):
    result, out = audit(tmp_path, capsys, "concurrent = 1\nrunners = %s\n" % runners)
    assert result["parsed"] is True
    assert "not an array of tables" in gr023(result)[0]["evidence"]
    assert result["runners"] == []


def test_runner_that_is_not_a_table(tmp_path, capsys):
    text = 'runners = [1, "x", { name = "ok", executor = "shell", token = "%s" }]\n' % TOKEN
    result, out = audit(tmp_path, capsys, text)
    evidence = [f["evidence"] for f in gr023(result)]
    assert any(e.startswith("runners[0] is of type integer, not a table") for e in evidence)
    assert any(e.startswith("runners[1] is of type string, not a table") for e in evidence)
    assert "GR001" in ids(result)
    assert [r["index"] for r in result["runners"]] == [2]
    assert TOKEN not in out


def test_values_of_the_wrong_type_do_not_hide_other_findings(tmp_path, capsys):
    text = """
session_server = "oops"
[[runners]]
  name = "a"
  executor = "docker"
  feature_flags = 3
  [runners.docker]
    privileged = true
    cap_drop = 5
    security_opt = ["no-new-privileges"]
[[runners]]
  name = "b"
  executor = "shell"
"""
    result, out = audit(tmp_path, capsys, text)
    settings = sorted(f["setting"] for f in gr023(result))
    assert settings == ["runners[0].docker.cap_drop", "runners[0].feature_flags", "session_server"]
    found = ids(result)
    assert "GR002" in found  # privileged still reported
    assert "GR001" in found  # the other runner still checked


def test_token_hashes(tmp_path, capsys):
    one = tmp_path / "one"
    two = tmp_path / "two"
    one.mkdir()
    two.mkdir()
    for directory in (one, two):
        (directory / "config.toml").write_text(INSECURE)
        (directory / ".runner_system_id").write_text("s_0123456789ab\n")

    def hashes(directory, salt):
        result, out, code = run({"path": str(directory / "config.toml"), "salt": salt}, capsys)
        assert code == 0
        assert TOKEN not in out and OTHER_TOKEN not in out
        assert "s_0123456789ab" not in out
        return [r["token_hash"] for r in result["runners"]], result["system_id_hash"]

    first, first_id = hashes(one, SALT)
    second, second_id = hashes(two, SALT)
    assert first == second and first_id == second_id  # a cloned runner is visible
    assert first[0] != first[1]
    assert first[0] == runner_config_audit.salted_hash(SALT, TOKEN)
    assert first_id == runner_config_audit.salted_hash(SALT, "s_0123456789ab")
    other, other_id = hashes(one, SALT + "-other")
    assert other[0] != first[0] and other[1] != first[1] and other_id != first_id


def test_token_never_in_output_not_even_invocation(tmp_path, capsys):
    result, out = audit(tmp_path, capsys, INSECURE, salt=SALT)
    assert TOKEN not in out and OTHER_TOKEN not in out
    assert result["invocation"]["module_args"]["salt"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert SALT not in out


def test_runner_without_token_has_null_hash_and_url_loses_credentials(tmp_path, capsys):
    text = '[[runners]]\n  name = "x"\n  executor = "shell"\n  url = "https://user:pw@gitlab.example.com/"\n'
    result, out = audit(tmp_path, capsys, text)
    assert result["runners"] == [{"index": 0, "name": "x", "executor": "shell",
                                  "url": "https://gitlab.example.com/", "token_hash": None}]
    assert "pw@" not in out


@pytest.mark.parametrize("token", [TOKEN, "legacy-looking-token-abcdef123456"])
def test_unexpected_error_fails_cleanly_without_the_token(tmp_path, capsys, monkeypatch, token):
    def boom(document):
        raise ValueError("cannot handle %s" % document["runners"][0]["token"])

    monkeypatch.setattr(runner_config_audit, "evaluate", lambda document, path, key_list=None: boom(document))
    (tmp_path / "config.toml").write_text(INSECURE.replace(TOKEN, token))
    result, out, code = run({"path": str(tmp_path / "config.toml")}, capsys)
    assert code == 1 and result["failed"] is True
    assert "ValueError" in result["msg"]
    assert "Traceback" not in out
    assert token not in out


def test_bom_is_ignored(tmp_path, capsys):
    result, out = audit(tmp_path, capsys, data=b"\xef\xbb\xbf" + SECURE.encode())
    assert result["parsed"] is True and "GR023" not in ids(result)


def test_missing_toml_library(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runner_config_audit, "_toml", None)
    result, out, code = run({"path": str(tmp_path / "config.toml")}, capsys)
    assert code == 1
    assert "tomli" in result["msg"]


def test_bad_max_size(tmp_path, capsys):
    result, out, code = run({"path": str(tmp_path / "config.toml"), "max_size": 0}, capsys)
    assert code == 1 and "max_size" in result["msg"]


def test_short_salt_warns(tmp_path, capsys, monkeypatch):
    # Captured directly: once another test has loaded controller code,
    # ansible-core displays module warnings instead of returning them.
    given = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, warning, *args, **kwargs: given.append(warning))
    audit(tmp_path, capsys, SECURE, salt="abc")
    assert any("salt is shorter than 16 characters" in warning for warning in given)


# --- the key list of the runner version -----------------------------------------------------

NEWER_KEYS = SECURE.replace('  executor = "docker"\n', '  executor = "docker"\n  prepare_timeout = "10m"\n')


@pytest.fixture
def warned(monkeypatch):
    """The module's warnings (captured directly, see test_short_salt_warns)."""
    given = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, warning, *args, **kwargs: given.append(warning))
    return given


def gr015_and_gr027(result):
    return ([f for f in result["findings"] if f["id"] == "GR015"],
            [f for f in result["findings"] if f["id"] == "GR027"])


def test_unknown_keys_follow_the_runner_version_option(tmp_path, capsys, warned):
    result, out = audit(tmp_path, capsys, NEWER_KEYS, runner_version="18.11.2")
    (unknown,), (version,) = gr015_and_gr027(result)
    assert unknown["severity"] == "high" and unknown["setting"] == 'runners[0] (name "ci-docker").prepare_timeout'
    assert unknown["evidence"] == "unrecognized key 'prepare_timeout' (not in the key list of GitLab Runner 18.11 (v18.11.4))"
    assert version["severity"] == "info" and version["setting"] == "config.toml keys (GR015)"
    assert version["evidence"] == ("config.toml keys and feature flags are checked against the key list of GitLab Runner "
                                   "18.11 (v18.11.4), for GitLab Runner 18.11.2 (runner_version).")
    assert result["key_list"]["name"] == "key list of GitLab Runner 18.11 (v18.11.4)"
    assert result["key_list"]["exact"] is True and result["runner_version"] == "18.11.2"
    assert warned == []
    result, out = audit(tmp_path, capsys, NEWER_KEYS, runner_version="19.0.0")
    assert gr015_and_gr027(result)[0] == []


def test_the_installed_version_picks_the_list(tmp_path, capsys, installed):
    installed["version"] = "18.11.2-1"
    result, out = audit(tmp_path, capsys, NEWER_KEYS)
    (unknown,), (version,) = gr015_and_gr027(result)
    assert "18.11 (v18.11.4)" in unknown["evidence"]
    assert version["evidence"].endswith("for GitLab Runner 18.11.2-1 (installed).")
    assert result["runner_version"] == "18.11.2-1"
    # The option wins over what is installed.
    result, out = audit(tmp_path, capsys, NEWER_KEYS, runner_version="19.0.0")
    assert gr015_and_gr027(result)[0] == []


def test_a_version_without_a_list_warns(tmp_path, capsys, installed, warned):
    installed["version"] = "19.9.1-1"
    result, out = audit(tmp_path, capsys, SECURE.replace('image = "debian:13"', 'image = "debian:13"\n    new_key = 1'))
    (unknown,), (version,) = gr015_and_gr027(result)
    assert result["key_list"]["exact"] is False
    assert version["evidence"].startswith("WARNING: the collection has no key list for the release line of "
                                          "GitLab Runner 19.9.1-1 (installed)")
    assert warned == [version["evidence"]]
    assert "new_key" in unknown["evidence"]


def test_no_runner_installed_uses_the_newest_list_and_says_so(tmp_path, capsys, warned):
    result, out = audit(tmp_path, capsys, SECURE)
    (version,) = gr015_and_gr027(result)[1]
    assert version["evidence"].startswith("No GitLab Runner version is known (no GitLab Runner is installed)")
    assert result["runner_version"] is None and result["key_list"]["exact"] is False
    assert warned == [version["evidence"]]


def test_the_key_list_is_named_even_when_the_file_cannot_be_read(tmp_path, capsys):
    result, out = audit(tmp_path, capsys, runner_version="19.3.0")
    assert {f["id"] for f in result["findings"]} == {"GR023", "GR027"}
    assert result["key_list"]["release"] == "19.3"


# --- files the SSH connections of ssh, virtualbox and parallels runners read (GR047) ----------

SSH_CONFIG = """
[[runners]]
  name = "vm"
  url = "https://gitlab.example.com/"
  token = "%s"
  executor = "%s"
  [runners.feature_flags]
    FF_ENABLE_JOB_CLEANUP = true
  [runners.parallels]
    base_name = "template"
  [runners.ssh]
    user = "ci"
    identity_file = "%s"
    known_hosts_file = "%s"
    disable_strict_host_key_checking = %s
"""

KEY_TEXT = "-----BEGIN OPENSSH PRIVATE KEY-----\nunit-test-not-a-key-0123456789\n-----END OPENSSH PRIVATE KEY-----\n"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files to root and to others")


def ssh_files(tmp_path, key_mode=0o600, hosts_mode=0o644):
    """A private 0700 directory holding an identity file and a known_hosts file, both root's."""
    home = tmp_path / "ssh"
    home.mkdir(mode=0o700)
    key, hosts = home / "id_ed25519", home / "known_hosts"
    key.write_text(KEY_TEXT)
    hosts.write_text("vm ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f\n")
    os.chmod(key, key_mode)
    os.chmod(hosts, hosts_mode)
    return key, hosts


def ssh_audit(tmp_path, capsys, key, hosts, executor="ssh", strict_off="false"):
    result, out = audit(tmp_path, capsys, SSH_CONFIG % (TOKEN, executor, key, hosts, strict_off))
    assert KEY_TEXT.splitlines()[1] not in out
    return [f for f in result["findings"] if f["id"] == "GR047"], result


@needs_root
@pytest.mark.parametrize("executor", ["ssh", "virtualbox", "parallels"])
def test_root_only_ssh_files_pass(tmp_path, capsys, executor):
    key, hosts = ssh_files(tmp_path)
    found, result = ssh_audit(tmp_path, capsys, key, hosts, executor)
    assert found == []
    assert [f for f in result["findings"] if f["severity"] in ("high", "critical")] == []
    os.chmod(key, 0o400)
    os.chmod(hosts, 0o600)
    assert ssh_audit(tmp_path, capsys, key, hosts, executor)[0] == []


@needs_root
@pytest.mark.parametrize("which,change,words", [
    ("key", lambda p: os.chmod(p, 0o640), "mode 0640"),
    ("key", lambda p: os.chmod(p, 0o604), "mode 0604"),
    ("key", lambda p: os.chown(p, 4321, 0), "owned by uid 4321"),
    ("key", os.unlink, "missing"),
    ("key", lambda p: (os.unlink(p), os.mkdir(p)), "not a regular file"),
    ("hosts", lambda p: os.chmod(p, 0o664), "group or others can change it (mode 0664)"),
    ("hosts", lambda p: os.chmod(p, 0o646), "mode 0646"),
    ("hosts", lambda p: os.chown(p, 4321, 0), "owned by uid 4321"),
    ("hosts", os.unlink, "missing"),
    ("hosts", lambda p: os.chmod(os.path.dirname(p), 0o777), "a directory above it"),
    ("hosts", lambda p: os.chown(os.path.dirname(p), 4321, 0), "a directory above it"),
], ids=["key_group_read", "key_other_read", "key_not_root", "key_missing", "key_directory", "hosts_group_write",
        "hosts_other_write", "hosts_not_root", "hosts_missing", "hosts_dir_world_writable", "hosts_dir_not_root"])
def test_ssh_files_open_to_others_or_missing_are_reported(tmp_path, capsys, which, change, words):
    key, hosts = ssh_files(tmp_path)
    path = key if which == "key" else hosts
    change(str(path))
    found, result = ssh_audit(tmp_path, capsys, key, hosts)
    assert len(found) == 1, found
    finding = found[0]
    setting = "[runners.ssh] identity_file" if which == "key" else "[runners.ssh] known_hosts_file"
    assert finding["setting"] == setting and finding["runner"] == "vm" and finding["severity"] == "high"
    assert words in finding["evidence"] and str(path) in finding["evidence"]
    assert finding["enforcement"] == "audit" and finding["ack"] is None


@needs_root
def test_a_link_is_judged_by_the_file_it_points_to(tmp_path, capsys):
    key, hosts = ssh_files(tmp_path)
    link = tmp_path / "ssh" / "key-link"
    os.symlink(str(key), str(link))
    assert ssh_audit(tmp_path, capsys, link, hosts)[0] == []
    os.chmod(key, 0o644)
    found = ssh_audit(tmp_path, capsys, link, hosts)[0]
    assert len(found) == 1 and "mode 0644" in found[0]["evidence"]


def test_relative_paths_cannot_be_checked(tmp_path, capsys):
    found = ssh_audit(tmp_path, capsys, "keys/id", "known_hosts")[0]
    assert sorted(f["setting"] for f in found) == ["[runners.ssh] identity_file", "[runners.ssh] known_hosts_file"]
    assert all("relative path" in f["evidence"] for f in found)


def test_an_unused_known_hosts_file_is_not_judged(tmp_path, capsys):
    """With strict checking off GitLab Runner never reads it (GR013 reports that instead)."""
    key, hosts = ssh_files(tmp_path)
    os.unlink(hosts)
    found, result = ssh_audit(tmp_path, capsys, key, hosts, strict_off="true")
    assert found == [] and "GR013" in ids(result)


def test_the_ssh_section_of_a_docker_runner_is_not_judged(tmp_path, capsys):
    found = ssh_audit(tmp_path, capsys, "/nonexistent/id", "/nonexistent/known_hosts", executor="docker")[0]
    assert found == []


def test_a_path_with_a_nul_byte_is_reported_not_a_crash(tmp_path, capsys):
    found = ssh_audit(tmp_path, capsys, "/root/.ssh/id\\u0000x", "/etc/kh\\u0000")[0]
    assert len(found) == 2 and all("cannot be examined" in f["evidence"] for f in found)
