"""runner_config action: runner tokens in a root-only environment file instead of
config.toml (gitlab_runner_token_env_file), for GitLab Runner 18.10 and later,
refused next to shell and custom runners. Runs the real action on this machine."""

import os
import tomllib

import pytest

from ansible_collections.hardened.gitlab_runner.plugins.action.runner_config import (
    parse_token_env,
    token_env_problems,
    token_variable,
)
from ansible_collections.hardened.gitlab_runner.tests.unit.plugins.action.test_runner_config_action import (
    TOKEN,
    _play,
    _step,
)

DOCKER = {"name": "d", "url": "https://gitlab.example.test", "token": TOKEN, "executor": "docker"}
OTHER = dict(DOCKER, name="k", token=TOKEN + "-other")


def _env_step(tmp_path, runners, enabled=True, version="18.10.0", check=False):
    step = _step(tmp_path, runners, check=check)
    step["hardened.gitlab_runner.runner_config"].update(
        token_env=enabled, token_env_file=str(tmp_path / "etc" / "runner-tokens.env"), runner_version=version)
    return step


@pytest.mark.parametrize("version, ok", [
    ("18.10.0", True), ("18.10.0-1", True), ("19.3.1", True), ("v18.11.2", True),
    ("18.9.3", False), ("18.5.0-1", False), ("17.11.0", False), ("", False), ("unknown", False),
])
def test_needs_a_runner_that_expands_environment_variables(version, ok):
    problems = token_env_problems([DOCKER], version)
    assert (problems == []) is ok
    if not ok:
        assert "18.10.0" in problems[0]


@pytest.mark.parametrize("executor", ["shell", "custom"])
def test_refused_next_to_runners_whose_jobs_get_the_service_environment(executor):
    problems = token_env_problems([DOCKER, dict(DOCKER, name="s", executor=executor)], "19.0.0")
    assert len(problems) == 1 and 'runner "s"' in problems[0] and "every runner's token" in problems[0]
    assert token_env_problems([DOCKER, dict(DOCKER, name="s", executor=executor, state="absent")], "19.0.0") == []


def test_the_variable_is_named_by_the_token_not_the_runner():
    assert token_variable(TOKEN) == token_variable(TOKEN) != token_variable(TOKEN + "x")
    assert TOKEN not in token_variable(TOKEN) and token_variable(TOKEN).startswith("HGR_RUNNER_TOKEN_")


@pytest.mark.skipif(os.geteuid() != 0, reason="the action writes config.toml and the environment file as root")
def test_config_holds_no_token_and_the_file_holds_them_all(tmp_path, collections_path):
    (tmp_path / "etc").mkdir(mode=0o700)
    env_file = tmp_path / "etc" / "runner-tokens.env"
    config_file = tmp_path / "etc" / "config.toml"
    first, again = _play(tmp_path, collections_path, [_env_step(tmp_path, [DOCKER, OTHER]),
                                                      _env_step(tmp_path, [DOCKER, OTHER])])
    assert first["changed"] is True and first["token_env_changed"] is True
    assert again["changed"] is False and again["token_env_changed"] is False
    text = config_file.read_text()
    assert TOKEN not in text and "glrt-" not in text
    tokens = [runner["token"] for runner in tomllib.loads(text)["runners"]]
    assert tokens == ["${%s}" % token_variable(TOKEN), "${%s}" % token_variable(TOKEN + "-other")]
    values = parse_token_env(env_file.read_text())
    assert values == {token_variable(TOKEN): TOKEN, token_variable(TOKEN + "-other"): TOKEN + "-other"}
    info = os.stat(env_file)
    assert "%04o" % (info.st_mode & 0o7777) == "0600" and info.st_uid == 0 and info.st_gid == 0

    # GitLab Runner's own fields stay while the token does (the file tells the action which it is).
    config_file.write_text(text.replace('token = "${%s}"' % token_variable(TOKEN),
                                        'token = "${%s}"\n  id = 42\n  token_obtained_at = 2026-11-01T00:00:00Z'
                                        % token_variable(TOKEN)))
    kept, settled = _play(tmp_path, collections_path, [_env_step(tmp_path, [DOCKER, OTHER]),
                                                       _env_step(tmp_path, [DOCKER, OTHER])])
    assert kept["token_env_changed"] is False and settled["changed"] is False
    assert tomllib.loads(config_file.read_text())["runners"][0]["id"] == 42

    # A rotated token: new variable, new file; turned off: tokens back in config.toml, the file gone.
    rotated = dict(DOCKER, token=TOKEN + "-rotated")
    (changed,) = _play(tmp_path, collections_path, [_env_step(tmp_path, [rotated, OTHER])])
    assert changed["token_env_changed"] is True
    assert parse_token_env(env_file.read_text())[token_variable(TOKEN + "-rotated")] == TOKEN + "-rotated"
    (off,) = _play(tmp_path, collections_path, [_env_step(tmp_path, [rotated, OTHER], enabled=False)])
    assert off["token_env_changed"] is True and not env_file.exists()
    assert TOKEN + "-rotated" in config_file.read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="the action runs as root")
def test_an_old_runner_is_refused_before_anything_is_written(tmp_path, collections_path):
    (tmp_path / "etc").mkdir(mode=0o700)
    step = _env_step(tmp_path, [DOCKER], version="18.5.0")
    step["ignore_errors"] = True
    (refused,) = _play(tmp_path, collections_path, [step], allow_failure=True)
    assert refused["failed"] is True and "18.10.0" in refused["msg"] and "nothing changed" in refused["msg"]
    assert not (tmp_path / "etc" / "config.toml").exists() and not (tmp_path / "etc" / "runner-tokens.env").exists()
