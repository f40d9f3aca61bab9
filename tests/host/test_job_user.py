"""The job user (the service's --user, whom shell-executor jobs run as): no way to root, nothing of the runner's to read."""

import pytest
from baseline import as_user, describe, q, run, stat

# roles/gitlab_runner/defaults/main.yml gitlab_runner_job_user_forbidden_groups: each gives its members root.
FORBIDDEN_GROUPS = ("docker", "sudo", "wheel", "adm", "lxd", "root", "disk", "shadow")


def test_job_user_exists(root_host, expected):
    rc, out, _err = run(root_host, "getent passwd %s" % q(expected.job_user))
    assert rc == 0 and out, "the job user %s does not exist" % expected.job_user


def test_job_user_not_root(job_user):
    assert job_user["uid"] != 0, "the job user %s has uid 0" % job_user["name"]
    assert job_user["gid"] != 0, "the job user %s has gid 0 (group root)" % job_user["name"]


def test_job_user_groups(root_host, job_user):
    rc, out, err = run(root_host, "id -Gn %s" % q(job_user["name"]))
    assert rc == 0, err
    bad = sorted(set(out.split()) & set(FORBIDDEN_GROUPS))
    assert not bad, "the job user %s is in %s, which give root on the host (groups: %s)" % (job_user["name"], ", ".join(bad), out)


def test_job_user_has_no_sudo_rights(root_host, job_user):
    if not root_host.exists("sudo"):
        pytest.skip("sudo is not installed on the host: no sudo rights to have")
    rc, out, err = run(root_host, "sudo -n -l -U %s" % q(job_user["name"]))
    listing = (out + " " + err).strip()
    assert "is not allowed to run sudo" in listing, "sudo -l -U %s (rc %d) lists rights: %s" % (job_user["name"], rc, listing)


@pytest.mark.parametrize("which", ["home", "builds"])
def test_job_user_directories_private(root_host, expected, job_user, which):
    path = expected.job_user_home if which == "home" else expected.builds_dir
    group = run(root_host, "id -gn %s" % q(job_user["name"]))[1]
    seen = stat(root_host, path)
    assert seen == (0o700, job_user["name"], group), "%s is %s, not 0700 %s:%s" % (path, describe(seen), job_user["name"], group)


def test_job_user_cannot_read_config(root_host, expected, job_user, config_text):
    assert config_text
    rc, out, _err = run(root_host, as_user(job_user["name"], "cat -- %s" % q(expected.config_file)))
    assert rc != 0, "the job user %s can read %s (%d characters)" % (job_user["name"], expected.config_file, len(out))
    rc, out, _err = run(root_host, as_user(job_user["name"], "ls -A -- %s" % q(expected.config_dir)))
    assert rc != 0, "the job user %s can list %s: %s" % (job_user["name"], expected.config_dir, out)


def test_job_user_cannot_sudo(root_host, job_user):
    rc, out, err = run(root_host, as_user(job_user["name"], "sudo -n true"))
    assert rc != 0, "the job user %s can run `sudo -n true` (it exits 0) %s" % (job_user["name"], out or err)


SOCKET_CONNECT = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "try:\n"
    "    s.connect(sys.argv[1])\n"
    "except OSError as err:\n"
    "    sys.exit('refused: %s' % err)\n"
    "print('connected')\n"
)


def test_job_user_cannot_use_docker_socket(root_host, expected, job_user):
    socket = expected.docker_socket
    if run(root_host, "test -S %s" % q(socket))[0] != 0:
        pytest.skip("no Docker socket at %s: nothing to connect to" % socket)
    rc, _out, _err = run(root_host, as_user(job_user["name"], "test -w %s" % q(socket)))
    assert rc != 0, "the job user %s may write to %s, so its jobs are root on the host" % (job_user["name"], socket)
    if root_host.exists("python3"):
        rc, out, _err = run(root_host, as_user(job_user["name"], "python3 -c %s %s" % (q(SOCKET_CONNECT), q(socket))))
        assert rc != 0, "the job user %s connects to %s: %s" % (job_user["name"], socket, out)
