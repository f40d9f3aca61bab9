"""The independent host baseline (tests/host) fails on a host the roles never touched.

Acceptance: ``pytest tests/host`` against a fresh, unconverged Debian 12 test
host (``tests/images/run-host.sh``) exits non-zero with exactly one failure per
missing control (the runner package, its service, the configuration directory,
config.toml, the job user), each with a message that names it; every check
whose subject is missing is skipped with a pointer to the check that fails for
it, and nothing errors. (On converged hosts the Molecule scenarios run the same
suite and it must pass.)

Needs docker and the local images (``make images``). Run with ``pytest tests/integration``.
"""

import os
import subprocess
import sys
from xml.etree import ElementTree

from runner_hosts import CHECKOUT, check_prerequisites, disposable_hosts

HOST = "hgr-baseline-fresh"
# The checks that must fail on a fresh host, and what their message must say.
MISSING_CONTROLS = {
    "test_runner_package_installed": "the gitlab-runner package is not installed",
    "test_service_enabled_and_running": "gitlab-runner.service does not exist",
    "test_config_dir_mode": "/etc/gitlab-runner is missing, not 0700 root:root",
    "test_config_toml_mode": "/etc/gitlab-runner/config.toml is missing, not 0600 root:root",
    "test_job_user_exists": "the job user gitlab-runner does not exist",
}


def junit_results(report):
    """{test name without its parameters: [(outcome, message)]} of a pytest --junitxml file."""
    results = {}
    for case in ElementTree.parse(report).iter("testcase"):
        name = case.get("name").split("[", 1)[0]
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome, message = child.tag, child.get("message", "")
                break
        results.setdefault(name, []).append((outcome, message))
    return results


def test_unconverged_host_fails_once_per_missing_control(tmp_path):
    check_prerequisites("12")
    report = tmp_path / "baseline.xml"
    with disposable_hosts({HOST: "12"}, "host-baseline"):
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", str(CHECKOUT / "tests/host"), "--hosts=docker://" + HOST,
             "-p", "no:cacheprovider", "-rfEs", "--tb=line", "--junitxml", str(report)],
            # Wide enough that the short summary keeps each failure's message.
            cwd=str(CHECKOUT), env=dict(os.environ, COLUMNS="250"), capture_output=True, text=True, timeout=600, check=False)
    summary = proc.stdout[proc.stdout.find("short test summary info"):] or proc.stdout
    (tmp_path / "baseline.out").write_text(proc.stdout + proc.stderr)
    print(summary)  # what `pytest -rA tests/integration` shows: the baseline's own summary
    assert proc.returncode == 1, "pytest tests/host should fail with test failures (rc 1), got rc %d:\n%s%s" % (
        proc.returncode, proc.stdout[-3000:], proc.stderr[-2000:])

    results = junit_results(report)
    failed = {name: [message for outcome, message in runs if outcome == "failure"] for name, runs in results.items()}
    failed = {name: messages for name, messages in failed.items() if messages}
    errors = [(name, message) for name, runs in results.items() for outcome, message in runs if outcome == "error"]
    assert not errors, "errors instead of failures: %s" % errors
    assert sorted(failed) == sorted(MISSING_CONTROLS), "expected one failure per missing control:\n%s" % summary
    for name, wanted in MISSING_CONTROLS.items():
        assert len(failed[name]) == 1 and wanted in failed[name][0], "%s: %r does not say %r" % (name, failed[name], wanted)

    # The rest: skipped, each naming why (a failing check above, or no Docker engine / firewall to check).
    for name, runs in results.items():
        for outcome, message in runs:
            if name in MISSING_CONTROLS:
                continue
            assert outcome == "skipped", "%s %s on a fresh host: %s" % (name, outcome, message)
            assert "fails for it" in message or "auto" in message, "%s skipped without saying why: %r" % (name, message)
