# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""First boot of a GitLab Runner host cloned from an image (hardened.gitlab_runner, role runner_image).

A runner token copied into many clones lets every clone take the original's jobs,
and a copied system id makes them one runner to GitLab. So the image keeps no
token and no system id, and each clone creates runners of its own on its first boot.

Two commands, both as root, Python 3.11 or later, standard library only:

``prepare [--check] --config PATH --system-id PATH``
    Run by the role while the image is prepared. Takes every runner's token, and
    the fields GitLab Runner writes back with it (``id``, ``token_obtained_at``,
    ``token_expires_at``), out of config.toml and keeps every other setting, then
    deletes the system id file. ``--check`` changes nothing. Prints one JSON
    object: what there was and what changed, never a value.

``register --config PATH --credentials PATH --spec PATH --service UNIT --unit UNIT``
    Run once at first boot by the first-boot unit. For every ``[[runners]]`` table
    without a token it creates a runner with GitLab's ``POST /api/v4/user/runners``
    (the access token from the credentials file, the runner's settings from the
    spec file) and writes the token it gets into config.toml at once, so a retry
    after a failure creates only the runners still missing. Then it deletes the
    credentials file, enables and starts GitLab Runner and disables its own unit.
    On an error it says what failed, without any token, and exits 1; the
    credentials file stays for the next try.

config.toml is parsed with tomllib and written back whole by the small TOML
writer below (tomllib cannot write); the text is parsed again and must give
exactly the wanted document before it replaces the file (0600 root, through a
temporary file and a rename). Comments in the file are not kept.

The credentials file holds ``KEY=value`` lines (``#`` comments, optional quotes):
``GITLAB_RUNNER_CREATE_TOKEN`` (required: a personal, group or project access
token allowed to create runners, scope ``create_runner``), ``GITLAB_URL`` (the
API's base URL; default: each runner's ``url``), ``GITLAB_CA_FILE`` (a CA bundle
to trust instead of the system's) and ``GITLAB_ALLOW_HTTP`` (``true`` to allow a
plain-HTTP URL, for tests only).
"""

import argparse
import datetime
import json
import math
import os
import re
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

try:
    import tomllib
except ImportError:  # Python < 3.11: reported by main()
    tomllib = None

MAX_FILE = 1024 * 1024
# Keys GitLab Runner writes into a [[runners]] table with its token. GitLab
# Runner reads keys case-insensitively, so any spelling of them goes.
TOKEN_FIELDS = ("token", "id", "token_obtained_at", "token_expires_at")
# Fields of POST /user/runners (GitLab's Users API, "Create a runner linked to a user") taken from the spec.
CREATE_FIELDS = ("runner_type", "group_id", "project_id", "tag_list", "run_untagged", "locked", "access_level",
                 "maximum_timeout", "paused", "maintenance_note")
RUNNER_TYPES = ("instance_type", "group_type", "project_type")
CREDENTIAL_KEYS = ("GITLAB_RUNNER_CREATE_TOKEN", "GITLAB_URL", "GITLAB_CA_FILE", "GITLAB_ALLOW_HTTP")
# Anything shaped like a GitLab token (personal, runner, registration, deploy, ...), masked in every message.
TOKEN_SHAPED = re.compile(r"\b(?:glpat|glrtr|glrt|gldt|glptt|glcbt|gloas|glsoat|glft|glimt|glagent)-[A-Za-z0-9_.\-]+"
                          r"|\bGR1348941[A-Za-z0-9_\-]+")
MASK = "********"
REQUEST_TIMEOUT = 30
# Waits before the next try when GitLab cannot be reached or answers 429/5xx
# (the network may come up late at boot): about two minutes in all.
RETRY_DELAYS = (2, 5, 10, 20, 30, 60)
NO_EXPIRY = datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc)  # what GitLab Runner writes for "never"


class Failure(Exception):
    """An error to report in one line; its text never holds a secret."""


# --- messages -------------------------------------------------------------------

_SECRETS = set()


def scrub(text):
    """``text`` with every secret seen so far and every token-shaped word masked."""
    text = str(text)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return TOKEN_SHAPED.sub(MASK, text)


def say(message, level="info"):
    """One line to stderr; under systemd with the journal's priority prefix (sd-daemon(3))."""
    prefix = ""
    if os.environ.get("JOURNAL_STREAM"):
        prefix = {"error": "<3>", "warning": "<4>", "info": "<6>"}[level]
    elif level != "info":
        prefix = level + ": "
    sys.stderr.write(prefix + scrub(message).replace("\n", " ") + "\n")
    sys.stderr.flush()


# --- TOML -----------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_string(text):
    """``text`` as a TOML basic string."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append("\\u%04X" % ord(char))
        else:
            out.append(char)
    return '"%s"' % "".join(out)


def toml_key(key):
    return key if _BARE_KEY.match(key) else toml_string(key)


def toml_value(value):
    """A value (not a table) in TOML's inline syntax."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime.datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if value.utcoffset() == datetime.timedelta(0) and text.endswith("+00:00") else text
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[%s]" % ", ".join(toml_value(item) for item in value)
    if isinstance(value, dict):
        return "{%s}" % ", ".join("%s = %s" % (toml_key(k), toml_value(v)) for k, v in value.items())
    raise Failure("config.toml holds a value of an unexpected type (%s)" % type(value).__name__)


def _table_array(value):
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _dump_table(lines, path, table, header=None, element=False):
    """Append ``table`` at ``path`` to ``lines``, indented by depth as GitLab Runner writes it.

    A table holding only tables gets no header of its own (theirs define it),
    unless it is an element of an array of tables.
    """
    indent = "  " * len(path)
    nested = [key for key, value in table.items() if isinstance(value, dict) or _table_array(value)]
    if header and (element or not table or len(nested) < len(table)):
        if lines:
            lines.append("")
        lines.append(indent[2:] + header)
    for key, value in table.items():
        if key not in nested:
            lines.append("%s%s = %s" % (indent, toml_key(key), toml_value(value)))
    for key in nested:
        value, name = table[key], ".".join(toml_key(part) for part in path + [key])
        if isinstance(value, dict):
            _dump_table(lines, path + [key], value, "[%s]" % name)
        else:
            for item in value:
                _dump_table(lines, path + [key], item, "[[%s]]" % name, element=True)


def toml_dump(document):
    """The whole document as TOML text: each table's keys first, then its tables, in their order."""
    lines = []
    _dump_table(lines, [], document)
    return "\n".join(lines) + "\n"


def _same(one, other):
    """Equality of parsed TOML, with NaN equal to NaN."""
    if isinstance(one, dict) and isinstance(other, dict):
        return list(one) == list(other) and all(_same(one[k], other[k]) for k in one)
    if isinstance(one, list) and isinstance(other, list):
        return len(one) == len(other) and all(_same(a, b) for a, b in zip(one, other))
    if isinstance(one, float) and isinstance(other, float) and math.isnan(one) and math.isnan(other):
        return True
    return type(one) is type(other) and one == other


# --- files ----------------------------------------------------------------------

def read_private(path, what):
    """The text of ``path``, a regular file (not a link) of at most 1 MiB; None when it is missing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise Failure("cannot open %s %s: %s" % (what, path, err.strerror)) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise Failure("%s %s is not a regular file" % (what, path))
        data = handle.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise Failure("%s %s is larger than %d bytes" % (what, path, MAX_FILE))
    try:
        return data.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError:
        raise Failure("%s %s is not UTF-8 text" % (what, path)) from None


def load_config(path):
    """config.toml parsed, with a [[runners]] list of named tables (names unique)."""
    text = read_private(path, "config.toml")
    if text is None:
        raise Failure("there is no config.toml at %s" % path)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # tomllib's message names the line and column, never the text there.
        raise Failure("%s is not valid TOML: %s" % (path, err)) from None
    runners = document.get("runners", [])
    if not isinstance(runners, list) or not all(isinstance(runner, dict) for runner in runners):
        raise Failure("%s: runners is not an array of tables ([[runners]])" % path)
    names = [runner.get("name") for runner in runners]
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise Failure("%s: [[runners]] number %d has no name; runners are matched by name" % (path, index + 1))
        if names.count(name) > 1:
            raise Failure("%s: two [[runners]] are named %r; runners are matched by name" % (path, name))
    return document


def write_config(path, document):
    """Write ``document`` to ``path`` as TOML, 0600 root, atomically, once it parses back to itself."""
    text = toml_dump(document)
    if not _same(tomllib.loads(text), document):
        raise Failure("the rewritten %s would not hold the same settings; it was left as it was" % path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".config.toml.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            if os.geteuid() == 0:
                os.fchown(handle.fileno(), 0, 0)
            os.fchmod(handle.fileno(), 0o600)
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def token_fields(runner):
    """The keys of ``runner`` that are a token or written with one, in any spelling."""
    return [key for key in runner if key.casefold() in TOKEN_FIELDS]


def has_token(runner):
    return any(key.casefold() == "token" and value not in (None, "") for key, value in runner.items())


# --- prepare ----------------------------------------------------------------------

def prepare(args):
    document = load_config(args.config)
    runners = document.get("runners", [])
    result = {"changed": False, "check": args.check, "config": args.config,
              "runners": [runner["name"] for runner in runners],
              "tokens_removed": sum(1 for runner in runners if has_token(runner)),
              "fields_removed": sum(len(token_fields(runner)) for runner in runners),
              "system_id": args.system_id, "system_id_removed": False}
    if result["fields_removed"]:
        for runner in runners:
            for key in token_fields(runner):
                del runner[key]
        if not args.check:
            write_config(args.config, document)
        result["changed"] = True
    try:
        info = os.lstat(args.system_id)
    except FileNotFoundError:
        info = None
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            raise Failure("the system id path %s is a directory" % args.system_id)
        if not args.check:
            os.unlink(args.system_id)
        result["system_id_removed"] = result["changed"] = True
    print(json.dumps(result, sort_keys=True))
    return 0


# --- register -----------------------------------------------------------------------

_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")


def read_credentials(path):
    """The credentials file's settings; refused unless it is root's and only root can change it."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise Failure("there is no credentials file %s; nothing to register with" % path) from None
    if not stat.S_ISREG(info.st_mode):
        raise Failure("the credentials file %s is not a regular file" % path)
    if info.st_uid != 0 or info.st_mode & 0o022:
        raise Failure("the credentials file %s is not root's, or others than root can change it (mode %04o); "
                      "its settings are not trusted: chown root:root and chmod 0600 it"
                      % (path, stat.S_IMODE(info.st_mode)))
    if info.st_mode & 0o044:
        say("the credentials file %s can be read by others than root (mode %04o); it is deleted once the runners "
            "are registered, but write it 0600 next time" % (path, stat.S_IMODE(info.st_mode)), "warning")
    settings = {}
    for number, line in enumerate(read_private(path, "credentials file").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise Failure("%s line %d is not KEY=value" % (path, number))
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        settings[key] = value
        if key == "GITLAB_RUNNER_CREATE_TOKEN" and value:
            _SECRETS.add(value)
    unknown = sorted(set(settings) - set(CREDENTIAL_KEYS))
    if unknown:
        say("%s: ignoring unknown setting(s) %s" % (path, ", ".join(unknown)), "warning")
    if not settings.get("GITLAB_RUNNER_CREATE_TOKEN"):
        raise Failure("%s sets no GITLAB_RUNNER_CREATE_TOKEN (an access token with the create_runner scope)" % path)
    return settings


def read_spec(path):
    text = read_private(path, "runner spec file")
    if text is None:
        raise Failure("there is no runner spec file %s; run the runner_image role again" % path)
    try:
        spec = json.loads(text)
    except ValueError:
        raise Failure("the runner spec file %s is not valid JSON" % path) from None
    if not isinstance(spec, dict) or not isinstance(spec.get("runners"), dict):
        raise Failure("the runner spec file %s has no runners object" % path)
    return spec


def api_base(settings, runner):
    """The API's base URL for ``runner``, checked: https, or http only when allowed."""
    base = (settings.get("GITLAB_URL") or runner.get("url") or "").rstrip("/")
    scheme = base.split("://", 1)[0].lower() if "://" in base else ""
    if scheme == "http" and settings.get("GITLAB_ALLOW_HTTP", "").lower() in ("1", "true", "yes"):
        return base
    if scheme != "https" or len(base) <= len("https://"):
        raise Failure("runner %r: %r is not an https URL (set GITLAB_URL in the credentials file%s)"
                      % (runner["name"], base, "; GITLAB_ALLOW_HTTP=true allows http" if scheme == "http" else ""))
    return base


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would send the access token to another address."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(req.full_url, code, "redirected to %s (not followed)" % newurl, headers, fp)


def _answer(err):
    """GitLab's own message from an error answer (its "message" or "error"), short."""
    try:
        body = err.read(4096).decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    try:
        document = json.loads(body)
    except ValueError:
        return ""
    if isinstance(document, dict):
        for key in ("message", "error", "error_description"):
            if document.get(key):
                return json.dumps(document[key])[:300]
    return ""


_HINTS = {
    400: "GitLab refused the runner's settings (check runner_image_runners)",
    401: "GITLAB_RUNNER_CREATE_TOKEN is not a valid access token (wrong, expired or revoked)",
    403: "the access token may not create this runner (it needs the create_runner scope and the right role "
         "in the group or project; instance runners need an administrator)",
    404: "no GitLab API answers there (check GITLAB_URL) or the group or project does not exist",
}


def create_runner(settings, runner, fields, opener):
    """POST /api/v4/user/runners for ``runner``; return GitLab's answer (id, token, token_expires_at)."""
    url = api_base(settings, runner) + "/api/v4/user/runners"
    body = json.dumps(fields).encode("utf-8")
    headers = {"PRIVATE-TOKEN": settings["GITLAB_RUNNER_CREATE_TOKEN"], "Content-Type": "application/json",
               "Accept": "application/json", "User-Agent": "hardened.gitlab_runner gitlab-runner-firstboot"}
    delays = list(RETRY_DELAYS)
    while True:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with opener.open(request, timeout=REQUEST_TIMEOUT) as response:
                status, raw = response.status, response.read(MAX_FILE)
            break
        except urllib.error.HTTPError as err:
            problem, retry = "GitLab answered %d %s" % (err.code, err.reason), err.code == 429 or err.code >= 500
            detail = _answer(err)
            if detail and detail.strip('"') != "%d %s" % (err.code, err.reason):
                problem += ": " + detail
            if not retry:
                hint = _HINTS.get(err.code, "")
                raise Failure("runner %r: creating it with POST %s failed: %s%s"
                              % (runner["name"], url, problem, (". " + hint) if hint else "")) from None
        except (urllib.error.URLError, OSError, ssl.SSLError) as err:
            reason = getattr(err, "reason", err)
            problem, retry = "cannot reach GitLab: %s" % reason, not isinstance(reason, ssl.SSLCertVerificationError)
            if not retry:
                raise Failure("runner %r: POST %s failed: %s (GITLAB_CA_FILE names a CA bundle to trust)"
                              % (runner["name"], url, problem)) from None
        if not delays:
            raise Failure("runner %r: POST %s failed, the last try with: %s" % (runner["name"], url, problem))
        delay = delays.pop(0)
        say("runner %r: %s; trying again in %d s" % (runner["name"], problem, delay), "warning")
        time.sleep(delay)
    try:
        answer = json.loads(raw.decode("utf-8"))
    except ValueError:
        answer = None
    if status != 201 or not isinstance(answer, dict) or not isinstance(answer.get("token"), str) \
            or not answer["token"] or not isinstance(answer.get("id"), int):
        raise Failure("runner %r: POST %s answered %d without a runner id and token" % (runner["name"], url, status))
    _SECRETS.add(answer["token"])
    return answer


def create_fields(spec, runner, hostname):
    """The body of POST /user/runners for ``runner``, from its spec entry."""
    entry = spec["runners"].get(runner["name"])
    if not isinstance(entry, dict):
        raise Failure("runner %r of config.toml has no entry in the runner spec file (runner_image_runners)"
                      % runner["name"])
    fields = {key: entry[key] for key in CREATE_FIELDS if entry.get(key) is not None}
    if fields.get("runner_type") not in RUNNER_TYPES:
        raise Failure("runner %r: the spec's runner_type must be one of %s" % (runner["name"], ", ".join(RUNNER_TYPES)))
    template = entry.get("description") or spec.get("description") or "{name} on {hostname}"
    fields["description"] = template.replace("{name}", runner["name"]).replace("{hostname}", hostname)
    return fields


def _expiry(value):
    if not value:
        return NO_EXPIRY
    try:
        parsed = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def with_token(runner, answer):
    """``runner`` with the new runner's id and token after its name and url, as GitLab Runner writes them."""
    obtained = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    new = {}
    issued = {"id": answer["id"], "token": answer["token"], "token_obtained_at": obtained}
    expiry = _expiry(answer.get("token_expires_at"))
    if expiry is not None:
        issued["token_expires_at"] = expiry
    for key, value in runner.items():
        if key.casefold() in TOKEN_FIELDS:
            continue
        new[key] = value
        if key == "url":
            new.update(issued)
    new.update(issued)  # no url key: at the end
    return new


def systemctl(*arguments):
    proc = subprocess.run(["systemctl"] + list(arguments), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False)
    if proc.returncode != 0:
        raise Failure("systemctl %s failed (rc=%d): %s" % (" ".join(arguments), proc.returncode, proc.stdout.strip()))


def register(args):
    document = load_config(args.config)
    runners = document.get("runners", [])
    missing = [index for index, runner in enumerate(runners) if not has_token(runner)]
    if missing:
        settings = read_credentials(args.credentials)
        spec = read_spec(args.spec)
        hostname = socket.gethostname()
        # Every runner's input is checked before the first one is created.
        bodies = {index: create_fields(spec, runners[index], hostname) for index in missing}
        for index in missing:
            api_base(settings, runners[index])
        context = ssl.create_default_context(cafile=settings.get("GITLAB_CA_FILE") or None)
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirect())
        for index in missing:
            runner = runners[index]
            answer = create_runner(settings, runner, bodies[index], opener)
            runners[index] = with_token(runner, answer)
            # At once: a later failure must not lose a runner GitLab has made.
            write_config(args.config, document)
            say("runner %r: created GitLab runner %d (%s) %r; its token is in %s"
                % (runner["name"], answer["id"], bodies[index]["runner_type"], bodies[index]["description"],
                   args.config))
    else:
        say("every runner in %s has a token already; nothing to create" % args.config)
    try:
        os.unlink(args.credentials)
        say("deleted the credentials file %s" % args.credentials)
    except FileNotFoundError:
        pass
    systemctl("enable", args.service)
    systemctl("start", "--no-block", args.service)
    say("enabled and started %s" % args.service)
    if args.unit:
        systemctl("disable", args.unit)
        say("disabled %s: this host's runners are registered" % args.unit)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description="First boot of a GitLab Runner host cloned from an image "
                                                 "(hardened.gitlab_runner, role runner_image).")
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="take tokens and the system id off the host before imaging")
    prep.add_argument("--config", default="/etc/gitlab-runner/config.toml")
    prep.add_argument("--system-id", default=None, help="default: .runner_system_id next to config.toml")
    prep.add_argument("--check", action="store_true", help="report only, change nothing")
    reg = commands.add_parser("register", help="create this host's runners in GitLab (first boot)")
    reg.add_argument("--config", default="/etc/gitlab-runner/config.toml")
    reg.add_argument("--credentials", default="/etc/gitlab-runner/firstboot.env")
    reg.add_argument("--spec", default="/etc/gitlab-runner/firstboot-runners.json")
    reg.add_argument("--service", default="gitlab-runner.service")
    reg.add_argument("--unit", default="", help="the first-boot unit, disabled once done")
    args = parser.parse_args(argv)
    if tomllib is None:
        say("Python %d.%d has no tomllib; Python 3.11 or later is needed" % sys.version_info[:2], "error")
        return 1
    try:
        if args.command == "prepare":
            if args.system_id is None:
                args.system_id = os.path.join(os.path.dirname(os.path.abspath(args.config)), ".runner_system_id")
            return prepare(args)
        return register(args)
    except Failure as err:
        say(str(err), "error")
    except OSError as err:
        # The error's own text (errno and file name), never a file's content.
        say("%s failed: %s%s" % (args.command, err.strerror or type(err).__name__,
                                 (" (%s)" % err.filename) if err.filename else ""), "error")
    if args.command == "register":
        say("nothing more was done: once the cause is fixed, start the unit again (systemctl start %s); "
            "runners created already keep their tokens and are not created twice" % (args.unit or "the unit"),
            "error")
    return 1


if __name__ == "__main__":
    sys.exit(main())
