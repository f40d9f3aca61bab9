"""GitLab Runner itself: package and hold, service and its --user, configuration directory and config.toml."""

import pytest
from baseline import describe, parse_config, q, run, stat

PACKAGES = ("gitlab-runner", "gitlab-runner-helper-images")
# Capabilities every job container must lose (or ALL of them).
REQUIRED_CAP_DROP = {"SETUID", "SETGID", "NET_RAW", "MKNOD"}
# Host paths that hand a job the container runtime (the socket itself or the directory holding it).
RUNTIME_SOCKET_DIRS = ("/run", "/run/docker", "/run/containerd")


def test_runner_package_installed(root_host):
    package = root_host.package("gitlab-runner")
    assert package.is_installed, "the gitlab-runner package is not installed"


def test_runner_packages_held(root_host):
    installed = [name for name in PACKAGES if root_host.package(name).is_installed]
    if "gitlab-runner" not in installed:
        pytest.skip("gitlab-runner is not installed (test_runner_package_installed fails for it)")
    rc, out, err = run(root_host, "dpkg --get-selections %s" % " ".join(installed))
    assert rc == 0, err
    selections = dict(line.split() for line in out.splitlines() if line.strip())
    unheld = ["%s (%s)" % (name, selections.get(name, "no selection")) for name in installed if selections.get(name) != "hold"]
    assert not unheld, "not held, so a routine apt upgrade moves them: %s" % ", ".join(unheld)


def service_property(host, unit, name):
    return run(host, "systemctl show -p %s --value %s" % (name, q(unit)))[1]


def test_service_enabled_and_running(root_host, expected):
    unit = expected.service_name + ".service"
    assert service_property(root_host, unit, "LoadState") == "loaded", "%s does not exist" % unit
    enabled = run(root_host, "systemctl is-enabled %s" % q(unit))[1] or "not found"
    active = run(root_host, "systemctl is-active %s" % q(unit))[1] or "not found"
    assert (enabled, active) == ("enabled", "active"), "%s is %s and %s, not enabled and active" % (unit, enabled, active)


def test_service_runs_jobs_as_job_user(root_host, expected):
    unit = expected.service_name + ".service"
    if service_property(root_host, unit, "LoadState") != "loaded":
        pytest.skip("%s does not exist (test_service_enabled_and_running fails for it)" % unit)
    exec_start = service_property(root_host, unit, "ExecStart")
    argv = exec_start.partition("argv[]=")[2].partition(" ;")[0].split()
    assert argv and argv[0].endswith("gitlab-runner") and "run" in argv, "%s does not start `gitlab-runner run`: %s" % (unit, exec_start)
    user = argv[argv.index("--user") + 1] if "--user" in argv[:-1] else None
    assert user == expected.job_user, "%s runs jobs as %s, not --user %s: %s" % (unit, user or "root (no --user)", expected.job_user, exec_start)
    # The running process, not only the unit: systemd may not have re-read a changed unit.
    pid = service_property(root_host, unit, "MainPID")
    if pid not in ("", "0"):
        rc, cmdline, _err = run(root_host, "tr '\\0' ' ' < /proc/%s/cmdline" % q(pid))
        words = cmdline.split()
        assert rc == 0 and "--user" in words[:-1] and words[words.index("--user") + 1] == expected.job_user, (
            "the running %s (pid %s) was started without --user %s: %s" % (unit, pid, expected.job_user, cmdline))


def test_config_dir_mode(root_host, expected):
    seen = stat(root_host, expected.config_dir)
    assert seen == (0o700, "root", "root"), "%s is %s, not 0700 root:root" % (expected.config_dir, describe(seen))


def test_config_toml_mode(root_host, expected):
    seen = stat(root_host, expected.config_file)
    assert seen == (0o600, "root", "root"), "%s is %s, not 0600 root:root" % (expected.config_file, describe(seen))


def test_config_toml_parses(config_text):
    document, why = parse_config(config_text)
    assert document is not None, why
    assert isinstance(document.get("runners", []), list), "[[runners]] is not an array of tables"


def docker_section(runner):
    docker = runner.get("docker", {})
    return docker if isinstance(docker, dict) else {}


def as_list(value):
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def test_docker_runners_not_privileged(docker_runner_list, expected):
    bad = []
    for name, runner in docker_runner_list:
        docker = docker_section(runner)
        if docker.get("privileged", False) is not False and name not in expected.allow_privileged:
            bad.append("%s: privileged = %r" % (name, docker.get("privileged")))
        if docker.get("services_privileged", False) is not False and name not in expected.allow_privileged:
            bad.append("%s: services_privileged = %r" % (name, docker.get("services_privileged")))
    assert not bad, "privileged job or service containers (accepted ones: --allow-privileged NAME): %s" % "; ".join(bad)


def test_docker_runners_drop_capabilities(docker_runner_list):
    bad = []
    for name, runner in docker_runner_list:
        dropped = {str(cap).upper().removeprefix("CAP_") for cap in as_list(docker_section(runner).get("cap_drop"))}
        missing = REQUIRED_CAP_DROP - dropped
        if "ALL" not in dropped and missing:
            bad.append("%s: cap_drop lacks %s" % (name, ", ".join(sorted(missing))))
        added = {str(cap).upper().removeprefix("CAP_") for cap in as_list(docker_section(runner).get("cap_add"))}
        if added & (REQUIRED_CAP_DROP | {"ALL"}):
            bad.append("%s: cap_add gives back %s" % (name, ", ".join(sorted(added & (REQUIRED_CAP_DROP | {"ALL"})))))
    assert not bad, "; ".join(bad)


def test_docker_runners_no_new_privileges(docker_runner_list):
    bad = []
    for name, runner in docker_runner_list:
        options = [str(opt).replace("=", ":").replace(" ", "") for opt in as_list(docker_section(runner).get("security_opt"))]
        nnp = [opt for opt in options if opt.startswith("no-new-privileges")]
        # The last entry wins; "no-new-privileges" alone means true.
        if not nnp or nnp[-1] not in ("no-new-privileges", "no-new-privileges:true"):
            bad.append("%s: security_opt = %r" % (name, docker_section(runner).get("security_opt")))
    assert not bad, "no-new-privileges:true missing from security_opt: %s" % "; ".join(bad)


def host_path(volume):
    """The host side of a [runners.docker] volumes entry, or None for a container-only volume."""
    parts = str(volume).split(":")
    if len(parts) < 2:
        return None
    path = "/" + parts[0].strip("/")
    return "/run" + path[len("/var/run"):] if path == "/var/run" or path.startswith("/var/run/") else path


def test_docker_runners_no_runtime_socket(docker_runner_list):
    bad = []
    for name, runner in docker_runner_list:
        for volume in as_list(docker_section(runner).get("volumes")):
            path = host_path(volume)
            if path and (path.endswith(".sock") or path in RUNTIME_SOCKET_DIRS or path == "/"):
                bad.append("%s: %s" % (name, volume))
    assert not bad, "a container runtime socket (or its directory) is mounted into jobs: %s" % "; ".join(bad)


def test_docker_runners_pull_policy_always(docker_runner_list):
    bad = []
    for name, runner in docker_runner_list:
        docker = docker_section(runner)
        for key in ("pull_policy", "allowed_pull_policies"):
            # Unset means GitLab Runner's default: always (allowed_pull_policies: pull_policy's value).
            other = set(as_list(docker.get(key))) - {"always"}
            if other:
                bad.append("%s: %s = %r" % (name, key, docker.get(key)))
    assert not bad, "pull policies other than always (a job could use another project's cached private image): %s" % "; ".join(bad)


def test_docker_runners_network_per_build(docker_runner_list):
    bad = [name for name, runner in docker_runner_list
           if not isinstance(runner.get("feature_flags"), dict) or runner["feature_flags"].get("FF_NETWORK_PER_BUILD") is not True]
    assert not bad, "FF_NETWORK_PER_BUILD is not true (jobs share the default bridge): %s" % ", ".join(bad)
