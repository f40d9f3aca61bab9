"""Converging 50 runners costs about the same as converging 1.

The role renders config.toml with one template task for the whole file (not
tasks per runner or per key), so neither the number of tasks nor the wall
time should grow with the number of runners. This script measures it; it
asserts nothing about timings, it prints them.

Usage: .venv/bin/python benchmarks/runners_scale.py [--repeat 3] [--runners 50] [--release 12]

Needs docker, the local images and the fixture apt repository
(``make images fixtures link``). It starts its own Debian systemd container
``hgr-bench-debian<release>`` on the ``hgr-test`` network, converges once with
1 runner to install everything (untimed), then times whole
``ansible-playbook`` runs (wall clock) of:

  1 runner,   changed     a setting of the single runner changed
  1 runner,   unchanged   the same again (nothing to do)
  N runners,  changed     N-1 runners added (config.toml's first write with N)
  N runners,  unchanged   the same again

each ``--repeat`` times (the medians are printed), and removes the container
at the end, whatever happens. It also prints the PLAY RECAP counts (``ok=``
counts every task that ran, changed ones included; ``changed=`` is the part
of them that changed something) and the time of the config.toml template
task and of the policy gate (from ``ansible.posix.profile_tasks``).
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

CHECKOUT = Path(__file__).resolve().parents[1]
ROLE = "hardened.gitlab_runner.gitlab_runner"
TEMPLATE_TASK = ROLE + " : Write config.toml"
GATE_TASK = ROLE + " : Check the wanted configuration against the policy catalog"
URL = "https://gitlab.example.test"
BOOT_TIMEOUT = 90
PLAYBOOK = """\
---
- name: Converge for the runner scale benchmark
  hosts: all
  gather_facts: true
  roles:
    - role: hardened.gitlab_runner.gitlab_runner
"""


def sh(*args, check=True, timeout=300):
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError("%s failed (rc=%d): %s%s" % (" ".join(args[:4]), proc.returncode, proc.stdout, proc.stderr))
    return proc


def runner(index, limit=None):
    """Runner number ``index``: docker runners, and every tenth (0, 10, ...) a trusted shell runner.

    Runner 0 is a shell runner so that the 1-runner and the N-runner sets both
    have an acknowledged risk: the role's "Show accepted risks" task then runs
    in both, and the task counts compare like with like.
    """
    entry = {
        "name": "bench-%02d" % index,
        "url": URL,
        "token": "glrt-FAKE-bench-%04d-0123456789abcdef" % index,
        "executor": "docker",
        "limit": limit if limit is not None else 1 + index % 4,
        "environment": ["GIT_DEPTH=%d" % (10 + index)],
        "docker": {"image": "debian:%s-slim" % ("12" if index % 2 else "13")},
    }
    if index % 10 == 0:
        entry.update(executor="shell", trusted=True)
        del entry["docker"]
    return entry


class Bench:
    def __init__(self, release):
        self.container = "hgr-bench-debian%s" % release
        self.release = release
        self.image = "hardened-gitlab-runner/debian:%s" % release
        self.workdir = Path(tempfile.mkdtemp(prefix="hgr-bench-"))
        self.started = False

    # --- container --------------------------------------------------------------

    def start(self):
        for tool in ("docker",):
            if shutil.which(tool) is None:
                sys.exit("runners_scale: %s is not installed" % tool)
        if sh("docker", "image", "inspect", self.image, check=False).returncode != 0:
            sys.exit("runners_scale: image %s is missing; run `make images`" % self.image)
        fingerprint_file = CHECKOUT / "tests/fixtures/.build/fingerprint"
        if not fingerprint_file.is_file():
            sys.exit("runners_scale: %s is missing; run `make fixtures`" % fingerprint_file)
        serve = str(CHECKOUT / "tests/fixtures/serve.sh")
        sh(serve, "start")
        repo_url = sh(serve, "url").stdout.strip()

        # The name belongs to this script: a container left by an interrupted run goes.
        sh("docker", "rm", "-f", self.container, check=False)
        self.started = True
        # Starts the container and waits for systemd (raises otherwise).
        sh(str(CHECKOUT / "tests/images/run-host.sh"), self.container, self.release,
           "--label", "hardened-gitlab-runner.benchmark=runners_scale", timeout=BOOT_TIMEOUT + 60)

        (self.workdir / "converge.yml").write_text(PLAYBOOK)
        (self.workdir / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": {self.container: {
            "ansible_connection": "community.docker.docker",
            "ansible_become": False,
            "gitlab_runner_repo_url": repo_url,
            "gitlab_runner_repo_key_fingerprint": fingerprint_file.read_text().strip(),
            "gitlab_runner_version": "18.5.0",
        }}}}))
        (self.workdir / "host_vars").mkdir()

    def stop(self):
        if self.started:
            sh("docker", "rm", "-f", self.container, check=False)
            self.started = False
        shutil.rmtree(self.workdir, ignore_errors=True)

    # --- converges --------------------------------------------------------------

    def converge(self, runners):
        """One ansible-playbook run; returns (wall seconds, recap counts, task seconds by name)."""
        (self.workdir / "host_vars" / ("%s.yml" % self.container)).write_text(
            yaml.safe_dump({"gitlab_runner_runners": runners}))
        env = dict(os.environ)
        env.update({
            "ANSIBLE_COLLECTIONS_PATH": str(CHECKOUT / ".collections"),
            "ANSIBLE_CONFIG": str(CHECKOUT / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
            "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "1000",
        })
        playbook = Path(sys.executable).parent / "ansible-playbook"
        cmd = [str(playbook) if playbook.exists() else "ansible-playbook",
               "-i", str(self.workdir / "inventory.yml"), str(self.workdir / "converge.yml")]
        began = time.monotonic()
        proc = subprocess.run(cmd, cwd=str(self.workdir), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=900, check=False)
        seconds = time.monotonic() - began
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-6000:])
            raise RuntimeError("ansible-playbook failed (rc=%d) with %d runners" % (proc.returncode, len(runners)))
        match = re.search(r"^%s\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=\d+\s+skipped=(\d+)"
                          % re.escape(self.container), proc.stdout, re.M)
        if not match:
            raise RuntimeError("no PLAY RECAP in the output")
        recap = dict(zip(("ok", "changed", "skipped"), map(int, match.groups())))
        tasks = {}
        recap_at = proc.stdout.find("TASKS RECAP")
        for line in proc.stdout[recap_at:].splitlines():
            found = re.match(r"^(.*?) -+ (\d+\.\d+)s$", line)
            if found:
                tasks[found.group(1)] = tasks.get(found.group(1), 0.0) + float(found.group(2))
        return seconds, recap, tasks

    def runners_on_host(self):
        text = sh("docker", "exec", self.container, "cat", "/etc/gitlab-runner/config.toml").stdout
        return text.count("[[runners]]")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case (median printed; default 3)")
    parser.add_argument("--runners", type=int, default=50, help="runners in the large case (default 50)")
    parser.add_argument("--release", default="12", choices=("12", "13"), help="Debian release of the host")
    args = parser.parse_args()
    many = args.runners

    cases = ("1 runner, changed", "1 runner, unchanged",
             "%d runners, changed (first write)" % many, "%d runners, unchanged" % many)
    results = {case: [] for case in cases}
    notes = []
    bench = Bench(args.release)
    # docker rm -f on SIGTERM/SIGHUP too, not only on Ctrl-C.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    try:
        print("runners_scale: starting %s" % bench.container, flush=True)
        bench.start()
        print("runners_scale: warm-up converge with 1 runner (installs everything, untimed)", flush=True)
        bench.converge([runner(0, limit=100)])
        for rep in range(args.repeat):
            if rep:
                bench.converge([runner(0, limit=100 + rep)])  # back to 1 runner, untimed
            one = [runner(0, limit=200 + rep)]
            plan = ((cases[0], one, True), (cases[1], one, False),
                    (cases[2], one + [runner(i) for i in range(1, many)], True),
                    (cases[3], one + [runner(i) for i in range(1, many)], False))
            for case, runners, expect_change in plan:
                seconds, recap, tasks = bench.converge(runners)
                results[case].append((seconds, recap, tasks))
                print("  run %d/%d  %-36s %6.2f s  ok=%d changed=%d" % (
                    rep + 1, args.repeat, case, seconds, recap["ok"], recap["changed"]), flush=True)
                if expect_change != (recap["changed"] > 0):
                    notes.append("run %d, %s: changed=%d, expected %s" % (
                        rep + 1, case, recap["changed"], "a change" if expect_change else "none"))
                if case == cases[2] and bench.runners_on_host() != many:
                    notes.append("run %d: config.toml holds %d runners, not %d" % (rep + 1, bench.runners_on_host(), many))
    finally:
        bench.stop()

    def median(case, pick):
        return statistics.median(pick(r) for r in results[case])

    print()
    print("%-36s %9s %18s %5s %8s %11s %9s" % ("case", "median s", "all runs s", "ok=", "changed=", "template s", "gate s"))
    for case in cases:
        runs = results[case]
        print("%-36s %9.2f %18s %5s %8s %11.2f %9.2f" % (
            case, median(case, lambda r: r[0]), " ".join("%.2f" % r[0] for r in runs),
            "/".join(sorted({str(r[1]["ok"]) for r in runs})), "/".join(sorted({str(r[1]["changed"]) for r in runs})),
            median(case, lambda r: r[2].get(TEMPLATE_TASK, 0.0)), median(case, lambda r: r[2].get(GATE_TASK, 0.0))))
    print()
    for label, small, large in (("changed", cases[0], cases[2]), ("unchanged", cases[1], cases[3])):
        print("ratio %d/1 runners, %-10s wall %.2f   template task %.2f   tasks run (ok=) %d vs %d" % (
            many, label + ":", median(large, lambda r: r[0]) / median(small, lambda r: r[0]),
            median(large, lambda r: r[2].get(TEMPLATE_TASK, 0.0)) / max(median(small, lambda r: r[2].get(TEMPLATE_TASK, 0.0)), 1e-9),
            median(large, lambda r: r[1]["ok"]), median(small, lambda r: r[1]["ok"])))
    for note in notes:
        print("note: " + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
