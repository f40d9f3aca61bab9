"""A small GitLab REST API (v4) client for the lifecycle of one runner: find, create, verify, reset, delete.

Hand-written on purpose. The collection needs only ansible-core at run time and must not
depend on python-gitlab (or requests), and it uses just eight endpoints, all plain JSON
over HTTPS. ``ansible.module_utils.urls.open_url`` works the same on the controller (in
an action plugin) and on a managed host (in a module), so that is the whole transport.

Endpoints, with the request and response shapes of GitLab's REST API documentation:

- ``POST /user/runners``: Users API, "Create a runner linked to a user" (201
  ``{"id", "token", "token_expires_at"}``);
- ``GET /runners/all``, ``GET /groups/:id/runners``, ``GET /projects/:id/runners``:
  Runners API, "List all runners", "List group's runners", "List project's runners"
  (offset pagination, ``X-Next-Page``);
- ``GET /runners/:id``, ``DELETE /runners/:id`` (204): "Get runner's details",
  "Delete a runner";
- ``POST /runners/verify`` (200, 403 for an unknown token; authenticated by the runner
  token in the body, not by ``PRIVATE-TOKEN``): "Verify authentication for a
  registered runner";
- ``POST /runners/:id/reset_authentication_token``: "Reset runner's authentication
  token by using the runner ID".

Secrets: the client remembers every secret it handles (the API token, every runner
token it sent or received) and ``scrub()`` replaces them, and anything shaped like a
GitLab token (``glpat-``, ``glrt-``, ``glrtr-`` ...), with ``********`` in every message
it builds. ``GitLabAPIError`` scrubs token-shaped text once more on its own.

``ensure_runner()`` and ``remove_runner()`` are the idempotent logic the collection's
action plugin drives; they take a client and a plain dict, so they test without Ansible.
"""

from __future__ import annotations

import http.client
import json
import re
from http import HTTPStatus
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode, urlsplit

from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import open_url

RUNNER_TYPES = ("instance_type", "group_type", "project_type")
ACCESS_LEVELS = ("not_protected", "ref_protected")
# Optional fields of POST /user/runners, sent only when not None.
CREATE_FIELDS = ("description", "paused", "locked", "run_untagged", "tag_list", "access_level",
                 "maximum_timeout", "maintenance_note")
MASK = "********"
PER_PAGE = 100  # GitLab's maximum
MAX_PAGES = 1000  # 100,000 runners: past this a server is looping on X-Next-Page
DETAIL_LIMIT = 200
USER_AGENT = "hardened.gitlab_runner (ansible.module_utils.urls)"

# GitLab's token prefixes (personal, runner authentication, runner registration, deploy,
# pipeline trigger, CI build, OAuth, service account, feed, incoming mail, agent) and the
# legacy runner registration token prefix. Routable tokens carry "." as well.
TOKEN_PATTERN = re.compile(
    r"(?:glpat|glrtr|glrt|gldt|glptt|glcbt|gloas|glsoat|glft|glimt|glagent)-[A-Za-z0-9_.\-]+"
    r"|GR1348941[A-Za-z0-9_\-]+"
)

TOKEN_PREFIX = re.compile(r"gl[a-z]{2,6}-")


def scrub(text, secrets=()):
    """``text`` as a string with each of ``secrets`` and every token-shaped word replaced by ``********``.

    Longer secrets are replaced first, so a secret that contains another one leaves no part
    of itself behind.
    """
    text = text if isinstance(text, str) else str(text)
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return TOKEN_PATTERN.sub(MASK, text)


class GitLabAPIError(Exception):
    """A GitLab API call failed, or GitLab's answer could not be used.

    ``status`` is the HTTP status, or None when there was no HTTP answer (connection
    refused, timeout, TLS failure) or when the answer was fine but unusable (an ambiguous
    description, a malformed body). ``method`` and ``path`` name the call (the path below
    ``/api/v4``, without the query string).
    """

    def __init__(self, message, status=None, method=None, path=None):
        message = scrub(message)
        super().__init__(message)
        self.message = message
        self.status = status
        self.method = method
        self.path = path


def _phrase(status):
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _error_detail(raw):
    """GitLab's explanation from an error body: ``message``, else ``error`` (+ ``error_description``), else the text."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict):
        message = document.get("message")
        if message not in (None, "", [], {}):
            # Validation errors come as {"message": {"field": ["problem"]}}.
            return message if isinstance(message, str) else json.dumps(message, sort_keys=True)
        error = document.get("error")
        if error:
            description = document.get("error_description")
            return "%s: %s" % (error, description) if description else str(error)
    return " ".join(text.split())[:DETAIL_LIMIT]


def _positive_int(value, name):
    """``value`` as a positive int (an int or a string of digits); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("%s must be a positive integer, got %r" % (name, value))
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise ValueError("%s must be a positive integer, got %r" % (name, value))
        value = int(value.strip())
    if value <= 0:
        raise ValueError("%s must be a positive integer, got %r" % (name, value))
    return value


def _check_runner_type(runner_type):
    if runner_type not in RUNNER_TYPES:
        raise ValueError("runner_type must be one of %s, got %r" % (", ".join(RUNNER_TYPES), runner_type))


class GitLabClient:
    """A GitLab instance's REST API, as one user (``PRIVATE-TOKEN``) sees it.

    ``url`` is the instance's base URL (``https://gitlab.example.com``, or with a path
    prefix when GitLab is served below one); the API root is ``<url>/api/v4``. Redirects
    are not followed (the token header must not go to another host), proxies from the
    environment are used, ``.netrc`` is not.
    """

    def __init__(self, url, token, validate_certs=True, ca_path=None, timeout=30):
        self._secrets = set()
        if not isinstance(token, str) or not token.strip():
            raise ValueError("a GitLab API token is required")
        self.add_secret(token)
        self._token = token
        if not isinstance(url, str):
            raise ValueError("the GitLab URL must be a string")
        parts = urlsplit(url.strip())
        if parts.password:
            self.add_secret(parts.password)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(self.scrub("the GitLab URL must look like https://gitlab.example.com, got %r" % url))
        if parts.query or parts.fragment:
            raise ValueError(self.scrub("the GitLab URL must have no query or fragment, got %r" % url))
        self.url = url.strip().rstrip("/")
        self.api_root = self.url + "/api/v4"
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.timeout = timeout

    def __repr__(self):
        return "GitLabClient(%r)" % self.scrub(self.url)

    # --- secrets -------------------------------------------------------------------

    def add_secret(self, value):
        """Remember ``value`` as a secret to scrub from everything this client says.

        A GitLab token's random part counts as a secret of its own, in case it shows without its prefix.
        """
        if isinstance(value, str) and value:
            self._secrets.add(value)
            prefix = TOKEN_PREFIX.match(value)
            if prefix and len(value) - prefix.end() >= 8:
                self._secrets.add(value[prefix.end():])

    def scrub(self, text):
        """``text`` with every secret this client knows, and every token-shaped word, masked."""
        return scrub(text, self._secrets)

    # --- transport -----------------------------------------------------------------

    def _error(self, message, status, method, path):
        return GitLabAPIError(self.scrub(message), status=status, method=method, path=path)

    def _request(self, method, path, query=None, body=None, auth=True):
        """(status, headers, decoded JSON or None) of one call; GitLabAPIError for anything but 2xx."""
        url = self.api_root + path
        if query:
            url += "?" + urlencode(query)
        headers = {"Accept": "application/json"}
        if auth:
            headers["PRIVATE-TOKEN"] = self._token
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            response = open_url(url, data=data, headers=headers, method=method, timeout=self.timeout,
                                validate_certs=self.validate_certs, ca_path=self.ca_path,
                                follow_redirects="none", use_netrc=False, http_agent=USER_AGENT)
            try:
                status = response.getcode()
                response_headers = response.headers
                raw = response.read()
            finally:
                response.close()
        except HTTPError as exc:
            raise self._http_error(exc, method, path) from None
        except (URLError, UrlsConnectionError, http.client.HTTPException, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise self._error("GitLab API %s %s failed: no HTTP answer from %s: %s" % (method, path, url, reason),
                              None, method, path) from None
        if not raw or not raw.strip():
            return status, response_headers, None
        try:
            return status, response_headers, json.loads(raw.decode("utf-8"))
        except ValueError:
            raise self._error("GitLab API %s %s failed: HTTP %d but the body is not JSON: %s"
                              % (method, path, status, _error_detail(raw)), status, method, path) from None

    def _http_error(self, exc, method, path):
        try:
            raw = exc.read()
        except (OSError, http.client.HTTPException, AttributeError):
            raw = b""
        status = exc.code
        phrase = _phrase(status)
        reason = str(exc.reason or "")
        detail = _error_detail(raw or b"") or (reason if reason != phrase else "")
        message = ("GitLab API %s %s failed: HTTP %d %s" % (method, path, status, phrase)).rstrip()
        if detail:
            message += ": " + detail
        if 300 <= status < 400:
            location = exc.headers.get("Location") if exc.headers is not None else None
            message += " (redirected%s; redirects are not followed: check the GitLab URL, e.g. https and any path prefix)" \
                % (" to " + location if location else "")
        return self._error(message, status, method, path)

    def _expect(self, condition, what, status, method, path):
        if not condition:
            raise self._error("GitLab API %s %s failed: HTTP %d but %s" % (method, path, status, what),
                              status, method, path)

    # --- runners -------------------------------------------------------------------

    @staticmethod
    def _list_endpoint(runner_type, group_id=None, project_id=None):
        _check_runner_type(runner_type)
        if runner_type == "instance_type":
            return "/runners/all"
        if runner_type == "group_type":
            return "/groups/%d/runners" % _positive_int(group_id, "group_id")
        if isinstance(project_id, str) and not project_id.strip().isdigit() and project_id.strip():
            return "/projects/%s/runners" % quote(project_id.strip(), safe="")  # a path such as group/project
        return "/projects/%d/runners" % _positive_int(project_id, "project_id")

    def list_runners(self, runner_type, group_id=None, project_id=None):
        """Every runner of ``runner_type`` that the instance, group or project lists, all pages.

        ``instance_type`` needs an administrator's token (``GET /runners/all``). A group's
        list also holds its ancestor groups' runners, a project's the project runners
        assigned to it: see ``find_runner`` for how those are told apart.
        """
        path = self._list_endpoint(runner_type, group_id, project_id)
        runners = []
        page = 1
        for _count in range(MAX_PAGES):
            status, headers, document = self._request(
                "GET", path, query={"type": runner_type, "per_page": PER_PAGE, "page": page})
            self._expect(isinstance(document, list), "the body is not a JSON list", status, "GET", path)
            runners.extend(document)
            next_page = (headers.get("X-Next-Page") or "").strip()
            if not next_page:
                return runners
            self._expect(next_page.isdigit() and int(next_page) > page,
                         "X-Next-Page %r does not follow page %d" % (next_page, page), status, "GET", path)
            page = int(next_page)
        raise self._error("GitLab API GET %s failed: more than %d pages of runners" % (path, MAX_PAGES),
                          None, "GET", path)

    def find_runner(self, runner_type, description, group_id=None, project_id=None):
        """The one runner of ``runner_type`` whose description is exactly ``description``, or None.

        For ``group_type`` a runner only counts when its details (``GET /runners/:id``) name
        the group itself, not an ancestor group whose runners the group's list also shows.
        More than one match is an error naming the ids: the collection identifies a runner
        by its description and must not guess.
        """
        path = self._list_endpoint(runner_type, group_id, project_id)
        matches = [runner for runner in self.list_runners(runner_type, group_id, project_id)
                   if isinstance(runner, dict) and runner.get("description") == description
                   and runner.get("runner_type", runner_type) == runner_type]
        if runner_type == "group_type":
            wanted = _positive_int(group_id, "group_id")
            matches = [runner for runner in matches
                       if wanted in [group.get("id") for group in self.get_runner(runner["id"]).get("groups") or []
                                     if isinstance(group, dict)]]
        if not matches:
            return None
        if len(matches) > 1:
            raise self._error(
                "GitLab API GET %s: %d %s runners have the description %r (ids %s); the collection identifies a "
                "runner by its description, so delete or rename all but one"
                % (path, len(matches), runner_type, description, ", ".join(str(r.get("id")) for r in matches)),
                None, "GET", path)
        return matches[0]

    def create_runner(self, runner_type, group_id=None, project_id=None, description=None, tag_list=None,
                      run_untagged=None, locked=None, access_level=None, paused=None, maintenance_note=None,
                      maximum_timeout=None):
        """Create a runner (``POST /user/runners``): ``{"id", "token", "token_expires_at"}``.

        Fields left None are not sent, so GitLab's defaults apply. ``tag_list`` is a list
        of strings (a comma-separated string is split); the body is JSON.
        """
        _check_runner_type(runner_type)
        body = {"runner_type": runner_type}
        # A missing group_id or project_id is GitLab's to refuse (HTTP 400 "group_id is missing").
        if runner_type == "group_type" and group_id is not None:
            body["group_id"] = _positive_int(group_id, "group_id")
        elif runner_type == "project_type" and project_id is not None:
            body["project_id"] = _positive_int(project_id, "project_id")
        if isinstance(tag_list, str):
            tag_list = [tag.strip() for tag in tag_list.split(",") if tag.strip()]
        if access_level is not None and access_level not in ACCESS_LEVELS:
            raise ValueError("access_level must be one of %s, got %r" % (", ".join(ACCESS_LEVELS), access_level))
        values = {"description": description, "paused": paused, "locked": locked, "run_untagged": run_untagged,
                  "tag_list": list(tag_list) if tag_list is not None else None, "access_level": access_level,
                  "maximum_timeout": maximum_timeout, "maintenance_note": maintenance_note}
        body.update((key, values[key]) for key in CREATE_FIELDS if values[key] is not None)
        status, _headers, document = self._request("POST", "/user/runners", body=body)
        if isinstance(document, dict):
            self.add_secret(document.get("token"))
        self._expect(isinstance(document, dict) and isinstance(document.get("id"), int)
                     and isinstance(document.get("token"), str) and document.get("token"),
                     "the body has no runner id and token", status, "POST", "/user/runners")
        return {"id": document["id"], "token": document["token"],
                "token_expires_at": document.get("token_expires_at")}

    def get_runner(self, runner_id):
        """A runner's details (``GET /runners/:id``)."""
        path = "/runners/%d" % _positive_int(runner_id, "runner_id")
        status, _headers, document = self._request("GET", path)
        self._expect(isinstance(document, dict), "the body is not a JSON object", status, "GET", path)
        return document

    def delete_runner(self, runner_id):
        """Delete a runner (``DELETE /runners/:id``, 204)."""
        self._request("DELETE", "/runners/%d" % _positive_int(runner_id, "runner_id"))

    def verify_token_details(self, token, system_id=None):
        """``POST /runners/verify``: GitLab's answer (``{"id", "token", "token_expires_at"}``) for a valid token, None on 403.

        Authenticated by the runner token alone: no ``PRIVATE-TOKEN`` is sent. Without a
        ``system_id`` GitLab records no runner manager for the call.
        """
        if not isinstance(token, str) or not token:
            raise ValueError("a runner token to verify is required")
        self.add_secret(token)
        body = {"token": token}
        if system_id is not None:
            body["system_id"] = system_id
        try:
            _status, _headers, document = self._request("POST", "/runners/verify", body=body, auth=False)
        except GitLabAPIError as exc:
            if exc.status == 403:
                return None
            raise
        if isinstance(document, dict):
            self.add_secret(document.get("token"))
            return document
        return {}

    def verify_token(self, token, system_id=None):
        """True when GitLab accepts the runner token (HTTP 200), False when it refuses it (403)."""
        return self.verify_token_details(token, system_id) is not None

    def reset_token(self, runner_id):
        """Give a runner a new authentication token: ``{"token", "token_expires_at"}``; the old one stops working."""
        path = "/runners/%d/reset_authentication_token" % _positive_int(runner_id, "runner_id")
        status, _headers, document = self._request("POST", path)
        if isinstance(document, dict):
            self.add_secret(document.get("token"))
        self._expect(isinstance(document, dict) and isinstance(document.get("token"), str) and document.get("token"),
                     "the body has no token", status, "POST", path)
        return {"token": document["token"], "token_expires_at": document.get("token_expires_at")}


# --- idempotent runner lifecycle, for the action plugin ---------------------------------

def _spec_target(spec):
    """(runner_type, description, group_id, project_id) of a spec dict, checked."""
    runner_type = spec.get("runner_type")
    _check_runner_type(runner_type)
    description = spec.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ValueError("the runner needs a non-empty description: it is how the collection finds it in GitLab")
    return runner_type, description, spec.get("group_id"), spec.get("project_id")


def ensure_runner(client, spec, current_token=None, check_mode=False):
    """Make sure the runner described by ``spec`` exists and that the caller holds a working token for it.

    ``spec``: ``runner_type``, ``description`` (the runner's identity), ``group_id`` or
    ``project_id`` as the type needs, and optionally the ``create_runner`` fields (used only
    when the runner is created; an existing runner's settings are left alone).

    Returns ``{"changed", "action", "id", "token", "token_expires_at"}``, ``action`` being

    - ``created``: no runner had that description; one was created;
    - ``kept``: the runner exists and ``current_token`` is valid and is that runner's token
      (``POST /runners/verify`` names the runner's id); ``token`` is ``current_token``;
    - ``token_reset``: the runner exists but ``current_token`` is missing, refused, or
      another runner's; the runner's token was reset, so the old one no longer works.

    ``check_mode``: nothing is created or reset and ``token`` is None. The runner list is
    still read and a given ``current_token`` still verified (``POST /runners/verify``
    changes nothing), so the predicted action is the one a real run would take.
    """
    runner_type, description, group_id, project_id = _spec_target(spec)
    runner = client.find_runner(runner_type, description, group_id=group_id, project_id=project_id)
    if runner is None:
        if check_mode:
            return {"changed": True, "action": "created", "id": None, "token": None, "token_expires_at": None}
        fields = {key: spec.get(key) for key in CREATE_FIELDS}
        created = client.create_runner(runner_type, group_id=group_id, project_id=project_id, **fields)
        return {"changed": True, "action": "created", "id": created["id"], "token": created["token"],
                "token_expires_at": created["token_expires_at"]}
    runner_id = runner["id"]
    if current_token:
        verified = client.verify_token_details(current_token)
        if verified is not None and verified.get("id") == runner_id:
            return {"changed": False, "action": "kept", "id": runner_id,
                    "token": None if check_mode else current_token,
                    "token_expires_at": verified.get("token_expires_at")}
    if check_mode:
        return {"changed": True, "action": "token_reset", "id": runner_id, "token": None, "token_expires_at": None}
    reset = client.reset_token(runner_id)
    return {"changed": True, "action": "token_reset", "id": runner_id, "token": reset["token"],
            "token_expires_at": reset["token_expires_at"]}


def remove_runner(client, spec, check_mode=False):
    """Delete the runner described by ``spec`` (``runner_type``, ``description``, ``group_id``/``project_id``).

    Returns ``{"changed", "action", "id"}``: ``deleted`` with the id it had, or ``absent``
    with id None when no runner has that description. ``check_mode`` deletes nothing.
    """
    runner_type, description, group_id, project_id = _spec_target(spec)
    runner = client.find_runner(runner_type, description, group_id=group_id, project_id=project_id)
    if runner is None:
        return {"changed": False, "action": "absent", "id": None}
    if not check_mode:
        client.delete_runner(runner["id"])
    return {"changed": True, "action": "deleted", "id": runner["id"]}
