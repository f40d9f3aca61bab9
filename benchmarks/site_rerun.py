"""How much a re-run of the whole site.yml costs, against the floor of any play.

Prints (never asserts) timings from one run on fresh test hosts:

  floor                an empty play on the runner host: facts and one ping
  site.yml, first      the first converge of the whole site.yml (docker_engine,
                       gitlab_runner, runner_firewall, then the audit)
  site.yml, second     the same again: wall time, changed count, requests the
                       host made to the package repository during it
  ratio                second converge / floor
  audit.yml            the audit alone on 1 host and on 10 hosts (per host)

Then it runs benchmarks/runners_scale.py (1 vs 50 runners) once.

The runner host is a Debian 12 systemd container (tests/images/run-host.sh, as
``make demo``) with a docker-executor runner, its own Docker engine, and the
firewall on (over the docker connection, with the test bed's management switch:
the SSH allow-list and rollback are exercised by Molecule's network scenario).
For the 10-host audit, nine more containers get the gitlab_runner role with a
shell runner. The gitlab-runner package is the test stand-in from tests/fixtures
(GitLab's package servers are unreachable here). Every container goes at the end.

Usage: .venv/bin/python benchmarks/site_rerun.py [--skip-runners-scale]
Needs docker, the local images and the fixture apt repository (``make images fixtures link``).
"""

import argparse
import datetime
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

CHECKOUT = Path(__file__).resolve().parents[1]
# The integration tests' helpers read the fixture repository's access log.
sys.path.insert(0, str(CHECKOUT / "tests" / "integration"))
from runner_hosts import repository_log_mark, repository_requests_from  # noqa: E402  pylint: disable=wrong-import-position
MAIN = "hgr-bench-site"
EXTRA = ["hgr-bench-audit%02d" % i for i in range(1, 10)]
BOOT_TIMEOUT = 90

FLOOR = """\
---
- name: Floor (facts and one ping)
  hosts: all
  gather_facts: true
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""

RUNNER_ONLY = """\
---
- name: Converge the audit hosts (gitlab_runner role only)
  hosts: gitlab_runners
  gather_facts: true
  roles:
    - role: hardened.gitlab_runner.gitlab_runner
"""


def sh(*args, check=True, timeout=300):
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError("%s failed (rc=%d): %s%s" % (" ".join(args[:4]), proc.returncode, proc.stdout, proc.stderr))
    return proc


class Bench:
    def __init__(self):
        self.workdir = Path(tempfile.mkdtemp(prefix="hgr-bench-site-"))
        self.containers = []

    def start_host(self, name, *docker_args):
        sh("docker", "rm", "-f", name, check=False)
        self.containers.append(name)
        sh(str(CHECKOUT / "tests/images/run-host.sh"), name, "12", "--label",
           "hardened-gitlab-runner.benchmark=site_rerun", *docker_args, timeout=BOOT_TIMEOUT + 60)

    def stop(self):
        for name in self.containers:
            sh("docker", "rm", "-f", name, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def inventory(self, repo_url, fingerprint):
        common = {"ansible_connection": "community.docker.docker", "ansible_become": False,
                  "gitlab_runner_repo_url": repo_url, "gitlab_runner_repo_key_fingerprint": fingerprint,
                  "gitlab_runner_version": "18.5.0", "audit_fail_severity": "none"}
        hosts = {MAIN: {
            "gitlab_runner_runners": [{"name": "bench-docker", "url": "https://gitlab.example.test",
                                       "token": "glrt-FAKE-bench-site-0001", "executor": "docker"}],
            "runner_firewall_enabled": True,
            "runner_firewall_ssh_allowed_cidrs": ["172.18.0.1/32"],
            "runner_firewall_test_exclude_management": True,
        }}
        for index, name in enumerate(EXTRA):
            hosts[name] = {"gitlab_runner_runners": [{
                "name": "bench-shell-%02d" % index, "url": "https://gitlab.example.test",
                "token": "glrt-FAKE-bench-audit-%04d" % index, "executor": "shell", "trusted": True}]}
        (self.workdir / "inventory.yml").write_text(yaml.safe_dump(
            {"gitlab_runners": {"hosts": hosts, "vars": common}}))
        (self.workdir / "floor.yml").write_text(FLOOR)
        (self.workdir / "runner_only.yml").write_text(RUNNER_ONLY)

    def play(self, label, *args, profile=False):
        """One ansible-playbook run; returns (wall seconds, {host: recap counts})."""
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(CHECKOUT / ".collections"),
                   ANSIBLE_CONFIG=str(CHECKOUT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORKS="10")
        if profile:
            env.update(ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT="200")
        playbook = Path(sys.executable).parent / "ansible-playbook"
        cmd = [str(playbook) if playbook.exists() else "ansible-playbook", "-i", str(self.workdir / "inventory.yml")]
        began = time.monotonic()
        proc = subprocess.run(cmd + list(args), cwd=str(self.workdir), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=1800, check=False)
        seconds = time.monotonic() - began
        (self.workdir / ("%s.out" % label)).write_text(proc.stdout)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-5000:])
            raise RuntimeError("%s failed (rc=%d)" % (label, proc.returncode))
        if profile:
            recap = proc.stdout[proc.stdout.find("TASKS RECAP"):]
            print("site_rerun: the slowest tasks of %s (profile_tasks):\n%s" % (label, recap.strip()), flush=True)
        recaps = {m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3))} for m in re.finditer(
            r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)", proc.stdout, re.M)}
        return seconds, recaps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--skip-runners-scale", action="store_true", help="do not run runners_scale.py afterwards")
    parser.add_argument("--profile", action="store_true",
                        help="also print the slowest tasks of a third, profiled converge (untimed)")
    parser.add_argument("--no-audit", action="store_true", help="stop after the converges")
    args = parser.parse_args()
    fingerprint_file = CHECKOUT / "tests/fixtures/.build/fingerprint"
    if shutil.which("docker") is None or not fingerprint_file.is_file():
        sys.exit("site_rerun: needs docker and the fixtures; run `make images fixtures link`")
    serve = str(CHECKOUT / "tests/fixtures/serve.sh")
    sh(serve, "start", timeout=180)
    bench = Bench()
    bench.inventory(sh(serve, "url").stdout.strip(), fingerprint_file.read_text().strip())
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    rows = []
    try:
        print("site_rerun: starting the runner host %s (Debian 12)" % MAIN, flush=True)
        # The engine in the host needs route_localnet on its bridges (userland-proxy off), as in make demo.
        bench.start_host(MAIN, "--sysctl", "net.ipv4.conf.default.route_localnet=1")
        floor = bench.play("floor", "--limit", MAIN, "floor.yml")[0]
        rows.append(("floor: facts and one ping", floor, ""))
        first, recaps = bench.play("site-first", "--limit", MAIN, "hardened.gitlab_runner.site")
        rows.append(("site.yml, first converge", first, "changed=%d" % recaps[MAIN]["changed"]))
        since = repository_log_mark()
        second, recaps = bench.play("site-second", "--limit", MAIN, "hardened.gitlab_runner.site")
        if args.profile:
            bench.play("site-profile", "--limit", MAIN, "hardened.gitlab_runner.site", profile=True)
        requests = repository_requests_from(MAIN, since)
        rows.append(("site.yml, second converge", second, "changed=%d, repository requests=%d" % (
            recaps[MAIN]["changed"], len(requests))))
        rows.append(("ratio second / floor", second / floor, ""))
        if not args.no_audit:
            audit(bench, rows)
    finally:
        bench.stop()
    report(rows, args)
    return 0


def audit(bench, rows):
    """The audit alone: on the runner host, then on ten hosts."""
    one = bench.play("audit-1", "--limit", MAIN, "hardened.gitlab_runner.audit")[0]
    rows.append(("audit.yml, 1 host", one, "%.2f s per host" % one))
    print("site_rerun: starting 9 more hosts for the 10-host audit", flush=True)
    for name in EXTRA:
        bench.start_host(name)
    bench.play("audit-hosts-converge", "--limit", ",".join(EXTRA), "runner_only.yml")
    ten, recaps = bench.play("audit-10", "hardened.gitlab_runner.audit")
    audited = len(recaps.keys() - {"localhost"})
    rows.append(("audit.yml, 10 hosts", ten, "%.2f s per host (%d hosts)" % (ten / audited, audited)))


def report(rows, args):
    """Print the figures (and run runners_scale.py unless skipped)."""
    cpus = os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    print()
    print("site_rerun, %s, %d CPUs, %.0f GiB, docker connection with pipelining" % (
        datetime.date.today().isoformat(), cpus, memory))
    for label, value, note in rows:
        unit = "x" if label.startswith("ratio") else "s"
        print("  %-28s %8.2f %s  %s" % (label, value, unit, note))
    if not args.skip_runners_scale:
        print("\nrunners_scale.py (1 vs 50 runners, one repeat):", flush=True)
        subprocess.run([sys.executable, str(CHECKOUT / "benchmarks/runners_scale.py"), "--repeat", "1"], check=True)


if __name__ == "__main__":
    sys.exit(main())
