"""Check mode changes nothing; hosts the role cannot serve are refused first.

Acceptance: ``ansible-playbook --check playbooks/site.yml`` on fresh Debian
hosts succeeds and changes nothing, and a host of another OS family fails
with the role's own "is not supported" message (no missing-vars-file error).

Three disposable systemd containers, started side by side:

- ``hgr-check-debian12`` (repository install from the fixture repository) and
  ``hgr-check-debian13`` (install from package files): fresh hosts, one
  ``site.yml --check --diff`` run for both. The run must pass, report what it
  would change, and leave each host's filesystem state (paths, types, modes,
  owners, sizes and mtimes under /etc, /usr, /var/lib, /var/cache, /home),
  its packages (with holds) and units exactly as they were.
- ``hgr-unsupported-os``: a Debian 12 container whose /etc/os-release says
  Fedora, so Ansible reports os_family RedHat. A real ``site.yml`` run must
  fail on the role's OS check and leave the host unchanged.
- The Debian 12 host again, with the facts of its Python replaced by 3.9 (a
  test module in the playbook's ``library/``): the role must refuse it,
  naming the version, before anything changes.

Needs docker, the local images and the fixture apt repository
(``make images fixtures link``). Run with ``pytest tests/integration``.
"""

import difflib
import re

import pytest
import yaml
from runner_hosts import CHECKOUT, PACKAGE_DIR, check_prerequisites, disposable_hosts, fixture_repo_url, run_playbook, sh

REPO_HOST = "hgr-check-debian12"
FILE_HOST = "hgr-check-debian13"
OTHER_OS_HOST = "hgr-unsupported-os"
HOSTS = {REPO_HOST: "12", FILE_HOST: "13", OTHER_OS_HOST: "12"}
ROLE = "hardened.gitlab_runner.gitlab_runner"
SITE = str(CHECKOUT / "playbooks/site.yml")

# Everything a converge writes lives under these (/root, /tmp, /run and the
# logs are left out: Ansible's own temporary files and the journal live there).
FINGERPRINT = r"""
set -eu
# apt's binary package cache (/var/cache/apt/*.bin) is written by the first apt
# query of any kind, read-only ones too (package_facts): build it first.
apt-cache stats >/dev/null
find /etc /usr /var/lib /var/cache /home /opt /srv -xdev \
     -not -path '/var/lib/systemd/*' -not -path '/var/cache/ldconfig/*' \
     -printf '%p %y %m %U:%G %s %T@ %l\n' | LC_ALL=C sort
# Holds show in dpkg -l ("hi"); apt-mark would write apt's package cache itself.
echo '--- dpkg -l'; dpkg -l
echo '--- unit files'; systemctl list-unit-files --no-pager --no-legend
echo '--- active units'; systemctl list-units --all --no-pager --no-legend --plain
"""

# NAME is what Ansible reports as the distribution (and maps to os_family RedHat).
FEDORA_OS_RELEASE = """\
NAME="Fedora"
VERSION="40 (Server Edition)"
ID=fedora
ID_LIKE="rhel fedora"
VERSION_ID=40
VERSION_CODENAME=""
PRETTY_NAME="Fedora Linux 40 (Server Edition)"
"""

OLD_PYTHON_PLAYBOOK = """\
---
- name: Run the role on a host whose Python is too old for tomllib
  hosts: all
  gather_facts: true
  pre_tasks:
    - name: Report Python 3.9 in the host's facts
      fake_python_facts:
  roles:
    - role: hardened.gitlab_runner.gitlab_runner
"""

# A test double: only the facts change, the host's real Python still runs the modules.
FAKE_PYTHON_FACTS_MODULE = """\
#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule

module = AnsibleModule(argument_spec={}, supports_check_mode=True)
module.exit_json(changed=False, ansible_facts={"python": {
    "version": {"major": 3, "minor": 9, "micro": 2, "releaselevel": "final", "serial": 0},
    "version_info": [3, 9, 2, "final", 0], "executable": "/usr/bin/python3.9", "type": "cpython"}})
"""


def fingerprint(host):
    return sh("docker", "exec", host, "bash", "-c", FINGERPRINT, timeout=120).stdout


def assert_unchanged(host, before, what):
    after = fingerprint(host)
    if after != before:
        diff = list(difflib.unified_diff(before.splitlines(), after.splitlines(), "before", "after", lineterm="", n=0))
        raise AssertionError("%s changed %s:\n%s" % (what, host, "\n".join(diff[:60])))


def recap(output, host):
    match = re.search(r"^%s\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)" % re.escape(host), output, re.M)
    assert match, "no PLAY RECAP line for %s in the output" % host
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


def fatal_tasks(output, host):
    """The names of the tasks that failed on ``host``, in order."""
    failed, task = [], None
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line[len("TASK ["):line.rindex("]")]
        elif re.match(r"^(fatal|failed): \[%s\]" % re.escape(host), line):
            failed.append(task)
    return failed


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    fingerprint_ = check_prerequisites("12", "13")
    repo_url = fixture_repo_url()
    workdir = tmp_path_factory.mktemp("check-mode")
    common = {
        "ansible_connection": "community.docker.docker",
        # Already root in the containers, which have no sudo.
        "ansible_become": False,
        "gitlab_runner_version": "18.5.0",
        # A fake token: there is no GitLab to talk to.
        "gitlab_runner_runners": [{"name": "check-docker", "url": "https://gitlab.example.test",
                                   "token": "glrt-FAKE-checkmode-not-real", "executor": "docker"}],
    }
    repo = {"gitlab_runner_repo_url": repo_url, "gitlab_runner_repo_key_fingerprint": fingerprint_}
    files = {"gitlab_runner_install_source": "package_file",
             "gitlab_runner_package_files": [str(PACKAGE_DIR / "gitlab-runner-helper-images_18.5.0-1_all.deb"),
                                             str(PACKAGE_DIR / "gitlab-runner_18.5.0-1_amd64.deb")]}
    for name, host_vars in (("fresh", {REPO_HOST: repo, FILE_HOST: files}), ("other-os", {OTHER_OS_HOST: repo})):
        (workdir / ("%s.yml" % name)).write_text(yaml.safe_dump({"gitlab_runners": {"hosts": host_vars, "vars": common}}))
    with disposable_hosts(HOSTS, "check-mode"):
        sh("docker", "exec", "-i", OTHER_OS_HOST, "sh", "-c",
           "rm -f /etc/os-release && cat > /usr/lib/os-release && ln -s ../usr/lib/os-release /etc/os-release",
           stdin=FEDORA_OS_RELEASE)
        yield workdir


def test_check_mode_site_on_fresh_hosts_changes_nothing(hosts):
    fresh = (REPO_HOST, FILE_HOST)
    before = {host: fingerprint(host) for host in fresh}
    rc, output = run_playbook(hosts, "check", "-i", str(hosts / "fresh.yml"), SITE, "--check", "--diff")
    failed = {host: fatal_tasks(output, host) for host in fresh}
    assert rc == 0, "site.yml --check failed (rc=%d), failing tasks %s; see %s" % (rc, failed, hosts / "check.out")
    for host in fresh:
        counts = recap(output, host)
        assert counts["failed"] == 0 and counts["unreachable"] == 0, (host, counts)
        # Check mode reports the changes a real run would make.
        assert counts["changed"] > 0, "check mode reported no change on the fresh host %s" % host
        assert_unchanged(host, before[host], "site.yml --check")
    assert "check mode: gitlab-runner=18.5.0-1" in output, "no message that the repository install would happen"
    assert "check mode: the package files" in output, "no message that the package files would be installed"
    # The audit ran, reported only, and wrote its reports on the controller.
    assert "TASK [Summarize each host]" in output and "Audit failed" not in output
    assert (hosts / "audit-reports" / "report.json").is_file()


def test_unsupported_os_is_refused_by_the_role_first(hosts):
    facts = sh("docker", "exec", OTHER_OS_HOST, "cat", "/etc/os-release").stdout
    assert "ID=fedora" in facts
    before = fingerprint(OTHER_OS_HOST)
    rc, output = run_playbook(hosts, "other-os", "-i", str(hosts / "other-os.yml"), SITE)
    assert rc != 0, "site.yml succeeded on a Fedora host"
    # Before the fix: "Load the OS-specific data" failed with "Could not find file ... vars/[]".
    assert not re.search(r"Could not find (or access|file)|first_found", output), \
        "a vars file error came before the role's own check; see %s" % (hosts / "other-os.out")
    assert fatal_tasks(output, OTHER_OS_HOST) == ["%s : Refuse unsupported operating systems" % ROLE], \
        "see %s" % (hosts / "other-os.out")
    assert re.search(r"gitlab_runner: Fedora \(RedHat\) is not supported", output), "see %s" % (hosts / "other-os.out")
    assert_unchanged(OTHER_OS_HOST, before, "the refused run")


def test_python_without_tomllib_is_refused_before_anything_changes(hosts):
    workdir = hosts / "old-python"
    (workdir / "library").mkdir(parents=True)
    (workdir / "library" / "fake_python_facts.py").write_text(FAKE_PYTHON_FACTS_MODULE)
    (workdir / "converge.yml").write_text(OLD_PYTHON_PLAYBOOK)
    inventory = yaml.safe_load((hosts / "fresh.yml").read_text())
    del inventory["gitlab_runners"]["hosts"][FILE_HOST]
    (workdir / "inventory.yml").write_text(yaml.safe_dump(inventory))
    before = fingerprint(REPO_HOST)
    rc, output = run_playbook(workdir, "old-python", "-i", "inventory.yml", "converge.yml")
    assert rc != 0, "the role accepted a host with Python 3.9"
    assert fatal_tasks(output, REPO_HOST) == ["%s : Refuse a Python without tomllib" % ROLE], \
        "see %s" % (workdir / "old-python.out")
    assert "Python 3.9.2" in output and "tomllib" in output, "see %s" % (workdir / "old-python.out")
    assert_unchanged(REPO_HOST, before, "the refused run")
