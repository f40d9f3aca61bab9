"""The audit_report action: one controller-side step builds the report and writes its files.

Driven through ansible-playbook on localhost (no host connection is used by the
action), with module results shaped like the audit modules' own.
"""

import json
import os
import stat
import subprocess
import sys

import pytest
import yaml

SALTED_HASH = "a" * 64


def _finding(check_id, severity, runner="r1"):
    return {"id": check_id, "severity": severity, "title": check_id, "runner": runner, "evidence": "x",
            "guidance": "fix it"}


def _results():
    config = {"changed": False, "findings": [_finding("GR002", "critical")],
              "runners": [{"name": "r1", "token_hash": SALTED_HASH, "executor": "docker"}],
              "system_id_hash": SALTED_HASH}
    return {
        "bad-host": {"config": config, "host": {"changed": False, "findings": [_finding("GR012", "high")]}},
        "clean-host": {"config": {"changed": False, "findings": [], "runners": []},
                       "host": {"changed": False, "findings": []}},
    }


def _play(tmp_path, collections_path, threshold, check=False):
    dest = tmp_path / "reports"
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": "report", "hardened.gitlab_runner.audit_report": {
            "results": _results(), "dest": str(dest), "threshold": threshold}, "register": "out"},
            {"name": "show", "ansible.builtin.debug": {"var": "out"}}],
    }]))
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path, ANSIBLE_CONFIG=str(config),
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "local"))
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
               str(playbook)] + (["--check"] if check else [])
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    try:
        tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    except (ValueError, KeyError, IndexError):
        pytest.fail("no JSON from ansible-playbook (rc %d): %s %s" % (proc.returncode, proc.stdout, proc.stderr))
    return dest, tasks[0]["hosts"]["localhost"], proc.stdout


@pytest.fixture
def playbook_runner(tmp_path, collections_path):
    if not os.path.exists(os.path.join(os.path.dirname(sys.executable), "ansible-playbook")):
        pytest.skip("no ansible-playbook next to %s" % sys.executable)
    return lambda threshold, check=False: _play(tmp_path, collections_path, threshold, check)


def test_writes_every_report_privately_and_reports_the_verdict(playbook_runner):
    dest, result, output = playbook_runner("high")
    assert not result.get("failed"), result
    assert result["changed"] is True
    names = sorted(os.listdir(dest))
    assert names == ["bad-host.json", "clean-host.json", "junit.xml", "report.json", "summary.md"]
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o700
    for name in names:
        assert stat.S_IMODE(os.stat(dest / name).st_mode) == 0o600, name
        assert SALTED_HASH not in (dest / name).read_text(), name
    assert SALTED_HASH not in output
    report = json.loads((dest / "report.json").read_text())
    assert report["failed"] is True and result["report"]["failed"] is True
    assert result["report"]["failing"] == report["failing"] == 2
    assert [line.split(":")[0] for line in result["summary"]] == ["bad-host", "clean-host"]
    assert "critical 1" in result["summary"][0] and "high 1" in result["summary"][0]
    assert "GR002" in (dest / "junit.xml").read_text()


def test_second_run_changes_nothing_and_threshold_none_passes(playbook_runner):
    playbook_runner("high")
    dest, result, _output = playbook_runner("high")
    assert result["changed"] is False
    _dest, result, _output = playbook_runner("none")
    assert result["report"]["failed"] is False
    assert json.loads((dest / "report.json").read_text())["threshold"] == "none"


def test_reports_are_written_in_check_mode_too(playbook_runner):
    dest, result, _output = playbook_runner("critical", check=True)
    assert result["changed"] is True
    assert (dest / "junit.xml").is_file()


def test_bad_arguments_are_refused(tmp_path, collections_path, playbook_runner):
    _dest, result, _output = playbook_runner("severe")
    assert result.get("failed") and "threshold" in result["msg"]
