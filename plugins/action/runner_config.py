"""Action plugin: build, gate, validate and atomically write GitLab Runner's config.toml.

One task does what the role did in six (stat, slurp, a set_fact over the gate
filter, an assert, a template and a copy): it reads the current config.toml
from the host, builds the wanted document on the controller (the runners'
input, the role's secure defaults, and the runner-managed id/token_* fields of
the current file), runs the policy gate, and only when ``gate_only`` is false
and the gate passes, writes the file (0600 root:root, atomically, only when its
content changed) with the acknowledgements file next to it, and the host keys
each ssh, virtualbox or parallels runner pins (``ssh_known_hosts``) to a
known_hosts file of its own in ``known_hosts.d`` beside config.toml (0644
root:root in a 0700 root directory; written before config.toml names them,
files of runners that are gone removed after it). Unknown keys are
judged by the key list of ``runner_version`` (the pinned version), else of
the version of the gitlab-runner package installed on the host (one
``dpkg-query`` over the connection, no module), else by the newest list; the
result's ``key_list`` and first notice say which.

Written by hand rather than with the template and copy actions because the
content holds runner tokens: here it never becomes a task argument, a
registered variable, a diff or a log line. The result carries the gate's
verdict (which holds no token), never the content. Every failure message is
built from the gate's token-free texts or from fixed strings.
"""

import base64
import hashlib
import json
import posixpath
import re
from collections.abc import Mapping

try:
    import tomllib
except ImportError:  # pragma: no cover - ansible-core 2.19 needs Python 3.11+ on the controller
    tomllib = None

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes
from ansible.plugins.action import ActionBase

from ansible_collections.hardened.gitlab_runner.plugins.filter.runner_config import from_toml
from ansible_collections.hardened.gitlab_runner.plugins.filter.toml import toml_key, toml_value
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.gitlab_api import (
    RUNNER_TYPES,
    GitLabAPIError,
    GitLabClient,
    ensure_runner,
    remove_runner,
)
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config import (
    ConfigError,
    build_document,
    gate,
    known_hosts_files,
    to_toml_document,
)

ARGUMENT_SPEC = {
    "runners": {"type": "list", "elements": "raw", "required": True},
    "settings": {"type": "dict", "default": {}},
    "defaults": {"type": "dict", "default": {}},
    "path": {"type": "str", "required": True},
    "acknowledgements_path": {"type": "str"},
    "gate_only": {"type": "bool", "default": False},
    "runner_version": {"type": "str", "default": ""},
    # The GitLab REST API, for runners with ``create`` (see created_runners()).
    "api": {"type": "dict", "default": {}},
    # Tokens in a root-only environment file instead of config.toml (see token_env_problems()).
    "token_env": {"type": "bool", "default": False},
    "token_env_file": {"type": "str", "default": ""},
}

# GitLab Runner expands environment variables in `token` (and `url`) from 18.10.0 on
# (RunnerConfig.loadConfig, commit bd529b275 "Support environment variable expansion
# in runner token and URL"); older releases would send "${...}" to GitLab as the token.
TOKEN_ENV_SINCE = (18, 10)
# These executors give a job the runner process's own environment (os.Environ() in
# executors/shell/shell.go and executors/custom/command/command.go): with the tokens
# in the service's environment, every such job could read every runner's token.
TOKEN_ENV_UNSAFE_EXECUTORS = ("shell", "custom")
TOKEN_ENV_PREFIX = "HGR_RUNNER_TOKEN_"
TOKEN_ENV_HEADER = (
    "# Managed by hardened.gitlab_runner (role gitlab_runner): the runner tokens config.toml\n"
    "# names as ${HGR_RUNNER_TOKEN_...}; read by the service (EnvironmentFile=). Root only.\n"
)

# Stands for a token the API has not given yet: the gate judges a runner without it
# (no policy depends on the token's value), and it is never written.
PENDING_TOKEN = "glrt-FAKE-placeholder-pending-creation-through-the-gitlab-api"
CREATE_KEYS = ("runner_type", "group_id", "project_id", "description", "tag_list", "run_untagged", "locked",
               "access_level", "paused", "maintenance_note", "maximum_timeout")

# The installed package's state and version; no output (rc 1) when it is not known to dpkg.
INSTALLED_VERSION = "dpkg-query -W -f='${db:Status-Abbrev}|${Version}' gitlab-runner 2>/dev/null"

HEADER = (
    "# Managed by hardened.gitlab_runner (role gitlab_runner): changes made here are\n"
    "# replaced on its next run. Every key and value goes through the collection's TOML\n"
    "# filters. GitLab Runner's own id/token_* fields are kept.\n"
)

NOTHING_CHANGED = "gitlab_runner: config.toml not written, nothing changed."


def render(document):
    """The config.toml text of ``document`` (with the header), checked to parse as TOML."""
    text = HEADER + to_toml_document(document, toml_value, toml_key)
    if not text.endswith("\n"):
        text += "\n"
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - the serializer quotes everything
        # The message of tomllib names a line and column only, never the text.
        raise AnsibleActionFail("%s The rendered document does not parse as TOML (%s)." % (NOTHING_CHANGED, exc))
    return text


def acknowledgements_text(verdict):
    return json.dumps({"acknowledged": verdict["acknowledged"]}, indent=4, sort_keys=True) + "\n"


def known_hosts_dir(path):
    """The directory of the managed known_hosts files: known_hosts.d beside config.toml."""
    return posixpath.normpath(posixpath.join(posixpath.dirname(path) or ".", "known_hosts.d"))


def names_known_hosts_dir(document, directory):
    """Whether a runner of a parsed config.toml reads a known_hosts file in ``directory``."""
    prefix = directory.rstrip("/") + "/"
    for runner in document.get("runners") or []:
        sections = runner.items() if isinstance(runner, Mapping) else ()
        for section, table in sections:
            if str(section).casefold() != "ssh" or not isinstance(table, Mapping):
                continue
            for key, value in table.items():
                if str(key).casefold() == "known_hosts_file" and str(value).startswith(prefix):
                    return True
    return False


def token_env_problems(runners, version):
    """Why the tokens cannot move to the environment file here ([] when they can)."""
    problems = []
    match = re.match(r"^\s*v?(\d+)\.(\d+)", version or "")
    if not match:
        problems.append("gitlab_runner_token_env_file needs a GitLab Runner version that expands environment "
                        "variables in token (18.10.0 or later): pin gitlab_runner_version, none is known")
    elif (int(match.group(1)), int(match.group(2))) < TOKEN_ENV_SINCE:
        problems.append("gitlab_runner_token_env_file needs GitLab Runner 18.10.0 or later, which expands "
                        "environment variables in token; %s would send the variable's name to GitLab as its token"
                        % version)
    for runner in runners or []:
        if (isinstance(runner, Mapping) and runner.get("state", "present") != "absent"
                and runner.get("executor") in TOKEN_ENV_UNSAFE_EXECUTORS):
            problems.append('runner "%s": gitlab_runner_token_env_file cannot be used with a %s runner in the same '
                            "service: GitLab Runner gives %s jobs its own environment, so every job would read every "
                            "runner's token; give the %s runner a service of its own (a trust group)"
                            % (runner.get("name"), runner["executor"], runner["executor"], runner["executor"]))
    return problems


def token_variable(token):
    """The environment variable that holds ``token``: named by a hash of the token, so two hosts share a
    name only when they share the token (the audit's cloned-token check still sees that)."""
    return TOKEN_ENV_PREFIX + hashlib.sha256(to_bytes(token)).hexdigest()[:16].upper()


def parse_token_env(text):
    """{variable: token} of a token environment file's text (lines VAR=value; comments ignored)."""
    values = {}
    for line in (text or "").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            name, value = line.split("=", 1)
            values[name.strip()] = value.strip()
    return values


def move_tokens_to_env(document):
    """Replace each runner's token in ``document`` by ${VAR}; return the environment file's text."""
    lines = {}
    for table in document.get("runners") or []:
        token = table.get("token")
        if isinstance(token, str) and token:
            variable = token_variable(token)
            lines[variable] = token
            table["token"] = "${%s}" % variable
    return TOKEN_ENV_HEADER + "".join("%s=%s\n" % (name, lines[name]) for name in sorted(lines))


def tokens_from_env(existing, values):
    """``existing`` (a parsed config.toml) with each ${HGR_RUNNER_TOKEN_...} token replaced by its value."""
    for table in existing.get("runners") or [] if isinstance(existing, Mapping) else []:
        token = table.get("token") if isinstance(table, Mapping) else None
        match = re.match(r"^\$\{(%s[0-9A-F]+)\}$" % TOKEN_ENV_PREFIX, token or "") if isinstance(token, str) else None
        if match and match.group(1) in values:
            table["token"] = values[match.group(1)]
    return existing


def created_runners(runners, api):
    """The runners GitLab creates for the role (those with ``create``): {name: API spec}.

    A runner with ``create`` gets its token from GitLab's REST API (``POST
    /user/runners``), never from the inventory; ``state: absent`` deletes it there
    too. Checked before anything happens, with messages that name the input.
    """
    specs = {}
    for runner in runners or []:
        if not isinstance(runner, Mapping) or runner.get("create") in (None, {}):
            continue
        name = runner.get("name")
        create = runner["create"]
        if not isinstance(create, Mapping):
            raise ConfigError('runner "%s": create must be a mapping (runner_type, group_id/project_id, ...)' % name)
        unknown = sorted(str(key) for key in create if key not in CREATE_KEYS)
        if unknown:
            raise ConfigError('runner "%s": create has unknown keys %s (known: %s)'
                              % (name, ", ".join(unknown), ", ".join(CREATE_KEYS)))
        if runner.get("token"):
            raise ConfigError('runner "%s": give either token or create, not both: with create, GitLab gives the '
                              'token' % name)
        if create.get("runner_type") not in RUNNER_TYPES:
            raise ConfigError('runner "%s": create.runner_type must be one of %s' % (name, ", ".join(RUNNER_TYPES)))
        for runner_type, key in (("group_type", "group_id"), ("project_type", "project_id")):
            if create["runner_type"] == runner_type and not create.get(key):
                raise ConfigError('runner "%s": create.%s is required for a %s runner' % (name, key, runner_type))
        if not (api.get("token") or "").strip():
            raise ConfigError('runner "%s": create needs gitlab_runner_api_token (a GitLab token with the '
                              'create_runner scope)' % name)
        url = (api.get("url") or runner.get("url") or "").strip()
        if not url:
            raise ConfigError('runner "%s": create needs gitlab_runner_api_url or the runner\'s url' % name)
        spec = dict((key, create[key]) for key in CREATE_KEYS if create.get(key) is not None)
        spec.setdefault("description", name)
        specs[name] = (url, spec, runner.get("state", "present") == "absent")
    return specs


class ActionModule(ActionBase):
    """See the module documentation in plugins/modules/runner_config.py."""

    _api = None  # this run's "api" argument

    TRANSFERS_FILES = True

    def _module(self, name, args, task_vars):
        return self._execute_module(module_name=name, module_args=args, task_vars=task_vars)

    def _stat(self, path, task_vars, checksum=False):
        args = {"path": path, "follow": False, "get_checksum": checksum, "get_mime": False, "get_attributes": False}
        result = self._module("ansible.legacy.stat", args, task_vars)
        if result.get("failed"):
            raise AnsibleActionFail("gitlab_runner: cannot look at %s: %s. Nothing was changed."
                                    % (path, result.get("msg", "stat failed")))
        return result["stat"]

    def _read_current(self, path, task_vars, content=True):
        """(stat, bytes or None) of the current config.toml; refuses anything but a regular file.

        Without ``content`` the file is only looked at, not read: the gate's
        verdict does not depend on the runner-managed id/token_* fields the
        current file contributes, so the gate-only call saves the round trip.
        """
        stat = self._stat(path, task_vars)
        if not stat.get("exists") or (not content and stat.get("isreg")):
            return stat, None
        if not stat.get("isreg"):
            raise AnsibleActionFail("gitlab_runner: %s exists but is not a regular file; move it away first. "
                                    "Nothing was changed." % path)
        result = self._module("ansible.legacy.slurp", {"src": path}, task_vars)
        if result.get("failed"):
            raise AnsibleActionFail("gitlab_runner: cannot read %s: %s. Nothing was changed."
                                    % (path, result.get("msg", "slurp failed")))
        return stat, base64.b64decode(result["content"])

    def _installed_version(self):
        """The version of the gitlab-runner package installed on the host, or '' (not installed, no dpkg)."""
        result = self._low_level_execute_command(INSTALLED_VERSION, sudoable=False)
        out = result.get("stdout") or ""
        if result.get("rc") != 0 or "|" not in out:
            return ""
        status, version = out.strip().split("|", 1)
        return version.strip() if status.startswith(("ii", "hi")) else ""

    @staticmethod
    def _root_private(stat):
        """Whether a stat result is a file 0600 root:root, as both files must be."""
        return stat.get("mode") == "0600" and stat.get("uid") == 0 and stat.get("gid") == 0

    def _write(self, path, data, task_vars, mode="0600"):
        """Put ``data`` at ``path`` (root:root, 0600 unless told) with the copy module's atomic replace."""
        tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
        remote = self._connection._shell.join_path(tmpdir, "source")
        self._transfer_data(remote, data)
        self._fixup_perms2((tmpdir, remote))
        result = self._module("ansible.legacy.copy", {
            "src": remote, "dest": path, "owner": "root", "group": "root", "mode": mode,
            "_original_basename": path.rsplit("/", 1)[-1], "follow": False,
        }, task_vars)
        if result.get("failed"):
            # The copy module's message names paths and the OS error, never the content.
            raise AnsibleActionFail("gitlab_runner: writing %s failed: %s" % (path, result.get("msg", "copy failed")))
        return bool(result.get("changed"))

    def _checked(self, name, args, task_vars, what):
        result = self._module(name, args, task_vars)
        if result.get("failed"):
            raise AnsibleActionFail("gitlab_runner: %s failed: %s" % (what, result.get("msg", name)))
        return result

    def _put_known_hosts(self, directory, pins, existing, task_vars):
        """Write the pinned host keys before config.toml names their files: (changed, paths to remove after it).

        A host without ssh-type runners is only looked at when its current
        config.toml names a file in the directory: then the whole directory
        goes, and nothing costs a module call on any other run.
        """
        if not pins:
            return (True, [directory]) if names_known_hosts_dir(existing, directory) else (False, [])
        changed = bool(self._checked("ansible.legacy.file", {
            "path": directory, "state": "directory", "owner": "root", "group": "root", "mode": "0700",
            "follow": False}, task_vars, "creating %s" % directory).get("changed"))
        found = self._checked("ansible.legacy.find", {
            "paths": [directory], "file_type": "any", "hidden": True, "recurse": False, "get_checksum": True,
        }, task_vars, "listing %s" % directory).get("files") or []
        # find names what it lists normalized, as known_hosts_dir() names the directory.
        entries = dict((posixpath.normpath(str(entry.get("path"))), entry) for entry in found)
        for path, data in sorted(pins.items()):
            entry = entries.get(path) or {}
            if entry.get("isdir"):
                raise AnsibleActionFail("gitlab_runner: %s is a directory; move it away first. config.toml was "
                                        "not changed." % path)
            if not (entry.get("isreg") and entry.get("checksum") == hashlib.sha1(data).hexdigest()
                    and entry.get("mode") == "0644" and entry.get("uid") == 0 and entry.get("gid") == 0):
                changed = True
                if not self._task.check_mode:
                    self._write(path, data, task_vars, mode="0644")
        return changed, sorted(path for path in entries if path not in pins)

    def _remove(self, paths, task_vars):
        """Remove what no runner reads any more (after config.toml stopped naming it)."""
        if not self._task.check_mode:
            for path in paths:
                self._checked("ansible.legacy.file", {"path": path, "state": "absent"}, task_vars,
                              "removing %s" % path)
        return bool(paths)

    @staticmethod
    def _current_tokens(existing):
        """{runner name: token} of the current config.toml."""
        tokens = {}
        for entry in existing.get("runners") or [] if isinstance(existing, Mapping) else []:
            if isinstance(entry, Mapping) and isinstance(entry.get("token"), str) and entry.get("token"):
                tokens.setdefault(entry.get("name"), entry["token"])
        return tokens

    def _client(self, url, clients):
        api = self._api
        if url not in clients:
            clients[url] = GitLabClient(url, api.get("token"), validate_certs=api.get("validate_certs", True),
                                        ca_path=api.get("ca_path") or None, timeout=int(api.get("timeout") or 30))
        return clients[url]

    def _api_failure(self, name, exc, done):
        """An API error as a clear message: the client has scrubbed every token from it."""
        return AnsibleActionFail(
            'gitlab_runner: runner "%s": the GitLab API refused or failed: %s. config.toml was not changed%s.'
            % (name, exc, (" (already done in GitLab: %s; the next run finds them by description)"
                           % ", ".join("%s %s" % (item["runner"], item["action"]) for item in done if item["changed"]))
               if any(item["changed"] for item in done) else ""))

    def _ensure_created(self, created, runners, current_tokens):
        """Each present runner with ``create`` made sure of in GitLab: (runners with their tokens, results).

        The tokens stay in this process: the results name the runner, what was done and its id.
        """
        clients, results, tokens = {}, [], {}
        for name, (url, spec, absent) in created.items():
            if absent:
                continue
            try:
                client = self._client(url, clients)
                outcome = ensure_runner(client, spec, current_token=current_tokens.get(name),
                                        check_mode=self._task.check_mode)
            except (GitLabAPIError, ValueError) as exc:
                raise self._api_failure(name, exc, results)
            if outcome["token"]:
                tokens[name] = outcome["token"]
            results.append({"runner": name, "action": outcome["action"], "id": outcome["id"],
                            "changed": outcome["changed"]})
        runners = [dict(runner, token=tokens[runner["name"]]) if runner.get("name") in tokens else runner
                   for runner in runners]
        return runners, results

    def _remove_created(self, created):
        clients, results = {}, []
        for name, (url, spec, absent) in created.items():
            if not absent:
                continue
            try:
                outcome = remove_runner(self._client(url, clients), spec, check_mode=self._task.check_mode)
            except (GitLabAPIError, ValueError) as exc:
                raise AnsibleActionFail('gitlab_runner: runner "%s": config.toml no longer has it, but deleting it in '
                                        'GitLab failed: %s. The next run tries again.' % (name, exc))
            results.append({"runner": name, "action": outcome["action"], "id": outcome["id"],
                            "changed": outcome["changed"]})
        return results

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        path = args["path"]
        self._api = args["api"]
        try:
            stat, current = self._read_current(path, task_vars, content=not args["gate_only"])
            existing = from_toml(current.decode("utf-8", errors="replace"), strict=False) if current else {}
            env_path = args["token_env_file"]
            env_stat, env_current = ({}, None)
            if env_path and not args["gate_only"]:
                env_stat, env_current = self._read_current(env_path, task_vars)
                # The runner-managed fields of a runner are kept while its token is the same.
                existing = tokens_from_env(existing, parse_token_env((env_current or b"").decode("utf-8", "replace")))
            directory = known_hosts_dir(path)
            try:
                created = created_runners(args["runners"], args["api"])
                current_tokens = self._current_tokens(existing)
                # The gate sees a created runner with its current token, or a stand-in
                # before GitLab gives one (no API call before the gate has passed).
                runners = [dict(runner, token=current_tokens.get(runner["name"]) or PENDING_TOKEN)
                           if runner.get("name") in created else runner for runner in args["runners"]]
                document = build_document(args["settings"], runners, args["defaults"], existing,
                                          known_hosts_dir=directory)
            except ConfigError as exc:
                raise AnsibleActionFail("%s %s" % (NOTHING_CHANGED, exc))
            version, origin = args["runner_version"].strip(), "pinned"
            if not version:
                version, origin = self._installed_version(), "installed"
            if args["token_env"]:
                problems = token_env_problems(args["runners"], version)
                if problems:
                    raise AnsibleActionFail("%s %s" % (NOTHING_CHANGED, " | ".join(problems)))
            verdict = dict(gate(document, args["runners"], version, origin,
                                "none is pinned, and gitlab-runner is not installed on the host yet"))
            verdict["errors"] = []
            # Ansible takes a result's "warnings" for its own (and prints them as
            # deprecation-style warnings): the gate's are returned as "notices".
            # The first notice says which key list unknown keys were checked against.
            verdict["notices"] = [verdict["key_list"]["text"]] + verdict.pop("warnings")
            result.update(verdict)
            if verdict["refusals"]:
                result.update(failed=True, msg="%s %s" % (NOTHING_CHANGED, " | ".join(verdict["refusals"])))
                return result
            if args["gate_only"]:
                result["changed"] = False
                return result

            api_results = []
            if created:
                runners, api_results = self._ensure_created(created, runners, current_tokens)
                document = build_document(args["settings"], runners, args["defaults"], existing,
                                          known_hosts_dir=directory)
            pins = dict((name, to_bytes(text)) for name, text in known_hosts_files(args["runners"], directory).items())
            known_hosts_changed, stale = self._put_known_hosts(directory, pins, existing, task_vars)
            env_changed = False
            if args["token_env"]:
                if not env_path:
                    raise AnsibleActionFail("%s token_env needs token_env_file" % NOTHING_CHANGED)
                # Before config.toml names the variables.
                env_wanted = to_bytes(move_tokens_to_env(document))
                env_changed = env_current != env_wanted or not self._root_private(env_stat)
                if env_changed and not self._task.check_mode:
                    self._write(env_path, env_wanted, task_vars)
            wanted = to_bytes(render(document))
            config_changed = current != wanted or not self._root_private(stat)
            if config_changed and not self._task.check_mode:
                self._write(path, wanted, task_vars)
            ack_changed = False
            if args["acknowledgements_path"]:
                ack_path = args["acknowledgements_path"]
                ack = to_bytes(acknowledgements_text(verdict))
                ack_stat = self._stat(ack_path, task_vars, checksum=True)
                if not (ack_stat.get("exists") and ack_stat.get("checksum") == hashlib.sha1(ack).hexdigest()
                        and self._root_private(ack_stat)):
                    ack_changed = True
                    if not self._task.check_mode:
                        self._write(ack_path, ack, task_vars)
            known_hosts_changed = self._remove(stale, task_vars) or known_hosts_changed
            if not args["token_env"] and env_stat.get("exists"):
                # config.toml holds the tokens again: the file goes.
                env_changed = self._remove([env_path], task_vars)
            # Deleted in GitLab only once config.toml no longer names them.
            api_results.extend(self._remove_created(created))
            # An acknowledgement's reason lives only in the acknowledgements file:
            # a new reason changes the task (and reloads the service) too.
            api_changed = any(item["changed"] for item in api_results)
            result.update(changed=config_changed or ack_changed or known_hosts_changed or api_changed or env_changed,
                          config_changed=config_changed, acknowledgements_changed=ack_changed,
                          known_hosts_changed=known_hosts_changed, api=api_results, token_env_changed=env_changed)
            return result
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
