"""Helpers shared by the integration tests (not a test module itself).

Prerequisite checks that fail (never skip) with the command that fixes them,
disposable systemd runner hosts started with ``tests/images/run-host.sh`` on
the ``hgr-test`` network, and ``ansible-playbook`` runs against them with the
checkout's collection and ``ansible.cfg``.
"""

import base64
import datetime
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

CHECKOUT = Path(__file__).resolve().parents[2]
IMAGE_PREFIX = "hardened-gitlab-runner/debian"
BOOT_TIMEOUT = 90
PLAYBOOK_TIMEOUT = 900
PACKAGE_DIR = CHECKOUT / "tests/fixtures/.build/debs"


def sh(*args, check=True, stdin=None, timeout=120):
    proc = subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (rc=%d): %s%s" % (" ".join(args[:4]), proc.returncode, proc.stdout, proc.stderr))
    return proc


def ansible_playbook():
    candidate = Path(sys.executable).parent / "ansible-playbook"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("ansible-playbook")
    if not found:
        pytest.fail("ansible-playbook not found next to %s nor on PATH; run `make venv`" % sys.executable)
    return found


def check_prerequisites(*releases):
    """Fail with the fixing command if docker, an image of ``releases``, the fixtures or the link are missing.

    Returns the fixture repository key's fingerprint.
    """
    if shutil.which("docker") is None:
        pytest.fail("docker is not installed; this integration test needs it (`make test` sets it up)")
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        pytest.fail("docker does not answer (`docker info` failed: %s)" % info.stderr.strip())
    for release in releases:
        image = "%s:%s" % (IMAGE_PREFIX, release)
        if sh("docker", "image", "inspect", image, check=False).returncode != 0:
            pytest.fail("image %s is missing; run `make images`" % image)
    fingerprint = CHECKOUT / "tests/fixtures/.build/fingerprint"
    if not fingerprint.is_file():
        pytest.fail("%s is missing; run `make fixtures`" % fingerprint)
    link = CHECKOUT / ".collections/ansible_collections/hardened/gitlab_runner"
    if not (link / "roles/gitlab_runner/tasks/main.yml").is_file():
        pytest.fail("%s does not point at the checkout; run `make link`" % link)
    return fingerprint.read_text().strip()


def fixture_repo_url():
    """Start (or keep) the stand-in package repository; return its gitlab_runner_repo_url."""
    serve = str(CHECKOUT / "tests/fixtures/serve.sh")
    sh(serve, "start", timeout=180)
    return sh(serve, "url").stdout.strip()


@contextmanager
def disposable_hosts(hosts, label, docker_args=()):
    """Start the systemd hosts ``{name: release}`` side by side; remove them afterwards, whatever happens.

    A container left under one of these names by an interrupted run is replaced.
    ``docker_args`` are extra ``docker run`` options for every host.
    """
    for name in hosts:
        sh("docker", "rm", "-f", name, check=False)
    try:
        starting = {
            name: subprocess.Popen(
                [str(CHECKOUT / "tests/images/run-host.sh"), name, release, "--label", "hardened-gitlab-runner.test=" + label,
                 *docker_args],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for name, release in hosts.items()}
        for name, proc in starting.items():
            output, _stderr = proc.communicate(timeout=BOOT_TIMEOUT + 60)
            assert proc.returncode == 0, "starting %s failed (rc=%d): %s" % (name, proc.returncode, output)
        yield
    finally:
        for name in hosts:
            sh("docker", "rm", "-f", name, check=False)


def host_inventory(workdir, host, repo_url, fingerprint, **host_vars):
    """Write ``workdir``/inventory.yml for the container ``host`` (docker connection, already root,
    the fixture repository, GitLab Runner 18.5.0 unless ``host_vars`` say otherwise) and make
    ``workdir``/host_vars, where tests put the runners as real inventories do.

    Returns (inventory path, path of the host's host_vars file).
    """
    variables = {
        "ansible_connection": "community.docker.docker",
        # Already root in the container, which has no sudo.
        "ansible_become": False,
        "gitlab_runner_repo_url": repo_url,
        "gitlab_runner_repo_key_fingerprint": fingerprint,
        "gitlab_runner_version": "18.5.0",
    }
    variables.update(host_vars)
    inventory = workdir / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {host: variables}}}))
    (workdir / "host_vars").mkdir(exist_ok=True)
    return inventory, workdir / "host_vars" / ("%s.yml" % host)


def leak_forms(secret):
    """Strings whose presence in an output means ``secret`` (a token) leaked.

    The raw secret; all of it after its prefix (``glrt-``, ``glpat-``: catches
    ``glrt-****<rest>``); its last ``-`` segment when that is long enough to be
    the random part (``glrt-FAKE-<label>-<hex>``; the fake GitLab's tokens may
    hold ``-`` themselves); and its base64 encoding at each of the three byte
    alignments it can have inside a longer base64 stream, minus 4 characters at
    each end (those may depend on the bytes around it). Parts shorter than 12
    characters are left out: they would match unrelated text.
    """
    rest = secret.split("-", 1)[-1]
    forms = {"raw": secret}
    for form, part in (("without prefix", rest), ("random part", rest.rsplit("-", 1)[-1])):
        if len(part) >= 12 and part not in forms.values():
            forms[form] = part
    for prefix in range(3):
        forms["base64 (offset %d)" % prefix] = base64.b64encode(b"\0" * prefix + secret.encode()).decode()[4:-4]
    return forms


def find_leaks(output, named_secrets):
    """Where any form of any (label, secret) pair occurs in ``output``: one line per hit."""
    hits = []
    lines = output.splitlines()
    for label, secret in named_secrets:
        for form, needle in leak_forms(secret).items():
            for number, line in enumerate(lines, 1):
                if needle in line:
                    hits.append("%s as %s, line %d: %s" % (label, form, number, line.replace(needle, "<%s>" % form)[:300]))
    return hits


def run_playbook(workdir, label, *args):
    """Run ``ansible-playbook *args`` in ``workdir``; return (rc, whole output).

    The output includes Ansible's own log file and is kept as ``<label>.out``
    in ``workdir`` for whoever debugs a failure.
    """
    log = workdir / ("%s.ansible.log" % label)
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(CHECKOUT / ".collections"),
        "ANSIBLE_CONFIG": str(CHECKOUT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_LOG_PATH": str(log),
        "PYTHONUNBUFFERED": "1",
    })
    proc = subprocess.run([ansible_playbook(), *args], cwd=str(workdir), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=PLAYBOOK_TIMEOUT, check=False)
    output = proc.stdout
    if log.exists():
        output += "\n" + log.read_text(errors="replace")
    (workdir / ("%s.out" % label)).write_text(output)
    return proc.returncode, output


def repository_log_mark():
    """Now, in the form ``docker logs --since`` takes: pass it to repository_requests_from()."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def repository_requests_from(host, since):
    """Lines of the fixture repository's access log (python -m http.server, container hgr-apt-repo)
    written since ``since`` (repository_log_mark()) for requests from the container ``host``."""
    address = sh("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                 host).stdout.split()
    assert address, "%s has no address" % host
    log = sh("docker", "logs", "--since", since, "hgr-apt-repo")
    return [line for line in (log.stdout + log.stderr).splitlines() if line.split(" ", 1)[0] in address]
