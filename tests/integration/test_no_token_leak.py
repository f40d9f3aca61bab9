"""Runner tokens never reach Ansible's output.

Acceptance: a converge at -vvv with --diff, and one with a deliberately
failing task, never prints a runner token; the whole output is searched.

One Debian 12 systemd container (``hgr-secrets-debian12``, same settings as
the Molecule platforms) is converged several times with distinctive fake
tokens made up for this run, so a match can only come from this run:

1. first converge (-vvv --diff) of several runners: must succeed;
2. a token rotated and the runner set changed, so the config.toml template
   reports a change with diff mode on;
3. config.toml cannot be written (a directory is in the way): the template
   task fails and the play stops;
4. a refused runner (privileged, not acknowledged) next to runners with
   tokens: the policy gate stops the play before the host changes;
5. an input the argument spec rejects next to runners with tokens.

Every output is searched for each token, its random part, and its base64
encoding at all three byte alignments. The positive controls read the
tokens back from the host's config.toml, so the search can fail.

Needs docker, the local images and the fixture apt repository
(``make images fixtures link``). Run with ``pytest tests/integration``.
"""

import base64
import re
import secrets

import pytest
import yaml
from runner_hosts import check_prerequisites, disposable_hosts, find_leaks, fixture_repo_url, host_inventory, run_playbook
from runner_hosts import sh as _sh

CONTAINER = "hgr-secrets-debian12"
CONFIG = "/etc/gitlab-runner/config.toml"
WRITE_TASK = "hardened.gitlab_runner.gitlab_runner : Write config.toml"
URL = "https://gitlab.example.test"
WEIRD_NAME = "quote\"and'apos\nnewline \\ backslash"

PLAYBOOK = """\
---
- name: Converge for the token leak test
  hosts: all
  gather_facts: true
  roles:
    - role: hardened.gitlab_runner.gitlab_runner
"""


def _token(label):
    """A fake runner token unique to this run: glrt-FAKE-leaktest-<label>-<32 hex>."""
    return "glrt-FAKE-leaktest-%s-%s" % (label, secrets.token_hex(16))


class Host:
    """The test container plus a scratch directory holding inventory and outputs."""

    def __init__(self, workdir, repo_url, fingerprint):
        self.workdir = workdir
        self.playbook = workdir / "converge.yml"
        self.playbook.write_text(PLAYBOOK)
        # The runners go where real inventories keep them: host_vars next to the inventory.
        self.inventory, self.host_vars = host_inventory(workdir, CONTAINER, repo_url, fingerprint)
        self.tokens = []  # (label, token) for every token made up so far, rotated ones too

    def runner(self, label, executor="docker", **extra):
        token = _token(label)
        self.tokens.append((label, token))
        return dict({"name": label, "url": URL, "token": token, "executor": executor}, **extra)

    def converge(self, label, runners, *args):
        """Run the role with ``runners`` at -vvv --diff; return (rc, whole output)."""
        self.host_vars.write_text(yaml.safe_dump({"gitlab_runner_runners": runners}, allow_unicode=True))
        # The output includes Ansible's own log file, so that is searched as well;
        # it is kept as <label>.out for whoever debugs a failure (the tokens are fake).
        return run_playbook(self.workdir, label, "-i", str(self.inventory), str(self.playbook), "-vvv", "--diff", *args)

    def exec(self, *args, opts=(), **kwargs):
        return _sh("docker", "exec", *opts, CONTAINER, *args, **kwargs)

    def config(self):
        proc = self.exec("cat", CONFIG, check=False)
        return proc.stdout if proc.returncode == 0 else None

    def assert_no_token(self, output, label):
        """Fail, naming where, if any form of any token made up so far is in ``output``."""
        hits = find_leaks(output, self.tokens)
        assert not hits, "%s: a runner token leaked into the output (%s):\n%s" % (
            label, self.workdir / ("%s.out" % label), "\n".join(hits[:20]))


def _recap(output):
    match = re.search(r"^%s\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)" % re.escape(CONTAINER),
                      output, re.M)
    assert match, "no PLAY RECAP line for %s in the output" % CONTAINER
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


def _task_result(output, task):
    """The first result line (ok:/changed:/fatal:/skipping:) after the banner of ``task``."""
    banner = "TASK [%s]" % task
    start = output.find(banner)
    assert start >= 0, "task %r did not run" % task
    for line in output[start + len(banner):].splitlines():
        if line.startswith("TASK ["):
            break
        match = re.match(r"^(ok|changed|fatal|skipping|failed): \[%s\]" % re.escape(CONTAINER), line)
        if match:
            return match.group(1)
    raise AssertionError("no result for task %r in the output" % task)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    fingerprint = check_prerequisites("12")
    repo_url = fixture_repo_url()
    # The name belongs to this test: a container left by an interrupted run goes.
    with disposable_hosts({CONTAINER: "12"}, "no-token-leak"):
        yield Host(tmp_path_factory.mktemp("no-token-leak"), repo_url, fingerprint)


@pytest.fixture(scope="module")
def runners(host):
    """The runner set of run 1: docker, trusted shell, and a name with quotes and a newline."""
    return [
        host.runner("docker-a", limit=2, environment=["GIT_DEPTH=10"]),
        host.runner("shell-trusted", executor="shell", trusted=True),
        dict(host.runner("weird-name", docker={"image": "alpine:3", "cap_drop": ["ALL"]}), name=WEIRD_NAME),
    ]


def test_the_search_finds_planted_tokens():
    """The search itself: the token raw, partly masked, or base64-encoded at any offset is found."""
    tokens = [("selftest", _token("selftest")), ("other", _token("other"))]
    token = tokens[0][1]
    planted = ["content: %s" % token, "token = glrt-****-%s" % token.rsplit("-", 1)[1]]
    for prefix in ("", "x", "xy", "xyz", '  token = "'):
        planted.append("content: " + base64.b64encode((prefix + token + '"\n').encode()).decode())
    for line in planted:
        assert find_leaks("ok: [host] =>\n" + line + "\n", tokens), line
    clean = "ok: [host] =>\n" + base64.b64encode(b"unrelated text, glrt-FAKE-leaktest-" * 10).decode()
    assert find_leaks(clean, tokens) == []


def test_run1_first_converge_at_vvv_with_diff(host, runners):
    rc, output = host.converge("run1-first", runners)
    assert rc == 0, "the first converge failed (rc=%d); see %s" % (rc, host.workdir / "run1-first.out")
    assert _task_result(output, WRITE_TASK) == "changed"
    host.assert_no_token(output, "run1-first")
    # Positive control: the tokens the search looked for are really on the host.
    config = host.config()
    assert config is not None, "%s was not written" % CONFIG
    for runner in runners:
        assert 'token = "%s"' % runner["token"] in config, "token of %r missing from %s" % (runner["name"], CONFIG)
    assert host.exec("stat", "-c", "%a %U:%G", CONFIG).stdout.split() == ["600", "root:root"]
    # The modules' own logging on the host (they log their arguments to the journal).
    journal = host.exec("journalctl", "--no-pager", "-o", "cat").stdout
    host.assert_no_token(journal, "run1-first (host journal)")


def test_run2_rotated_token_changes_config_in_diff_mode(host, runners):
    old = runners[0]["token"]
    rotated = [host.runner("docker-a", limit=3, environment=["GIT_DEPTH=10"]), runners[1],
               host.runner("docker-b", docker={"image": "debian:13-slim"})]
    assert rotated[0]["token"] != old
    rc, output = host.converge("run2-rotated", rotated)
    runners[:] = rotated  # what the host has from now on, for the next runs
    assert rc == 0, "the converge with a rotated token failed (rc=%d); see %s" % (rc, host.workdir / "run2-rotated.out")
    # The template task changed the file while --diff was on.
    assert _task_result(output, WRITE_TASK) == "changed"
    host.assert_no_token(output, "run2-rotated")
    config = host.config()
    for runner in rotated:
        assert 'token = "%s"' % runner["token"] in config, "token of %r missing from %s" % (runner["name"], CONFIG)
    assert old not in config, "the rotated-out token is still in config.toml"


def test_run3_failing_config_write(host, runners):
    saved = host.config()
    assert saved is not None
    # Make the configuration directory read-only (a bind mount onto itself), so
    # the template task, which holds every token, fails at its final write.
    # The role refuses a directory in config.toml's place earlier, on purpose.
    host.exec("sh", "-c", "mount --bind /etc/gitlab-runner /etc/gitlab-runner"
              " && mount -o remount,ro,bind /etc/gitlab-runner")
    changed = [dict(runners[0], limit=9)] + runners[1:]
    try:
        rc, output = host.converge("run3-failing", changed)
        assert rc != 0, "the converge succeeded although /etc/gitlab-runner is read-only"
        assert _task_result(output, WRITE_TASK) == "fatal", "the failing task should be %r" % WRITE_TASK
        assert _recap(output)["failed"] == 1
        host.assert_no_token(output, "run3-failing")
    finally:
        host.exec("umount", "/etc/gitlab-runner")
    assert host.config() == saved


def test_run4_refused_runner_next_to_tokens(host, runners):
    before = host.config()
    # The gate also parses the file on the host, which holds tokens.
    assert before is not None and any(r["token"] in before for r in runners), "no config.toml with tokens to start from"
    refused = runners + [host.runner("privileged-no-ack", docker={"privileged": True})]
    rc, output = host.converge("run4-refused", refused)
    assert rc != 0, "a privileged runner without acknowledgement was accepted"
    assert "REFUSED" in output and "GR002" in output, "the refusal does not name REFUSED/GR002"
    assert "TASK [%s]" % WRITE_TASK not in output, "the play went on to write config.toml"
    host.assert_no_token(output, "run4-refused")
    assert host.config() == before, "a refused configuration changed config.toml"


def test_run5_argument_spec_error_next_to_tokens(host, runners):
    bad = runners + [host.runner("bad-limit", limit="many")]
    rc, output = host.converge("run5-argspec", bad)
    assert rc != 0, "limit: many passed the argument spec"
    assert "Validation of arguments failed" in output
    host.assert_no_token(output, "run5-argspec")
