"""Options of the shell-executor isolation suite (pytest-testinfra).

Each ``--trust-group=USER:HOME:CONFIG_DIR:SERVICE`` is one runner service with
its own job user; the tests run commands as each job user (``runuser``) on the
host given by testinfra's ``--hosts``, and need root there.
"""

import collections

import pytest

TrustGroup = collections.namedtuple("TrustGroup", "user home config_dir service")


def pytest_addoption(parser):
    group = parser.getgroup("shell isolation", "shell-executor trust groups (tests/shell_isolation)")
    group.addoption("--trust-group", action="append", default=[], metavar="USER:HOME:CONFIG_DIR:SERVICE",
                    help="a runner service and its job user (repeat for each trust group)")
    group.addoption("--sudoer", default=None,
                    help="a user with password-less sudo: the positive control that sudo works on the host")
    group.addoption("--docker-socket", default="/run/docker.sock", help="the Docker engine's socket")


def _groups(config):
    groups = []
    for value in config.getoption("--trust-group"):
        parts = value.split(":")
        if len(parts) != 4 or not all(parts):
            raise pytest.UsageError("--trust-group wants USER:HOME:CONFIG_DIR:SERVICE, got %r" % value)
        groups.append(TrustGroup(*parts))
    return groups


def pytest_generate_tests(metafunc):
    groups = _groups(metafunc.config)
    if "group" in metafunc.fixturenames and "other" not in metafunc.fixturenames:
        if not groups:
            raise pytest.UsageError("give the trust groups with --trust-group")
        metafunc.parametrize("group", groups, ids=[g.user for g in groups])
    elif "other" in metafunc.fixturenames:
        pairs = [(a, b) for a in groups for b in groups if a is not b]
        if not pairs:
            raise pytest.UsageError("comparing trust groups needs at least two --trust-group")
        metafunc.parametrize("group,other", pairs, ids=["%s-reads-%s" % (a.user, b.user) for a, b in pairs])


@pytest.fixture
def sudo_user(request):
    return request.config.getoption("--sudoer")


@pytest.fixture
def docker_socket(request):
    return request.config.getoption("--docker-socket")
