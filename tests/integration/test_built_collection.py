"""What users get is what is tested: site.yml and audit.yml run from the built tarball.

The collection is built with ``ansible-galaxy collection build`` (galaxy.yml's
build_ignore decides what ships), installed with ``ansible-galaxy collection
install`` into an empty collections path, and run from there by its playbooks'
FQCNs, with an ansible.cfg of its own: the checkout and its .collections link are
not on any search path, so a file that does not ship fails the run.

The test host is a fresh Debian 12 systemd container (as in ``make demo``) with a
docker-executor runner, so site.yml applies docker_engine and gitlab_runner, then
the audit. The runner package it installs is the test stand-in from
tests/fixtures (GitLab's package servers are unreachable here).

Needs docker, the local images and the fixture apt repository
(``make images fixtures link``). Run with ``pytest tests/integration``.
"""

import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from runner_hosts import (CHECKOUT, check_prerequisites, disposable_hosts, fixture_repo_url, repository_log_mark,
                          repository_requests_from, sh)

HOST = "hgr-built-collection"
PLAYBOOK_TIMEOUT = 1200


def _tool(name):
    return str(Path(os.environ.get("VIRTUAL_ENV", CHECKOUT / ".venv")) / "bin" / name)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Build the tarball and install it alone into a new collections path; return (workdir, env)."""
    fingerprint = check_prerequisites("12")
    repo_url = fixture_repo_url()
    work = tmp_path_factory.mktemp("built-collection")
    dist, collections = work / "dist", work / "collections"
    # Nothing of the developer's environment (ANSIBLE_COLLECTIONS_PATH points at the checkout).
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(work / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               PYTHONUNBUFFERED="1")
    (work / "ansible.cfg").write_text(
        "[defaults]\ncollections_path = %s\ninterpreter_python = auto_silent\nretry_files_enabled = false\n"
        "[connection]\npipelining = true\n" % collections)
    galaxy = _tool("ansible-galaxy")
    subprocess.run([galaxy, "collection", "build", "--output-path", str(dist), str(CHECKOUT)], env=env, cwd=str(work),
                   check=True, capture_output=True)
    tarballs = sorted(dist.glob("hardened-gitlab_runner-*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    # No collection dependency to fetch (galaxy.yml declares none): --no-deps keeps it offline.
    subprocess.run([galaxy, "collection", "install", "--no-deps", "-p", str(collections), str(tarballs[0])], env=env,
                   cwd=str(work), check=True, capture_output=True)
    (work / "inventory.yml").write_text(yaml.safe_dump({"gitlab_runners": {"hosts": {HOST: {
        "ansible_connection": "community.docker.docker",
        "ansible_become": False,
        "gitlab_runner_repo_url": repo_url,
        "gitlab_runner_repo_key_fingerprint": fingerprint,
        "gitlab_runner_runners": [{
            "name": "built-docker", "url": "https://gitlab.example.test",
            "token": "glrt-FAKE-built-collection-not-real", "executor": "docker"}],
    }}}}))
    # The docker engine in the host needs route_localnet on its bridges (userland-proxy off), as in make demo.
    with disposable_hosts({HOST: "12"}, "built-collection",
                          docker_args=("--sysctl", "net.ipv4.conf.default.route_localnet=1")):
        yield work, collections, env


def _run(work, env, *args):
    proc = subprocess.run([_tool("ansible-playbook"), *args], cwd=str(work), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=PLAYBOOK_TIMEOUT, check=False)
    (work / ("%s.out" % args[-1].rsplit(".", 1)[-1])).write_text(proc.stdout)
    return proc.returncode, proc.stdout


def test_the_collection_resolves_from_the_installed_tarball_only(installed):
    work, collections, env = installed
    proc = subprocess.run([_tool("ansible-galaxy"), "collection", "list", "hardened.gitlab_runner", "--format", "json"],
                          cwd=str(work), env=env, capture_output=True, text=True, check=True)
    places = json.loads(proc.stdout)
    assert list(places) == [str(collections / "ansible_collections")], places
    installed_root = collections / "ansible_collections/hardened/gitlab_runner"
    assert not installed_root.is_symlink()
    for absent in ("tests", "molecule", "Makefile", "scripts", "benchmarks"):
        assert not (installed_root / absent).exists(), absent


def test_site_yml_from_the_tarball_converges_and_audits(installed):
    work, _collections, env = installed
    started = repository_log_mark()
    # A fleet rollout's batch settings (docs/fleet.md) are accepted on the way.
    rc, output = _run(work, env, "-i", "inventory.yml", "-e", '{"site_serial": [1, "50%"], "site_max_fail_percentage": 0}',
                      "hardened.gitlab_runner.site")
    assert rc == 0, "site.yml from the built collection failed (rc=%d); see %s" % (rc, work / "site.out")
    recap = re.search(r"^%s\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0" % HOST, output, re.M)
    assert recap and int(recap.group(1)) > 0, "no successful recap with changes for %s" % HOST
    # What the roles built is on the host.
    assert sh("docker", "exec", HOST, "systemctl", "is-active", "gitlab-runner", check=False).stdout.strip() == "active"
    assert sh("docker", "exec", HOST, "systemctl", "is-active", "docker", check=False).stdout.strip() == "active"
    mode = sh("docker", "exec", HOST, "stat", "-c", "%a %U", "/etc/gitlab-runner/config.toml").stdout.split()
    assert mode == ["600", "root"], mode
    assert "glrt-FAKE-built-collection-not-real" not in output
    # Positive control for the no-network test below: this first converge did use the repository.
    assert repository_requests_from(HOST, started), "no request from %s in hgr-apt-repo's log" % HOST


def test_second_converge_changes_nothing_and_touches_no_repository(installed):
    """A no-op re-run of the whole site.yml: changed=0, and not one request to the package repository."""
    work, _collections, env = installed
    started = repository_log_mark()
    rc, output = _run(work, env, "-i", "inventory.yml", "hardened.gitlab_runner.site")
    assert rc == 0, "the second site.yml run failed (rc=%d); see %s" % (rc, work / "site.out")
    recap = re.search(r"^%s\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0" % HOST, output, re.M)
    assert recap and recap.group(1) == "0", "the second converge changed something:\n%s" % (
        "\n".join(line for line in output.splitlines() if line.startswith("changed:")))
    requests = repository_requests_from(HOST, started)
    assert not requests, "the no-op converge made requests to the package repository:\n" + "\n".join(requests)


def test_audit_yml_from_the_tarball_reports(installed):
    work, _collections, env = installed
    reports = work / "reports"
    rc, output = _run(work, env, "-i", "inventory.yml", "-e", "audit_report_dir=%s" % reports,
                      "hardened.gitlab_runner.audit")
    assert rc == 0, "audit.yml from the built collection failed (rc=%d); see %s" % (rc, work / "audit.out")
    report = json.loads((reports / "report.json").read_text())
    assert HOST in json.dumps(report), "the host is not in report.json"
    cases = list(ET.parse(str(reports / "junit.xml")).getroot().iter("testcase"))
    classes = {case.get("classname") for case in cases}
    assert classes == {"hardened.gitlab_runner.%s" % HOST}, classes
    # One case per catalog check: GR001 (the first) is among them and nothing could not run.
    assert any(case.get("name", "").startswith("GR001 ") for case in cases)
    assert not [case for case in cases if case.get("name") == "audit could not run"]
    assert "glrt-FAKE-built-collection-not-real" not in output
    for path in reports.iterdir():
        assert "glrt-FAKE-built-collection-not-real" not in path.read_text(), path
