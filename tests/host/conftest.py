"""Options and shared fixtures of the independent host baseline (pytest-testinfra).

The suite checks a runner host's state from the outside, with shell commands
run through testinfra's backends (``--hosts=docker://NAME``, ``ssh://HOST``,
``ansible://GROUP``); it uses no module, filter or role of the collection, so it
is a second opinion on what the roles did. The expected values come from the
options below, whose defaults are the roles' defaults.

It needs root on the host: connect as root, or as a user with password-less
sudo (the suite then runs every command through sudo by itself; testinfra's
``--sudo`` does the same explicitly).

A check whose subject is missing (no job user, no config.toml, no Docker
engine answering) is skipped with a pointer to the check that fails for it,
so a host without the controls gives one failure per missing control.
"""

import json

import pytest
from baseline import docker_runners, parse_config, q, read_config, run, uses_local_engine

# roles/gitlab_runner/defaults/main.yml, roles/docker_engine (vars), roles/runner_firewall/defaults/main.yml
DEFAULTS = {
    "job_user": "gitlab-runner",
    "job_user_home": "/home/gitlab-runner",
    "config_dir": "/etc/gitlab-runner",
    "service_name": "gitlab-runner",
    "docker_socket": "/run/docker.sock",
    "firewall_table": "gitlab_runner_guard",
    "firewall_service": "gitlab-runner-guard",
}
EXPECT_CHOICES = ("auto", "yes", "no")


def pytest_addoption(parser):
    group = parser.getgroup("runner host baseline", "hardened GitLab Runner host baseline (tests/host)")
    group.addoption("--job-user", default=DEFAULTS["job_user"],
                    help="user shell-executor jobs run as, the service's --user (default: %(default)s)")
    group.addoption("--job-user-home", default=DEFAULTS["job_user_home"],
                    help="the job user's home; its builds directory is <home>/builds (default: %(default)s)")
    group.addoption("--config-dir", default=DEFAULTS["config_dir"],
                    help="directory holding config.toml (default: %(default)s)")
    group.addoption("--service-name", default=DEFAULTS["service_name"],
                    help="systemd unit of GitLab Runner (default: %(default)s)")
    group.addoption("--allow-privileged", action="append", default=[], metavar="RUNNER",
                    help="name of a docker runner whose privileged containers are an accepted exception "
                         "(repeatable; every other check still applies to it)")
    group.addoption("--expect-docker", choices=EXPECT_CHOICES, default="auto",
                    help="check the hardened Docker engine: yes, no, or auto (default): where dockerd is installed "
                         "or a docker-executor runner of config.toml uses the host's own engine")
    group.addoption("--docker-socket", default=DEFAULTS["docker_socket"],
                    help="the Docker engine's API socket (default: %(default)s)")
    group.addoption("--expect-firewall", choices=EXPECT_CHOICES, default="auto",
                    help="check the collection's nftables table and unit: yes, no, or auto (default): "
                         "where the unit or the table exists")
    group.addoption("--firewall-table", default=DEFAULTS["firewall_table"],
                    help="the collection's nftables table, family inet (default: %(default)s)")
    group.addoption("--firewall-service", default=DEFAULTS["firewall_service"],
                    help="the systemd unit that loads the table (default: %(default)s)")


class Expected:  # pylint: disable=too-few-public-methods
    """The expected values, from the command line."""

    def __init__(self, config):
        self.job_user = config.getoption("job_user")
        self.job_user_home = config.getoption("job_user_home").rstrip("/") or "/"
        self.builds_dir = self.job_user_home.rstrip("/") + "/builds"
        self.config_dir = config.getoption("config_dir").rstrip("/") or "/"
        self.config_file = self.config_dir.rstrip("/") + "/config.toml"
        self.service_name = config.getoption("service_name")
        self.allow_privileged = set(config.getoption("allow_privileged"))
        self.expect_docker = config.getoption("expect_docker")
        self.docker_socket = config.getoption("docker_socket")
        self.expect_firewall = config.getoption("expect_firewall")
        self.firewall_table = config.getoption("firewall_table")
        self.firewall_service = config.getoption("firewall_service")


@pytest.fixture(scope="session")
def expected(request):
    return Expected(request.config)


@pytest.fixture(scope="module")
def root_host(host):
    """The host, with every command run as root (through sudo when the connection is not root)."""
    uid = host.run("id -u")
    if uid.rc == 0 and uid.stdout.strip() == "0":
        yield host
        return
    if host.run("sudo -n true").rc != 0:
        pytest.fail("the baseline needs root on %s: connect as root, or as a user with password-less sudo "
                    "(id -u says %r)" % (host.backend.get_pytest_id(), uid.stdout.strip() or uid.stderr.strip()),
                    pytrace=False)
    with host.sudo():
        yield host


@pytest.fixture(scope="module")
def job_user(root_host, expected):
    """The job user's passwd entry (name, uid, gid, home, shell); skips when the user does not exist."""
    rc, out, _err = run(root_host, "getent passwd %s" % q(expected.job_user))
    if rc != 0 or not out:
        pytest.skip("the job user %s does not exist (test_job_user_exists fails for it)" % expected.job_user)
    fields = out.split(":")
    return {"name": fields[0], "uid": int(fields[2]), "gid": int(fields[3]), "home": fields[5], "shell": fields[6]}


@pytest.fixture(scope="module")
def config_text(root_host, expected):
    text, why = read_config(root_host, expected)
    if text is None:
        pytest.skip("%s (test_config_toml_mode fails for it)" % why)
    return text


@pytest.fixture(scope="module")
def config(config_text):
    """config.toml, parsed in the test process; skips when it is missing or not TOML."""
    document, why = parse_config(config_text)
    if document is None:
        pytest.skip("%s (test_config_toml_parses fails for it)" % why)
    return document


@pytest.fixture(scope="module")
def docker_runner_list(config):
    runners = docker_runners(config)
    if not runners:
        pytest.skip("config.toml has no docker-type runner")
    return runners


@pytest.fixture(scope="module")
def docker_expected(root_host, expected):
    """Decide whether the hardened Docker engine is expected here; skips when not."""
    if expected.expect_docker == "no":
        pytest.skip("--expect-docker=no")
    if expected.expect_docker == "yes":
        return "--expect-docker=yes"
    if root_host.exists("dockerd") or run(root_host, "systemctl cat docker.service")[0] == 0:
        return "dockerd is installed"
    text, _why = read_config(root_host, expected)
    document = parse_config(text)[0] if text is not None else None
    local = [name for name, runner in docker_runners(document or {}) if uses_local_engine(runner)]
    if local:
        return "config.toml's docker runners %s use this host's Docker engine" % ", ".join(local)
    pytest.skip("no Docker engine here and no docker runner of config.toml uses one (--expect-docker=auto)")
    return None


@pytest.fixture(scope="module")
def docker_info(root_host, docker_expected):
    """``docker info`` as a dict; skips when no engine answers (test_docker_engine_running fails then)."""
    rc, out, err = run(root_host, "docker info --format '{{json .}}'")
    if rc != 0:
        pytest.skip("no Docker engine answers (%s; test_docker_engine_running fails for it)" % (err or out or rc))
    return json.loads(out)


@pytest.fixture(scope="module")
def firewall_expected(root_host, expected):
    """Decide whether the collection's firewall is expected here; skips when not."""
    if expected.expect_firewall == "no":
        pytest.skip("--expect-firewall=no")
    if expected.expect_firewall == "yes":
        return "--expect-firewall=yes"
    if run(root_host, "systemctl cat %s" % q(expected.firewall_service + ".service"))[0] == 0:
        return "the unit %s exists" % expected.firewall_service
    if root_host.exists("nft") and run(root_host, "nft list table inet %s" % q(expected.firewall_table))[0] == 0:
        return "the table inet %s exists" % expected.firewall_table
    pytest.skip("neither the unit %s nor the table inet %s exists (--expect-firewall=auto)"
                % (expected.firewall_service, expected.firewall_table))
    return None
