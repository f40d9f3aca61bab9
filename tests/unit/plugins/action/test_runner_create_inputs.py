"""runner_config action: the inputs of runners GitLab creates (``create``), checked
before anything happens, with messages that name the runner and the input."""

import pytest

from ansible_collections.hardened.gitlab_runner.plugins.action.runner_config import created_runners
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config import ConfigError

API = {"url": "https://gitlab.example.test", "token": "glpat-FAKE-unit-0001"}


def runner(**extra):
    return dict({"name": "made", "url": "https://gitlab.example.test", "executor": "docker",
                 "create": {"runner_type": "instance_type"}}, **extra)


def test_specs_of_created_runners_only():
    specs = created_runners([runner(), {"name": "given", "token": "glrt-x", "url": "https://g", "executor": "shell"},
                             runner(name="gone", state="absent",
                                    create={"runner_type": "group_type", "group_id": 7, "tag_list": ["a"]})], API)
    assert specs == {
        "made": ("https://gitlab.example.test", {"runner_type": "instance_type", "description": "made"}, False),
        "gone": ("https://gitlab.example.test",
                 {"runner_type": "group_type", "group_id": 7, "tag_list": ["a"], "description": "gone"}, True),
    }


def test_the_api_url_defaults_to_the_runners_own():
    specs = created_runners([runner(url="https://other.example.test")], dict(API, url=""))
    assert specs["made"][0] == "https://other.example.test"


@pytest.mark.parametrize("bad, api, message", [
    ({"token": "glrt-given"}, API, "give either token or create, not both"),
    ({"create": {"runner_type": "shared"}}, API, "create.runner_type must be one of"),
    ({"create": {"runner_type": "group_type"}}, API, "create.group_id is required for a group_type runner"),
    ({"create": {"runner_type": "project_type", "group_id": 3}}, API, "create.project_id is required"),
    ({"create": {"runner_type": "instance_type", "tags": ["x"]}}, API, "create has unknown keys tags"),
    ({"create": "instance_type"}, API, "create must be a mapping"),
    ({}, dict(API, token=""), "create needs gitlab_runner_api_token"),
    ({"url": ""}, dict(API, url=""), "create needs gitlab_runner_api_url or the runner's url"),
])
def test_bad_create_inputs_are_refused_by_name(bad, api, message):
    with pytest.raises(ConfigError) as refused:
        created_runners([runner(**bad)], api)
    assert 'runner "made"' in str(refused.value) and message in str(refused.value)
    assert "glpat-FAKE" not in str(refused.value) and "glrt-given" not in str(refused.value)
