"""What a shell job can reach, tried as each trust group's job user.

A shell job runs on the host itself as the service's ``--user``. For each job
user: no sudo, no Docker socket, no config.toml (its own or another group's),
and no other group's builds or cache. Every denial has a positive control
(the same command as a user who should succeed), so a test cannot pass
because the command itself is broken.
"""

import shlex

import pytest

CONNECT = "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print('connected')"


def as_user(host, user, command):
    return host.run("runuser -u %s -- sh -c %s" % (shlex.quote(user), shlex.quote(command)))


def test_the_service_runs_jobs_as_its_job_user(host, group):
    show = host.run("systemctl show -p ActiveState -p ExecStart %s", group.service)
    assert "ActiveState=active" in show.stdout
    assert "--user %s" % group.user in show.stdout and "--config %s/config.toml" % group.config_dir in show.stdout
    entry = host.user(group.user)
    assert entry.uid != 0 and entry.home == group.home


def test_job_user_cannot_sudo(host, group, sudo_user):
    if not host.exists("sudo"):
        pytest.fail("sudo is not installed: install it (the scenario's prepare does) to try this control")
    if sudo_user:
        control = as_user(host, sudo_user, "sudo -n true")
        assert control.rc == 0, "positive control: %s cannot sudo either: %s" % (sudo_user, control.stderr)
    tried = as_user(host, group.user, "sudo -n true")
    assert tried.rc != 0, "%s can run commands as root through sudo" % group.user
    rules = host.run("sudo -n -l -U %s", group.user)
    assert "is not allowed to run sudo" in rules.stdout + rules.stderr, rules.stdout


def test_job_user_cannot_reach_the_docker_socket(host, group, docker_socket):
    control = host.run("python3 -c %s %s", CONNECT, docker_socket)
    assert control.rc == 0 and "connected" in control.stdout, \
        "positive control: root cannot connect to %s (no live engine?): %s" % (docker_socket, control.stderr)
    tried = as_user(host, group.user, "python3 -c %s %s" % (shlex.quote(CONNECT), shlex.quote(docker_socket)))
    assert tried.rc != 0 and "Permission denied" in tried.stderr, \
        "%s can connect to the Docker socket (root on the host): %s" % (group.user, tried.stdout)
    assert "docker" not in host.user(group.user).groups


def test_job_user_cannot_read_its_own_config(host, group):
    path = "%s/config.toml" % group.config_dir
    assert host.run("test -s %s", path).rc == 0, "positive control: %s is missing or empty" % path
    tried = as_user(host, group.user, "cat %s" % shlex.quote(path))
    assert tried.rc != 0 and "glrt-" not in tried.stdout, "%s can read %s (its runner token)" % (group.user, path)


def test_job_user_keeps_its_builds_and_cache_to_itself(host, group):
    for sub in ("", "/builds", "/cache"):
        path = host.file(group.home + sub)
        assert path.is_directory and path.user == group.user and path.mode == 0o700, \
            "%s%s is %s %s:%s, not a 0700 directory of %s" % (group.home, sub, oct(path.mode), path.user, path.group, group.user)


def test_job_user_cannot_read_another_groups_config_builds_or_cache(host, group, other):
    canary = "%s/builds/hgr-canary-%s" % (other.home, other.user)
    # Written by the other group's own job user, as its jobs would: the positive control.
    written = as_user(host, other.user, "umask 022; echo project-secret > %s && cat %s" % (canary, canary))
    assert written.rc == 0 and "project-secret" in written.stdout, written.stderr
    try:
        for read, path in (("cat", canary), ("ls -la", other.home + "/builds"), ("ls -la", other.home + "/cache"),
                           ("cat", other.config_dir + "/config.toml")):
            tried = as_user(host, group.user, "%s %s" % (read, shlex.quote(path)))
            assert tried.rc != 0 and "project-secret" not in tried.stdout and "glrt-" not in tried.stdout, \
                "%s can read %s of %s" % (group.user, path, other.user)
    finally:
        host.run("rm -f %s", canary)
