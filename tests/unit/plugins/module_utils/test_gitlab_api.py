"""The GitLab API client (module_utils/gitlab_api.py) against the fake GitLab of tests/fixtures/fake_gitlab."""

import http.server
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request

import pytest

from ansible_collections.hardened.gitlab_runner.plugins.module_utils import gitlab_api
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.gitlab_api import (
    MASK,
    GitLabAPIError,
    GitLabClient,
    ensure_runner,
    remove_runner,
    scrub,
)

FAKE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "fixtures", "fake_gitlab",
                         "fake_gitlab_api.py")
# Not shaped like a GitLab token on purpose: only the client's own list of secrets can hide it.
ADMIN_TOKEN = "admin-Secret-4f9c2e81"


def load_fake_module():
    spec = importlib.util.spec_from_file_location("hgr_fake_gitlab_api", FAKE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fake_gitlab_api = load_fake_module()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """open_url honours proxy variables: the fake on 127.0.0.1 must be reached directly."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake():
    server = fake_gitlab_api.FakeGitLab(admin_token=ADMIN_TOKEN)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(fake):
    return GitLabClient(fake.url, ADMIN_TOKEN, timeout=10)


@pytest.fixture
def sent(monkeypatch):
    """Every request the client hands to open_url: (method, url, headers, decoded JSON body, other arguments)."""
    calls = []
    real_open_url = gitlab_api.open_url

    def recording_open_url(url, data=None, headers=None, method=None, **kwargs):
        calls.append((method, url, dict(headers or {}), json.loads(data) if data else None, kwargs))
        return real_open_url(url, data=data, headers=headers, method=method, **kwargs)

    monkeypatch.setattr(gitlab_api, "open_url", recording_open_url)
    return calls


def changing_requests(fake):
    """The requests that change GitLab: anything but a GET and the read-only POST /runners/verify."""
    return [(method, path) for method, path in fake.requests
            if method != "GET" and (method, path) != ("POST", "/api/v4/runners/verify")]


def assert_no_secret(exc, *secrets):
    for text in (str(exc), repr(exc), exc.message):
        for secret in secrets:
            assert secret not in text


GROUP_SPEC = {"runner_type": "group_type", "group_id": 42, "description": "hgr-ci-01",
              "tag_list": ["docker", "hardened"], "run_untagged": False, "access_level": "ref_protected"}


# --- create ---------------------------------------------------------------------------

def test_create_sends_the_documented_json_body_and_parses_the_201(fake, client, sent):
    created = client.create_runner("group_type", group_id=42, description="hgr-ci-01", tag_list=["docker", "linux"],
                                   run_untagged=False, locked=True, access_level="ref_protected", maximum_timeout=3600)

    method, url, headers, body, options = sent[-1]
    assert (method, url) == ("POST", fake.url + "/api/v4/user/runners")
    assert (options["validate_certs"], options["ca_path"], options["timeout"]) == (True, None, 10)
    assert (options["follow_redirects"], options["use_netrc"]) == ("none", False)
    assert headers["PRIVATE-TOKEN"] == ADMIN_TOKEN and headers["Content-Type"] == "application/json"
    # None fields (paused, maintenance_note) are left out; group_id goes only with group_type.
    assert body == {"runner_type": "group_type", "group_id": 42, "description": "hgr-ci-01",
                    "tag_list": ["docker", "linux"], "run_untagged": False, "locked": True,
                    "access_level": "ref_protected", "maximum_timeout": 3600}
    record = fake.runners[created["id"]]
    assert created == {"id": record["id"], "token": record["token"], "token_expires_at": None}
    assert created["token"].startswith("glrt-") and len(created["token"]) == 25
    assert record["group_id"] == 42 and record["tag_list"] == ["docker", "linux"] and record["locked"] is True


def test_create_instance_runner_sends_no_namespace_and_splits_a_tag_string(fake, client, sent):
    created = client.create_runner("instance_type", group_id=7, project_id=8, tag_list="a, b,,c")

    assert sent[-1][3] == {"runner_type": "instance_type", "tag_list": ["a", "b", "c"]}
    assert fake.runners[created["id"]]["runner_type"] == "instance_type"


def test_create_project_runner(fake, client):
    created = client.create_runner("project_type", project_id="17", description="p")
    assert fake.runners[created["id"]]["project_ids"] == [17]
    assert client.find_runner("project_type", "p", project_id=17)["id"] == created["id"]


def test_arguments_the_api_cannot_take_are_refused_before_any_request(fake, client):
    with pytest.raises(ValueError, match="runner_type must be one of"):
        client.create_runner("shared")
    with pytest.raises(ValueError, match="access_level"):
        client.create_runner("instance_type", access_level="protected")
    with pytest.raises(ValueError, match="group_id must be a positive integer"):
        client.list_runners("group_type")
    with pytest.raises(ValueError, match="description"):
        ensure_runner(client, {"runner_type": "instance_type", "description": "  "})
    assert not fake.requests


# --- find -----------------------------------------------------------------------------

def test_find_runner_matches_the_description_exactly(fake, client):
    for description in ("ci", "ci-2", "CI", " ci"):
        fake.add_runner("instance_type", description)
    wanted = fake.add_runner("instance_type", "ci-1")

    assert client.find_runner("instance_type", "ci-1")["id"] == wanted["id"]
    assert client.find_runner("instance_type", "ci-") is None
    assert client.find_runner("instance_type", "ci")["description"] == "ci"


def test_find_runner_follows_pagination_past_100(fake, client):
    for number in range(249):
        fake.add_runner("instance_type", "filler-%d" % number)
    last = fake.add_runner("instance_type", "the-last-one")

    assert client.find_runner("instance_type", "the-last-one")["id"] == last["id"]
    assert len(client.list_runners("instance_type")) == 250
    pages = [path for method, path in fake.requests if method == "GET"][:3]
    assert pages == ["/api/v4/runners/all?type=instance_type&per_page=100&page=%d" % page for page in (1, 2, 3)]


def test_list_only_shows_the_runner_type_asked_for(fake, client):
    fake.add_runner("instance_type", "same")
    group_runner = fake.add_runner("group_type", "same", group_id=3)

    assert client.find_runner("group_type", "same", group_id=3)["id"] == group_runner["id"]
    assert [r["runner_type"] for r in client.list_runners("group_type", group_id=3)] == ["group_type"]


def test_an_ambiguous_description_is_an_error_naming_the_ids(fake, client):
    first = fake.add_runner("instance_type", "twin")
    second = fake.add_runner("instance_type", "twin")

    with pytest.raises(GitLabAPIError) as caught:
        client.find_runner("instance_type", "twin")
    assert caught.value.status is None
    assert "ids %d, %d" % (first["id"], second["id"]) in str(caught.value)
    assert "'twin'" in str(caught.value)
    with pytest.raises(GitLabAPIError):
        ensure_runner(client, {"runner_type": "instance_type", "description": "twin"})
    assert not changing_requests(fake)


def test_a_parent_groups_runner_is_not_taken_for_the_groups_own():
    server = fake_gitlab_api.FakeGitLab(admin_token=ADMIN_TOKEN, group_parents={42: 1})
    server.start()
    try:
        other_client = GitLabClient(server.url, ADMIN_TOKEN)
        parent_runner = server.add_runner("group_type", "hgr-ci-01", group_id=1)
        parent_token = parent_runner["token"]
        # GitLab lists the parent's runner for the child group too...
        assert [r["id"] for r in other_client.list_runners("group_type", group_id=42)] == [parent_runner["id"]]
        # ...but it is not the child's: a new runner is made, the parent's token is left alone.
        result = ensure_runner(other_client, GROUP_SPEC)
        assert result["action"] == "created" and result["id"] != parent_runner["id"]
        assert server.runners[parent_runner["id"]]["token"] == parent_token
        assert server.runners[result["id"]]["group_id"] == 42
    finally:
        server.stop()


# --- ensure_runner / remove_runner ------------------------------------------------------

def test_ensure_runner_creates_then_keeps_with_the_current_token(fake, client):
    first = ensure_runner(client, GROUP_SPEC)
    assert first["changed"] is True and first["action"] == "created"
    assert first["token"] == fake.runners[first["id"]]["token"]
    record = fake.runners[first["id"]]
    assert (record["description"], record["tag_list"], record["run_untagged"], record["access_level"]) == \
        ("hgr-ci-01", ["docker", "hardened"], False, "ref_protected")

    fake.requests.clear()
    second = ensure_runner(client, GROUP_SPEC, current_token=first["token"])
    assert second == {"changed": False, "action": "kept", "id": first["id"], "token": first["token"],
                      "token_expires_at": None}
    assert not changing_requests(fake)
    assert ("POST", "/api/v4/runners/verify") in fake.requests
    assert len(fake.runners) == 1 and fake.runners[first["id"]]["token"] == first["token"]


@pytest.mark.parametrize("current", [None, "", "glrt-FAKE-not-a-valid-token-00"], ids=["none", "empty", "refused"])
def test_ensure_runner_resets_the_token_when_the_current_one_does_not_work(fake, client, current):
    existing = fake.add_runner("group_type", "hgr-ci-01", group_id=42)
    old_token = existing["token"]

    result = ensure_runner(client, GROUP_SPEC, current_token=current)

    assert result["changed"] is True and result["action"] == "token_reset" and result["id"] == existing["id"]
    assert result["token"] == fake.runners[existing["id"]]["token"] != old_token
    assert changing_requests(fake) == [("POST", "/api/v4/runners/%d/reset_authentication_token" % existing["id"])]
    assert client.verify_token(result["token"]) and not client.verify_token(old_token)


def test_ensure_runner_resets_when_the_token_belongs_to_another_runner(fake, client):
    mine = fake.add_runner("group_type", "hgr-ci-01", group_id=42)
    other = fake.add_runner("group_type", "someone-else", group_id=42)

    result = ensure_runner(client, GROUP_SPEC, current_token=other["token"])

    assert result["action"] == "token_reset" and result["id"] == mine["id"]
    assert fake.runners[other["id"]]["token"] == other["token"]  # the other runner is untouched


def test_check_mode_changes_nothing_and_predicts_each_action(fake, client):
    absent = ensure_runner(client, GROUP_SPEC, check_mode=True)
    assert absent == {"changed": True, "action": "created", "id": None, "token": None, "token_expires_at": None}
    assert not fake.runners

    existing = fake.add_runner("group_type", "hgr-ci-01", group_id=42)
    token = existing["token"]
    assert ensure_runner(client, GROUP_SPEC, check_mode=True)["action"] == "token_reset"
    assert ensure_runner(client, GROUP_SPEC, current_token="glrt-stale0000000000000", check_mode=True) == \
        {"changed": True, "action": "token_reset", "id": existing["id"], "token": None, "token_expires_at": None}
    kept = ensure_runner(client, GROUP_SPEC, current_token=token, check_mode=True)
    assert (kept["changed"], kept["action"], kept["token"]) == (False, "kept", None)
    assert remove_runner(client, GROUP_SPEC, check_mode=True) == \
        {"changed": True, "action": "deleted", "id": existing["id"]}

    assert not changing_requests(fake)
    assert not [path for method, path in fake.requests if method == "DELETE"]
    assert {path for method, path in fake.requests if method == "POST"} == {"/api/v4/runners/verify"}
    assert fake.runners[existing["id"]]["token"] == token


def test_remove_runner_deletes_then_reports_absent(fake, client):
    existing = fake.add_runner("group_type", "hgr-ci-01", group_id=42)
    fake.add_runner("group_type", "keep-me", group_id=42)

    assert remove_runner(client, GROUP_SPEC) == {"changed": True, "action": "deleted", "id": existing["id"]}
    assert ("DELETE", "/api/v4/runners/%d" % existing["id"]) in fake.requests
    assert existing["id"] not in fake.runners and len(fake.runners) == 1
    fake.requests.clear()
    assert remove_runner(client, GROUP_SPEC) == {"changed": False, "action": "absent", "id": None}
    assert not changing_requests(fake)


def test_runner_calls_by_id(fake, client):
    existing = fake.add_runner("project_type", "p", project_id=5, tag_list=["x"])

    details = client.get_runner(existing["id"])
    assert (details["id"], details["tag_list"], details["projects"][0]["id"]) == (existing["id"], ["x"], 5)
    reset = client.reset_token(existing["id"])
    assert reset == {"token": fake.runners[existing["id"]]["token"], "token_expires_at": None}
    assert client.verify_token(reset["token"]) is True
    assert client.verify_token("glrt-FAKE-unknown-token-0000000") is False
    client.delete_runner(existing["id"])
    assert not fake.runners
    with pytest.raises(GitLabAPIError) as caught:
        client.get_runner(existing["id"])
    assert caught.value.status == 404
    assert str(caught.value) == "GitLab API GET /runners/%d failed: HTTP 404 Not Found: 404 Runner Not Found" \
        % existing["id"]


def test_verify_sends_no_admin_token(fake, client, sent):
    existing = fake.add_runner("instance_type", "v")
    assert client.verify_token(existing["token"], system_id="s_0123456789ab")
    method, url, headers, body, _options = sent[-1]
    assert (method, url) == ("POST", fake.url + "/api/v4/runners/verify")
    assert "PRIVATE-TOKEN" not in headers
    assert body == {"token": existing["token"], "system_id": "s_0123456789ab"}


# --- errors -----------------------------------------------------------------------------

def test_a_wrong_admin_token_is_a_clear_401_without_the_token(fake):
    wrong = "wrong-Admin-Token-77"
    with pytest.raises(GitLabAPIError) as caught:
        GitLabClient(fake.url, wrong).list_runners("instance_type")
    exc = caught.value
    assert (exc.status, exc.method, exc.path) == (401, "GET", "/runners/all")
    assert str(exc) == "GitLab API GET /runners/all failed: HTTP 401 Unauthorized: 401 Unauthorized"
    assert_no_secret(exc, wrong, ADMIN_TOKEN)


def test_a_missing_group_id_is_gitlabs_400(fake, client):
    with pytest.raises(GitLabAPIError) as caught:
        client.create_runner("group_type", description="no-group")
    assert caught.value.status == 400
    assert str(caught.value) == "GitLab API POST /user/runners failed: HTTP 400 Bad Request: group_id is missing"
    assert not fake.runners


def test_a_server_error_is_surfaced_and_not_retried(fake, client):
    fake.fail_next(1, 500, "500 Internal Server Error")
    with pytest.raises(GitLabAPIError) as caught:
        ensure_runner(client, GROUP_SPEC)
    assert caught.value.status == 500
    assert "GET /groups/42/runners failed: HTTP 500 Internal Server Error: 500 Internal Server Error" \
        in str(caught.value)
    assert len(fake.requests) == 1 and not fake.runners


def test_a_refused_verify_is_false_but_a_failing_one_raises(fake, client):
    fake.fail_next(1, 502, "bad gateway")
    with pytest.raises(GitLabAPIError) as caught:
        client.verify_token("glrt-whatever0000000000000")
    assert caught.value.status == 502


def test_403_insufficient_scope_reads_error_and_description(fake, client):
    # GitLab's answer to a token without the api or create_runner scope.
    fake.fail_next(1, 403, document={"error": "insufficient_scope", "scope": "api create_runner",
                                     "error_description": "The request requires higher privileges."})
    with pytest.raises(GitLabAPIError) as caught:
        client.create_runner("instance_type")
    assert str(caught.value) == ("GitLab API POST /user/runners failed: HTTP 403 Forbidden: "
                                 "insufficient_scope: The request requires higher privileges.")


@pytest.mark.parametrize("body, detail", [
    (b'{"message": {"name": ["has already been taken"]}}', '{"name": ["has already been taken"]}'),
    (b'{"error": "group_id is missing"}', "group_id is missing"),
    (b"<html>\n  <body>" + b"x" * 500, "<html> <body>" + "x" * 187),
    (b"", ""),
])
def test_error_details_from_every_body_shape(fake, client, body, detail):
    assert gitlab_api._error_detail(body) == detail
    fake.fail_next(1, 418, document=json.loads(body) if body.startswith(b"{") else None)
    if not body.startswith(b"{"):
        return
    with pytest.raises(GitLabAPIError) as caught:
        client.get_runner(1)
    assert str(caught.value) == "GitLab API GET /runners/1 failed: HTTP 418 I'm a Teapot: " + detail


def test_error_messages_never_carry_a_secret_the_server_echoes(fake, client):
    created = client.create_runner("instance_type", description="echo")
    handled = client.reset_token(created["id"])["token"]
    fake.fail_next(1, 422, "token %s and %s and key %s rejected" % (ADMIN_TOKEN, handled, "glpat-abcDEF123_-xyz"))
    with pytest.raises(GitLabAPIError) as caught:
        client.get_runner(created["id"])
    assert_no_secret(caught.value, ADMIN_TOKEN, created["token"], handled, "glpat-abcDEF123_-xyz")
    assert str(caught.value).count(MASK) == 3


def test_connection_refused_names_the_url_but_no_token():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    client = GitLabClient("http://127.0.0.1:%d/" % port, ADMIN_TOKEN, timeout=5)

    with pytest.raises(GitLabAPIError) as caught:
        client.verify_token("glrt-someRunnerToken1234")
    exc = caught.value
    assert exc.status is None and (exc.method, exc.path) == ("POST", "/runners/verify")
    assert "no HTTP answer from http://127.0.0.1:%d/api/v4/runners/verify" % port in str(exc)
    assert "refused" in str(exc).lower()
    assert_no_secret(exc, ADMIN_TOKEN, "glrt-someRunnerToken1234")


def test_a_tls_failure_is_a_clear_error_without_a_token(fake):
    # TLS spoken to a plain HTTP server: the handshake fails.
    client = GitLabClient(fake.url.replace("http://", "https://"), ADMIN_TOKEN, timeout=5)
    with pytest.raises(GitLabAPIError) as caught:
        client.list_runners("instance_type")
    exc = caught.value
    assert exc.status is None
    assert str(exc).startswith("GitLab API GET /runners/all failed: no HTTP answer from %s/api/v4/runners/all?"
                               % fake.url.replace("http://", "https://"))
    assert "SSL" in str(exc)
    assert_no_secret(exc, ADMIN_TOKEN)


class _Redirector(http.server.BaseHTTPRequestHandler):
    """Answers everything with a 301 to another host, and remembers the headers it was sent."""

    seen = []

    def do_GET(self):
        self.seen.append(dict(self.headers))
        self.send_response(301)
        self.send_header("Location", "http://127.0.0.2:9/api/v4/runners/all")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass


def test_a_redirect_is_reported_not_followed():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Redirector)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        client = GitLabClient("http://127.0.0.1:%d" % server.server_address[1], ADMIN_TOKEN, timeout=5)
        with pytest.raises(GitLabAPIError) as caught:
            client.list_runners("instance_type")
    finally:
        server.shutdown()
        server.server_close()
    assert caught.value.status == 301 and len(_Redirector.seen) == 1
    assert str(caught.value).startswith("GitLab API GET /runners/all failed: HTTP 301 Moved Permanently (redirected to "
                                        "http://127.0.0.2:9/api/v4/runners/all; redirects are not followed")
    assert_no_secret(caught.value, ADMIN_TOKEN)


@pytest.mark.parametrize("url", ["gitlab.example.com", "ftp://gitlab.example.com", "https://", "https://h/?q=1"])
def test_a_url_that_is_not_a_gitlab_base_url_is_refused(url):
    with pytest.raises(ValueError, match="GitLab URL"):
        GitLabClient(url, ADMIN_TOKEN)
    with pytest.raises(ValueError, match="token is required"):
        GitLabClient("https://gitlab.example.com", " ")


# --- scrubbing --------------------------------------------------------------------------

def test_scrub_masks_known_secrets_and_token_shapes():
    text = ("pat glpat-AbC_12-x runner glrt-t1_Zz9-8.01.1a2b3c4 registration glrtr-QQQ legacy GR1348941abcDEF "
            "known hunter2hunter2 and hunter2 plain words glrt and gl-pat- stay")
    assert scrub(text, ["hunter2", "hunter2hunter2", ""]) == (
        "pat ******** runner ******** registration ******** legacy ******** "
        "known ******** and ******** plain words glrt and gl-pat- stay")
    assert scrub(12345, ["234"]) == "1" + MASK + "5"


def test_the_client_scrubs_every_secret_it_handled(fake, client):
    created = client.create_runner("instance_type", description="s")
    message = "admin %s runner %s" % (ADMIN_TOKEN, created["token"].replace("glrt-", ""))
    assert client.scrub(message) == "admin %s runner %s" % (MASK, MASK)
    assert ADMIN_TOKEN not in repr(client)


def test_a_password_in_the_url_is_a_secret_too():
    client = GitLabClient("https://robot:Url-Password-9@gitlab.example.com", ADMIN_TOKEN)
    assert "Url-Password-9" not in repr(client)
    with pytest.raises(ValueError) as caught:
        GitLabClient("ftp://robot:Url-Password-9@gitlab.example.com", ADMIN_TOKEN)
    assert "Url-Password-9" not in str(caught.value) and MASK in str(caught.value)


def test_the_error_class_scrubs_token_shapes_itself():
    exc = GitLabAPIError("failed with glrt-abcdefghijklmnopqrst", status=500, method="GET", path="/x")
    assert "glrt-abc" not in str(exc) and "glrt-abc" not in repr(exc) and MASK in exc.message


# --- the fake as a script -----------------------------------------------------------------

def test_the_fake_runs_as_a_script_with_a_state_file(tmp_path):
    state_file = tmp_path / "state.json"
    command = [sys.executable, FAKE_PATH, "--listen", "127.0.0.1", "--port", "0", "--admin-token", ADMIN_TOKEN,
               "--state-file", str(state_file)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            line = process.stdout.readline()
            assert line.startswith("fake GitLab API listening on 127.0.0.1:")
            url = "http://127.0.0.1:%s" % line.rsplit(":", 1)[1].strip()
            created = GitLabClient(url, ADMIN_TOKEN).create_runner("instance_type", description="from-script")
            saved = json.loads(state_file.read_text(encoding="utf-8"))
            with urllib.request.urlopen(url + "/__fake/state", timeout=5) as response:
                served = json.loads(response.read())
            assert saved == served
            assert [(r["id"], r["description"], r["token"]) for r in saved["runners"]] == \
                [(created["id"], "from-script", created["token"])]
        finally:
            process.terminate()
            process.wait(10)
