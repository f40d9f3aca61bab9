"""The hardened Docker engine (roles/docker_engine), where one is expected (--expect-docker)."""

import json

import pytest
from baseline import describe, q, run, stat

NNP_REPORTED_SINCE = 24


def test_docker_engine_running(root_host, docker_expected):
    rc, out, err = run(root_host, "docker info --format '{{.ServerVersion}}'")
    assert rc == 0, "no Docker engine answers as root (%s), though %s" % (err or out, docker_expected)
    enabled = run(root_host, "systemctl is-enabled docker.service")[1] or "not found"
    assert enabled == "enabled", "docker.service is %s, not enabled" % enabled


def test_docker_no_new_privileges_default(root_host, docker_info):
    options = docker_info.get("SecurityOptions") or []
    if "name=no-new-privileges" in options:
        return
    version = docker_info.get("ServerVersion", "")
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 0
    # Docker 24 and later list it in `docker info` when it is on (moby#45320); older ones never do.
    assert major and major < NNP_REPORTED_SINCE, (
        "dockerd %s runs without no-new-privileges (daemon.json), so service containers can gain privileges: "
        "SecurityOptions %s" % (version, options))
    value, source = dockerd_setting(root_host, "no-new-privileges")
    assert value is True, "dockerd %s (which does not report it) is not set to no-new-privileges: %s" % (version, source)


def test_docker_live_restore(docker_info):
    assert docker_info.get("LiveRestoreEnabled") is True, "dockerd runs without live-restore"


def test_docker_icc_off(root_host, docker_info):
    assert docker_info
    rc, out, err = run(root_host, "docker network inspect bridge --format '{{json .Options}}'")
    assert rc == 0, err
    icc = (json.loads(out) or {}).get("com.docker.network.bridge.enable_icc", "true")
    assert icc == "false", "containers on the default bridge talk to each other (enable_icc %s; daemon.json icc)" % icc


def dockerd_setting(host, key):
    """(value, where it comes from) of a boolean dockerd setting: the command line, else its config file, else unset (None)."""
    pid = run(host, "systemctl show -p MainPID --value docker.service")[1]
    rc, out, _err = run(host, "tr '\\0' '\\n' < /proc/%s/cmdline" % q(pid)) if pid not in ("", "0") else (1, "", "")
    assert rc == 0 and out, "docker.service has no running dockerd (MainPID %r)" % pid
    args = out.splitlines()
    config_file = "/etc/docker/daemon.json"
    for index, arg in enumerate(args):
        if arg == "--" + key:
            return True, "dockerd's command line: %s" % arg
        if arg.startswith("--%s=" % key):
            return arg.split("=", 1)[1].lower() in ("true", "1"), "dockerd's command line: %s" % arg
        if arg.startswith("--config-file="):
            config_file = arg.split("=", 1)[1]
        elif arg == "--config-file" and index + 1 < len(args):
            config_file = args[index + 1]
    text = run(host, "cat -- %s 2>/dev/null" % q(config_file))[1]
    settings = json.loads(text) if text else {}
    if key in settings:
        return settings[key], "%s: %s" % (config_file, json.dumps({key: settings[key]}))
    return None, "not set in %s nor on dockerd's command line" % config_file


def test_docker_userland_proxy_off(root_host, docker_info):
    # No Docker reports it in `docker info`: dockerd's command line and daemon.json are authoritative.
    assert docker_info
    value, source = dockerd_setting(root_host, "userland-proxy")
    assert value is False, "dockerd runs a userland proxy (docker-proxy) for published ports: %s" % source


def test_docker_socket_mode(root_host, expected, docker_expected):
    seen = stat(root_host, expected.docker_socket)
    if seen is None and run(root_host, "docker info --format '{{.ServerVersion}}'")[0] != 0:
        pytest.skip("no Docker engine answers (test_docker_engine_running fails for it)")
    assert seen == (0o660, "root", "docker"), "%s is %s, not 0660 root:docker (%s)" % (expected.docker_socket, describe(seen), docker_expected)
    assert run(root_host, "test -S %s" % q(expected.docker_socket))[0] == 0, "%s is not a socket" % expected.docker_socket
