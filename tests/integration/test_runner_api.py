"""Runners created and deleted through GitLab's REST API, against a local fake.

A runner with ``create`` (and no ``token``) is made in GitLab by the role's
``runner_config`` action on the controller, and the token GitLab returns goes
into config.toml without ever being printed. The GitLab here is the fake of
``tests/fixtures/fake_gitlab`` (the request and response shapes of GitLab's
Runners and Users API), listening on 127.0.0.1 in this test process.

One Debian 12 systemd container, converged at -vvv --diff each time:

1. first converge: one runner created, its token in config.toml, in no output;
2. second converge: nothing changed, no runner created or reset (only verified);
3. the token revoked in GitLab: the runner's token is reset, config.toml updated;
4. a wrong API token: a clear error naming the API's answer, no token in it,
   config.toml unchanged;
5. ``state: absent``: the runner leaves config.toml and is deleted in GitLab;
6. ``gitlab_runner_token_env_file`` with GitLab Runner 18.10 (the stand-in of
   that version): config.toml names the token as a variable, the root-only
   environment file holds it and the running service has it in its environment;
7. the same next to a shell runner: refused before anything changes.

Needs docker, the local images and the fixture apt repository (``make images
fixtures link``).
"""

import base64
import importlib.util
import re
import secrets

import pytest
import yaml
from runner_hosts import CHECKOUT, check_prerequisites, disposable_hosts, find_leaks, fixture_repo_url, host_inventory, run_playbook
from runner_hosts import sh as _sh


CONTAINER = "hgr-api-debian12"
CONFIG = "/etc/gitlab-runner/config.toml"
PLAYBOOK = """\
---
- name: Converge with a runner created through the GitLab API
  hosts: all
  gather_facts: true
  roles:
    - role: hardened.gitlab_runner.gitlab_runner
"""


def _fake_module():
    spec = importlib.util.spec_from_file_location(
        "fake_gitlab_api", str(CHECKOUT / "tests/fixtures/fake_gitlab/fake_gitlab_api.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Bed:
    """The container, the fake GitLab and a scratch directory with the inventory."""

    def __init__(self, workdir, repo_url, fingerprint, fake, api_token):
        self.workdir = workdir
        self.fake = fake
        self.api_token = api_token
        self.playbook = workdir / "converge.yml"
        self.playbook.write_text(PLAYBOOK)
        self.inventory, self.host_vars = host_inventory(workdir, CONTAINER, repo_url, fingerprint)

    def converge(self, label, runner, api_token=None, runners=None, **extra):
        self.host_vars.write_text(yaml.safe_dump(dict({
            "gitlab_runner_api_url": self.fake.url,
            "gitlab_runner_api_token": api_token or self.api_token,
            "gitlab_runner_runners": runners or [runner],
        }, **extra)))
        return run_playbook(self.workdir, label, "-i", str(self.inventory), str(self.playbook), "-vvv", "--diff")

    def config(self):
        return _sh("docker", "exec", CONTAINER, "cat", CONFIG).stdout

    def tokens(self):
        """Every secret this test knows: the API token and every runner token the fake ever issued."""
        known = [("api token", self.api_token)]
        known += [("runner %s" % rid, token) for rid, token in self.fake_issued]
        return known

    fake_issued = ()

    def note_issued(self):
        issued = list(self.fake_issued)
        for rid, runner in self.fake.runners.items():
            if (rid, runner["token"]) not in issued:
                issued.append((rid, runner["token"]))
        self.fake_issued = issued

    def assert_no_secret(self, output, label):
        self.note_issued()
        hits = find_leaks(output, self.tokens())
        assert not hits, "%s: a secret leaked into the output:\n%s" % (label, "\n".join(hits[:20]))


def recap(output):
    match = re.search(r"^%s\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)" % re.escape(CONTAINER),
                      output, re.M)
    assert match, "no PLAY RECAP line for %s" % CONTAINER
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


def config_token(text, name):
    """The token of runner ``name`` in config.toml's text (the role writes one key per line)."""
    block = text.split('name = "%s"' % name, 1)
    assert len(block) == 2, "runner %s is not in config.toml" % name
    match = re.search(r'^\s*token = "([^"]+)"', block[1], re.M)
    assert match, "runner %s has no token in config.toml" % name
    return match.group(1)


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    fingerprint = check_prerequisites("12")
    repo_url = fixture_repo_url()
    api_token = "glpat-FAKE-apitest-" + secrets.token_hex(12)
    fake = _fake_module().FakeGitLab(admin_token=api_token)
    fake.start()
    try:
        with disposable_hosts({CONTAINER: "12"}, "runner-api"):
            yield Bed(tmp_path_factory.mktemp("runner-api"), repo_url, fingerprint, fake, api_token)
    finally:
        fake.stop()


RUNNER = {
    "name": "api-made",
    "url": "https://gitlab.example.test",
    "executor": "docker",
    "create": {"runner_type": "instance_type", "tag_list": ["linux", "hardened"], "run_untagged": False},
}


def posts(fake, since, path):
    return [r for r in fake.requests[since:] if r[0] == "POST" and r[1].split("?")[0] == "/api/v4" + path]


def test_run1_creates_the_runner_and_keeps_its_token_out_of_the_output(bed):
    rc, output = bed.converge("run1", RUNNER)
    assert rc == 0, output[-3000:]
    created = list(bed.fake.runners.values())
    assert len(created) == 1 and created[0]["description"] == "api-made"
    assert created[0]["tag_list"] == ["linux", "hardened"] and created[0]["run_untagged"] is False
    # Positive control for the leak search: the token is on the host.
    assert config_token(bed.config(), "api-made") == created[0]["token"]
    bed.assert_no_secret(output, "run1")
    mode = _sh("docker", "exec", CONTAINER, "stat", "-c", "%a %U", CONFIG).stdout.split()
    assert mode == ["600", "root"]


def test_run2_changes_nothing_and_creates_nothing(bed):
    since = len(bed.fake.requests)
    rc, output = bed.converge("run2", RUNNER)
    assert rc == 0, output[-3000:]
    assert recap(output)["changed"] == 0
    assert not posts(bed.fake, since, "/user/runners")
    assert not [r for r in bed.fake.requests[since:] if "reset_authentication_token" in r[1]]
    assert posts(bed.fake, since, "/runners/verify"), "the kept token was not verified"
    assert len(bed.fake.runners) == 1
    bed.assert_no_secret(output, "run2")


def test_run3_a_revoked_token_is_reset(bed):
    (runner,) = bed.fake.runners.values()
    before = config_token(bed.config(), "api-made")
    bed.note_issued()
    runner["token"] = "glrt-revoked-" + secrets.token_hex(8)  # what GitLab knows now; config.toml's no longer works
    bed.note_issued()
    rc, output = bed.converge("run3", RUNNER)
    assert rc == 0, output[-3000:]
    after = config_token(bed.config(), "api-made")
    assert after != before and after == runner["token"] and len(bed.fake.runners) == 1
    assert "token_reset" in output
    bed.assert_no_secret(output, "run3")


def test_run4_an_api_error_is_clear_and_changes_nothing(bed):
    before = bed.config()
    wrong = "glpat-FAKE-wrong-" + secrets.token_hex(12)
    bed.note_issued()
    # The runner's token is forgotten in GitLab, so the role must call the API.
    (runner,) = bed.fake.runners.values()
    runner["token"] = "glrt-rotated-" + secrets.token_hex(8)
    rc, output = bed.converge("run4", RUNNER, api_token=wrong)
    assert rc != 0
    assert re.search(r'runner "api-made": the GitLab API refused or failed: .*401', output), output[-3000:]
    assert "config.toml was not changed" in output
    assert bed.config() == before
    hits = find_leaks(output, bed.tokens() + [("wrong api token", wrong)])
    assert not hits, "a secret leaked into the failure output:\n%s" % "\n".join(hits[:20])


def test_run5_state_absent_deletes_the_runner_in_gitlab(bed):
    since = len(bed.fake.requests)
    rc, output = bed.converge("run5", dict(RUNNER, state="absent"))
    assert rc == 0, output[-3000:]
    assert 'name = "api-made"' not in bed.config()
    assert bed.fake.runners == {}
    assert [r for r in bed.fake.requests[since:] if r[0] == "DELETE"]
    bed.assert_no_secret(output, "run5")


def test_the_leak_search_finds_planted_tokens():
    """The search itself (no container): a token with dashes in its random part, raw, partly masked or in base64."""
    token = "glrt-ab-cd_ef" + secrets.token_hex(8)
    encoded = base64.b64encode(b"\0" + token.encode()).decode()
    planted = "x %s y\nmasked glrt-****%s\n%s\n" % (token, token.split("-", 1)[1], encoded)
    hits = find_leaks(planted, [("t", token)])
    assert any(" as raw, line 1" in hit for hit in hits) and any(" as without prefix, line 2" in hit for hit in hits)
    assert any(" as base64 (offset 1), line 3" in hit for hit in hits)
    assert find_leaks("glrt-ab-cd_ef and nothing else", [("t", token)]) == []


def service_environment(name):
    """The environment of the runner service's main process, as {name: value}."""
    pid = _sh("docker", "exec", CONTAINER, "systemctl", "show", "-p", "MainPID", "--value", "gitlab-runner").stdout.strip()
    assert pid not in ("", "0"), "gitlab-runner is not running"
    raw = _sh("docker", "exec", CONTAINER, "cat", "/proc/%s/environ" % pid).stdout
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def test_run6_tokens_in_the_environment_file_not_in_config_toml(bed):
    rc, output = bed.converge("run6", RUNNER, gitlab_runner_version="18.10.0", gitlab_runner_token_env_file=True)
    assert rc == 0, output[-3000:]
    (runner,) = bed.fake.runners.values()
    config = bed.config()
    assert runner["token"] not in config and "glrt-" not in config
    variable = re.search(r'^\s*token = "\$\{(HGR_RUNNER_TOKEN_[0-9A-F]+)\}"', config, re.M).group(1)
    env_file = "/etc/gitlab-runner/runner-tokens.env"
    assert _sh("docker", "exec", CONTAINER, "stat", "-c", "%a %U %G", env_file).stdout.split() == ["600", "root", "root"]
    assert "%s=%s" % (variable, runner["token"]) in _sh("docker", "exec", CONTAINER, "cat", env_file).stdout
    # Positive control: the service really got it (systemd read the file for the running process).
    assert service_environment("gitlab-runner").get(variable) == runner["token"]
    bed.assert_no_secret(output, "run6")
    rc, again = bed.converge("run6-again", RUNNER, gitlab_runner_version="18.10.0", gitlab_runner_token_env_file=True)
    assert rc == 0 and recap(again)["changed"] == 0, again[-3000:]


def test_run7_refused_next_to_a_shell_runner_before_anything_changes(bed):
    before = bed.config()
    shell = {"name": "shell-next-door", "url": "https://gitlab.example.test", "executor": "shell", "trusted": True,
             "token": "glrt-FAKE-apitest-shell-" + secrets.token_hex(8)}
    rc, output = bed.converge("run7", None, runners=[RUNNER, shell], gitlab_runner_version="18.10.0",
                              gitlab_runner_token_env_file=True)
    assert rc != 0
    assert 'runner "shell-next-door": gitlab_runner_token_env_file cannot be used with a shell runner' in output
    assert bed.config() == before
    hits = find_leaks(output, bed.tokens() + [("shell token", shell["token"])])
    assert not hits, "a secret leaked:\n%s" % "\n".join(hits[:20])
