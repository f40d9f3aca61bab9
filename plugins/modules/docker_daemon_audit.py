#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: docker_daemon_audit
short_description: Audit the Docker engine under docker-executor jobs (read-only)
version_added: "0.1.0"
description:
  - Reads the B(effective) settings of the Docker daemon on the host and reports findings from the
    policy catalog of this collection. Nothing is changed, no container is started.
  - C(GR033) (high) - the daemon does not default containers to C(no-new-privileges). GitLab Runner
    never gives service containers the job's C(cap_drop) or C(security_opt), so the daemon default
    is the only such guard that always reaches them (CIS Docker Benchmark 2.14).
  - C(GR034) (medium) - inter-container communication on the default bridge is on (C(icc)) (2.2).
  - C(GR035) (low) - C(live-restore) is off (2.15).
  - C(GR036) (low) - C(userland-proxy) is on (2.16).
  - C(GR037) (low) - the default log driver is C(json-file) and C(log-opts) has no C(max-size), so
    container logs grow without bound. The C(local) driver rotates by default (20 MB, 5 files) and
    other drivers send logs elsewhere; neither is reported.
  - C(GR038) (high) - the Docker socket O(socket_path) is not owned by root, is more open than
    C(0660), or lets a group other than root and O(docker_group) connect (3.15, 3.16).
  - C(GR039) (high) - users other than root are members of O(docker_group) (or of the group owning
    the socket, when that group may connect), who are root on the host. Members by supplementary
    group and by primary group are listed; the evidence says when O(job_user) is one of them (1.1.2).
  - C(GR040) (critical) - the API listens on TCP without TLS client verification (C(--tlsverify))
    (2.7). Found from the daemon's own warnings in C(GET /info), from C(hosts) (C(-H)) on the
    command line or in C(daemon.json) (also C(--tls) without hosts, which listens on
    C(localhost:2376)), from the TCP sockets the C(dockerd) process listens on (systemd socket
    activation included), and from any other process listening on ports 2375 or 2376, the Docker
    API ports, whose TLS the module cannot verify.
  - C(GR041) (low) - user namespace remapping (C(userns-remap)) is off and the daemon is not
    rootless. It is optional, as remapping breaks privileged jobs, host namespaces and some bind
    mounts, so decide per host (2.9).
  - C(GR042) (high) - the daemon cannot be reached at O(docker_host), so its effective settings are
    unknown. The checks above still run on the configuration (command line, C(daemon.json)) when a
    C(dockerd) process or a C(daemon.json) exists; on a host with neither only C(GR042) and the
    socket and group checks are reported.
  - |
    Where a value comes from, first match wins, and RV(settings) names it for each value:
    C(daemon) - what the running daemon reports through its API (C(GET /info): C(LiveRestoreEnabled),
    C(LoggingDriver), C(SecurityOptions) C(name=userns), C(name=rootless) and, from Docker 24 on,
    C(name=no-new-privileges); the C(com.docker.network.bridge.enable_icc) option of the default
    C(bridge) network; the TCP warnings);
    C(cmdline) - the flags of the running C(dockerd) (C(/proc/<pid>/cmdline), for example
    C(--icc=false), C(--no-new-privileges), C(-H tcp://...), C(--tlsverify), C(--userland-proxy=false),
    C(--live-restore), C(--userns-remap=default), C(--log-opt max-size=10m));
    C(daemon.json) - the daemon's configuration file as it is now on disk;
    C(default) - dockerd's built-in default.
    dockerd refuses to start when a setting is both a flag and in C(daemon.json), so the two only
    disagree when the file changed after the daemon started. When the daemon reports a value that
    its command line or C(daemon.json) contradicts, a warning says so (a changed C(daemon.json) takes
    effect at the next restart); the finding follows the daemon.
author:
  - hardened.gitlab_runner maintainers (@hardened)
options:
  docker_host:
    description:
      - Where the Docker API is reached, as a Docker SDK C(base_url) (C(unix://), C(tcp://) without
        TLS, C(ssh://)).
      - C(daemon.json), the C(dockerd) process, the socket and the groups are always read on the
        managed host, so point this at the daemon of the managed host itself.
    type: str
    default: unix:///var/run/docker.sock
  socket_path:
    description:
      - The Docker socket whose mode and owner are checked (C(GR038)).
      - When several C(dockerd) processes are visible, the one holding this socket is audited.
    type: path
    default: /var/run/docker.sock
  daemon_json:
    description:
      - The daemon's configuration file.
      - Defaults to the C(--config-file) of the running C(dockerd), else C(/etc/docker/daemon.json).
    type: path
  docker_group:
    description:
      - The group whose members may use the Docker socket (dockerd's C(--group)).
    type: str
    default: docker
  job_user:
    description:
      - The user shell-executor jobs run as; named in the C(GR039) evidence when it is a member.
    type: str
    default: gitlab-runner
  timeout:
    description:
      - Seconds to wait for each Docker API call.
    type: int
    default: 10
  skip_without_socket:
    description:
      - When O(socket_path) does not exist, report the task as skipped (a host without a Docker
        engine, such as a shell-only runner host) instead of auditing; checked before anything
        else, so such a host needs no Docker SDK either.
      - Saves the separate stat task a playbook would otherwise run first.
    type: bool
    default: false
    version_added: "0.2.0"
notes:
  - Reads C(/proc) to find the C(dockerd) process (in the module's own PID namespace), its command
    line and its listening sockets; run it as root to see the sockets of every process.
  - C(daemon.json) is read with a bound of 1 MiB; a missing file is normal, an unreadable or invalid
    one gives a warning and is ignored (dockerd would not start with it).
  - No daemon reports C(userland-proxy), C(log-opts), C(hosts) or its TLS settings through its API
    (only the warnings about TCP without TLS), and one older than Docker 24 does not report
    C(no-new-privileges); for those the command line and C(daemon.json) are authoritative.
  - Supports check mode; the module never changes anything and always reports C(changed=false).
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the target.
    support: full
    details: The module only reads; it does the same in check mode and always reports
      C(changed=false).
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
    details: The module changes nothing, so there is no difference to show.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
    details: The C(dockerd) process and its sockets are found in C(/proc), as Linux provides it.
requirements:
  - The Docker SDK for Python (C(docker)) on the managed host
seealso:
  - module: hardened.gitlab_runner.runner_host_audit
  - module: hardened.gitlab_runner.runner_config_audit
"""

EXAMPLES = r"""
- name: Audit the Docker engine of a runner host
  hardened.gitlab_runner.docker_daemon_audit:
  register: docker_daemon

- name: Fail on findings at medium or above
  ansible.builtin.assert:
    that:
      - docker_daemon.findings | selectattr('severity', 'in', ['medium', 'high', 'critical']) | list | length == 0
    fail_msg: "{{ docker_daemon.findings | selectattr('severity', 'in', ['medium', 'high', 'critical']) | list }}"

- name: Show where no-new-privileges comes from
  ansible.builtin.debug:
    msg: "{{ docker_daemon.settings['no-new-privileges'] }}"

- name: Audit a daemon with its own socket, group and configuration file
  hardened.gitlab_runner.docker_daemon_audit:
    docker_host: unix:///run/docker-ci.sock
    socket_path: /run/docker-ci.sock
    daemon_json: /etc/docker/ci.json
    docker_group: docker-ci
    job_user: ci
"""

RETURN = r"""
findings:
  description: Findings from the policy catalog (C(GR033) to C(GR042)).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Catalog id.
      type: str
      sample: GR033
    severity:
      description: One of C(info), C(low), C(medium), C(high), C(critical).
      type: str
      sample: high
    title:
      description: What the policy is about.
      type: str
    guidance:
      description: Where the reasoning is documented (the CIS Docker Benchmark v1.6.0 item).
      type: str
    runner:
      description: Always null (daemon findings concern no single runner).
      type: str
    setting:
      description: The daemon setting, socket, group or listener concerned.
      type: str
      sample: no-new-privileges
    evidence:
      description: What was found, and where the value came from.
      type: str
      sample: no-new-privileges = false (default)
    ack:
      description: Always null.
      type: str
    enforcement:
      description: C(audit).
      type: str
settings:
  description:
    - The effective daemon settings, each as C(value) and C(source)
      (C(daemon), C(cmdline), C(daemon.json) or C(default)).
    - Keys C(no-new-privileges), C(icc), C(live-restore), C(userland-proxy), C(log-driver),
      C(log-opts) (values of options such as C(splunk-token) masked), C(userns-remap) (true when
      remapping is on), C(rootless), C(hosts), C(tls), C(tlsverify) and C(group).
    - C(icc) is null when the daemon has no default bridge network.
  returned: always
  type: dict
  sample:
    no-new-privileges: {value: true, source: daemon.json}
    icc: {value: false, source: daemon}
    live-restore: {value: true, source: daemon}
    log-opts: {value: {max-size: 10m, max-file: "3"}, source: daemon.json}
daemon:
  description: What the Docker API answered.
  returned: always
  type: dict
  contains:
    reachable:
      description: Whether the API answered.
      type: bool
    error:
      description: Why it did not, or null.
      type: str
    server_version:
      description: The daemon's version, or null.
      type: str
      sample: 20.10.24+dfsg1
    api_version:
      description: The daemon's API version, or null.
      type: str
      sample: "1.41"
    security_options:
      description: C(SecurityOptions) of C(GET /info).
      type: list
      elements: str
      sample: ["name=seccomp,profile=default"]
    tcp_warnings:
      description: The daemon's own warnings about TCP listeners without TLS.
      type: list
      elements: str
dockerd:
  description: The C(dockerd) process found in C(/proc).
  returned: always
  type: dict
  contains:
    pid:
      description: Its process id, or null when none (or several, none holding O(socket_path)) was found.
      type: int
    argv:
      description: Its command line (passwords in URLs and secret log options masked), or null.
      type: list
      elements: str
    tcp_listeners:
      description: The TCP addresses it listens on.
      type: list
      elements: str
      sample: ["0.0.0.0:2375"]
daemon_json:
  description: The configuration file read.
  returned: always
  type: dict
  contains:
    path:
      description: Its path.
      type: str
    exists:
      description: Whether it exists.
      type: bool
    error:
      description: Why it was ignored (unreadable, too large, not valid JSON, not a JSON object), or null.
      type: str
socket:
  description: The Docker socket O(socket_path).
  returned: always
  type: dict
  contains:
    path:
      description: Its path.
      type: str
    exists:
      description: Whether it exists.
      type: bool
    is_socket:
      description: Whether it is a Unix socket.
      type: bool
    mode:
      description: Its mode as an octal string, or null.
      type: str
      sample: "0660"
    owner:
      description: Its owner's name, or null.
      type: str
    group:
      description: Its group's name, or null.
      type: str
docker_group:
  description: Members of O(docker_group).
  returned: always
  type: dict
  contains:
    name:
      description: O(docker_group).
      type: str
    exists:
      description: Whether the group exists.
      type: bool
    members:
      description: All members (supplementary and primary), root included.
      type: list
      elements: str
    job_user_member:
      description: Whether O(job_user) is a member.
      type: bool
"""

import grp
import json
import os
import pwd
import re
import stat
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import docker
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:
    docker = None
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.hardened.gitlab_runner.plugins.module_utils.host_text import clip as _clip
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.files import read_head
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.policy import finding

PROC = "/proc"
DEFAULT_DAEMON_JSON = "/etc/docker/daemon.json"
DAEMON_JSON_LIMIT = 1024 * 1024
CMDLINE_LIMIT = 256 * 1024
NET_LIMIT = 4 * 1024 * 1024
DOCKER_API_PORTS = (2375, 2376)
# From this major version on, GET /info lists name=no-new-privileges when it is set (moby#45320).
NNP_REPORTED_SINCE = 24

# dockerd's defaults, under their daemon.json names.
DEFAULTS = {
    "no-new-privileges": False,
    "icc": True,
    "live-restore": False,
    "userland-proxy": True,
    "log-driver": "json-file",
    "log-opts": {},
    "userns-remap": "",
    "hosts": [],
    "tls": False,
    "tlsverify": False,
    "group": "docker",
}
# dockerd flags read from its command line: flag -> (daemon.json key, kind).
FLAGS = {
    "no-new-privileges": ("no-new-privileges", "bool"),
    "icc": ("icc", "bool"),
    "live-restore": ("live-restore", "bool"),
    "userland-proxy": ("userland-proxy", "bool"),
    "log-driver": ("log-driver", "str"),
    "log-opt": ("log-opts", "map"),
    "userns-remap": ("userns-remap", "str"),
    "host": ("hosts", "list"),
    "tls": ("tls", "bool"),
    "tlsverify": ("tlsverify", "bool"),
    "group": ("group", "str"),
    "config-file": ("config-file", "str"),
}
SHORT_FLAGS = {"H": "host", "G": "group"}
# dockerd's other one-letter flags that take a value (-b, -l, -p, -s); -D, -v, -h take none.
SHORT_VALUE_FLAGS = frozenset("bGHlps")
# Go's strconv.ParseBool, which dockerd's flags and pflag use.
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_TCP_WARNING = re.compile(r"API is accessible on (https?)://(\S+?) without (encryption|TLS client verification)")
_URL_PASSWORD = re.compile(r"(://[^/@:\s]*:)[^/@\s]*@")
# Log options that hold secrets (splunk-token, ...): their values are never returned.
_SECRET_OPTION = re.compile(r"token|pass|secret|credential", re.IGNORECASE)
_SECRET_ARG = re.compile(r"^((?:--log-opt=)?[A-Za-z0-9_.-]*(?:token|pass|secret|credential)[A-Za-z0-9_.-]*=).*$",
                         re.IGNORECASE)
MASK = "********"
_TCP_LISTEN = "0A"


def _go_bool(value):
    """A dockerd boolean (JSON bool or flag text) as True/False, or None when dockerd would refuse it."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value in _GO_TRUE:
            return True
        if value in _GO_FALSE:
            return False
    return None


def _mask_options(options):
    return dict((key, MASK if _SECRET_OPTION.search(key) else value) for key, value in options.items())


def _mask_arg(arg):
    return _SECRET_ARG.sub(r"\g<1>" + MASK, _URL_PASSWORD.sub(r"\g<1>" + MASK + "@", arg))


def _show(value):
    if value is None:
        return "an invalid value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


# --- dockerd's command line -------------------------------------------------

def parse_dockerd_args(args):
    """The settings given as flags in dockerd's argv (without argv[0]), under daemon.json names.

    Follows pflag: ``--name=value``, ``--name value`` (not for booleans, where
    ``--name`` alone means true), ``-H value``, ``-Hvalue``, ``-H=value``;
    repeatable lists (``-H``) and maps (``--log-opt k=v``) accumulate; ``--``
    ends the flags. dockerd takes no positional arguments, so a word after an
    unknown flag is that flag's value.
    """
    out = {}

    def put(name, value):
        key, kind = FLAGS[name]
        if kind == "bool":
            out[key] = _go_bool(value)
        elif kind == "list":
            out.setdefault(key, []).append(value)
        elif kind == "map":
            name_value = value.split("=", 1)
            out.setdefault(key, {})[name_value[0]] = name_value[1] if len(name_value) > 1 else ""
        else:
            out[key] = value

    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            break
        if arg.startswith("--"):
            name, has_value, value = arg[2:].partition("=")
            kind = FLAGS[name][1] if name in FLAGS else None
            if not has_value and kind != "bool":
                if index < len(args) and not args[index].startswith("-"):
                    value = args[index]
                    index += 1
                elif kind is not None:
                    continue  # dockerd would refuse a flag without its value
            elif not has_value:
                value = "true"
            if kind is not None:
                put(name, value)
        elif arg.startswith("-") and len(arg) > 1:
            letters = arg[1:]
            for position, letter in enumerate(letters):
                if letter not in SHORT_VALUE_FLAGS:
                    continue  # -D, -v, -h and the like take no value
                value = letters[position + 1:]
                if value.startswith("="):
                    value = value[1:]
                if not value and index < len(args):
                    value = args[index]
                    index += 1
                if letter in SHORT_FLAGS:
                    put(SHORT_FLAGS[letter], value)
                break
    return out


def _read_proc(path, limit):
    """Up to ``limit`` bytes of a /proc file, or None (a buffered read goes on until EOF or the limit)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except OSError:
        return None


def _ns(pid):
    try:
        return os.readlink(os.path.join(PROC, str(pid), "ns", "pid"))
    except OSError:
        return None


def _socket_inodes(pid):
    """Inodes of the sockets process ``pid`` holds open (needs root for other users' processes)."""
    inodes = set()
    fd_dir = os.path.join(PROC, str(pid), "fd")
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        if target.startswith("socket:[") and target.endswith("]"):
            inodes.add(target[8:-1])
    return inodes


def _unix_socket_inodes(path):
    """Inodes of listening Unix sockets bound at ``path`` (from /proc/net/unix)."""
    raw = _read_proc(os.path.join(PROC, "net", "unix"), NET_LIMIT)
    if raw is None:
        return set()
    wanted = {os.path.realpath(path), os.path.normpath(path)}
    inodes = set()
    for line in raw.decode("utf-8", "replace").splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and (fields[7] in wanted or os.path.realpath(fields[7]) in wanted):
            inodes.add(fields[6])
    return inodes


def find_dockerd(socket_path, warnings):
    """(pid, argv) of the dockerd process serving ``socket_path``, or (None, None)."""
    own_ns = _ns("self")
    candidates = []
    try:
        entries = os.listdir(PROC)
    except OSError:
        return None, None
    for entry in entries:
        if not entry.isdigit():
            continue
        comm = _read_proc(os.path.join(PROC, entry, "comm"), 64)
        if comm is None or comm.strip() != b"dockerd":
            continue
        if own_ns is not None and _ns(entry) not in (None, own_ns):
            continue  # a dockerd in a container (its own PID namespace)
        candidates.append(int(entry))
    if len(candidates) > 1:
        bound = _unix_socket_inodes(socket_path)
        holding = [pid for pid in candidates if bound & _socket_inodes(pid)]
        if len(holding) != 1:
            warnings.append("%d dockerd processes found (%s) and %s of them holds %s; the command line was not read"
                            % (len(candidates), ", ".join(str(p) for p in sorted(candidates)),
                               "none" if not holding else "more than one", socket_path))
            return None, None
        candidates = holding
    if not candidates:
        return None, None
    pid = candidates[0]
    raw = _read_proc(os.path.join(PROC, str(pid), "cmdline"), CMDLINE_LIMIT)
    if raw is None:
        return pid, None
    argv = [part.decode("utf-8", "replace") for part in raw.split(b"\0")]
    while argv and argv[-1] == "":
        argv.pop()
    return pid, argv


# --- listening TCP sockets --------------------------------------------------

def _hex_address(text):
    """``0100007F:0948`` or a 32-digit IPv6 address with port, as ``127.0.0.1:2376`` / ``[::]:2376``."""
    address, _colon, port = text.partition(":")
    try:
        port = int(port, 16)
        raw = bytes.fromhex(address)
    except ValueError:
        return None, None
    # /proc prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    if len(words) == 4:
        return "%s:%d" % (".".join(str(b) for b in words), port), port
    if len(words) == 16:
        if words[:12] == b"\0" * 10 + b"\xff\xff":
            return "%s:%d" % (".".join(str(b) for b in words[12:]), port), port
        groups = ["%x" % int.from_bytes(words[i:i + 2], "big") for i in range(0, 16, 2)]
        text = ":".join(groups)
        text = re.sub(r"(^|:)0(:0)+(:|$)", "::", text, count=1)
        return "[%s]:%d" % (text, port), port
    return None, None


def tcp_listeners(net_dir):
    """[(address, port, inode)] of the listening TCP sockets in ``net_dir`` (a /proc/<pid>/net)."""
    out = []
    for name in ("tcp", "tcp6"):
        raw = _read_proc(os.path.join(net_dir, name), NET_LIMIT)
        if raw is None:
            continue
        for line in raw.decode("ascii", "replace").splitlines()[1:]:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _TCP_LISTEN:
                continue
            address, port = _hex_address(fields[1])
            if address:
                out.append((address, port, fields[9]))
    return out


def _process_holding(inode):
    """'comm (pid N)' of a process holding socket ``inode``, or None."""
    try:
        entries = os.listdir(PROC)
    except OSError:
        return None
    for entry in entries:
        if entry.isdigit() and inode in _socket_inodes(entry):
            comm = _read_proc(os.path.join(PROC, entry, "comm"), 64) or b"?"
            return "%s (pid %s)" % (comm.strip().decode("utf-8", "replace"), entry)
    return None


# --- daemon.json ---------------------------------------------------------------

def read_daemon_json(path):
    """(settings dict, exists, error text or None)."""
    if not os.path.lexists(path):
        return {}, False, None
    raw = read_head(path, DAEMON_JSON_LIMIT + 1)
    if raw is None:
        return {}, True, "not a readable regular file"
    if len(raw) > DAEMON_JSON_LIMIT:
        return {}, True, "larger than %d bytes" % DAEMON_JSON_LIMIT
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        return {}, True, "not valid JSON: %s" % _clip(exc, 120)
    if not isinstance(data, dict):
        return {}, True, "not a JSON object"
    return data, True, None


# --- the daemon's API -----------------------------------------------------------

def query_daemon(docker_host, timeout):
    """What the daemon answers: a dict with reachable, error, info, version, bridge."""
    state = dict(reachable=False, error=None, info={}, version={}, bridge=None, bridge_error=None)
    client = None
    try:
        client = docker.DockerClient(base_url=docker_host, timeout=timeout)
        state["info"] = client.info() or {}
        state["version"] = client.version() or {}
        state["reachable"] = True
        try:
            state["bridge"] = client.api.inspect_network("bridge")
        except Exception as exc:  # the default bridge may not exist (--bridge=none)
            if getattr(exc, "status_code", None) != 404:
                state["bridge_error"] = _clip(exc, 200)
    except Exception as exc:  # any failure to talk to the daemon is a finding, not a traceback
        state["reachable"] = False
        state["error"] = "%s: %s" % (type(exc).__name__, _clip(exc, 250))
    finally:
        if client is not None:
            try:
                client.close()
            except Exception:
                pass
    return state


def _major(version):
    match = re.match(r"\s*v?(\d+)", str(version or ""))
    return int(match.group(1)) if match else None


# --- evaluation -----------------------------------------------------------------

class Settings(object):
    """Effective values with their source: daemon > cmdline > daemon.json > default."""

    def __init__(self, cmdline, file_cfg, warnings, has_config):
        self.cmdline = cmdline
        self.file_cfg = file_cfg
        self.warnings = warnings
        self.has_config = has_config
        self.values = {}

    def configured(self, key):
        if key in self.cmdline:
            return self.cmdline[key], "cmdline"
        if key in self.file_cfg:
            return self.file_cfg[key], "daemon.json"
        return DEFAULTS[key], "default"

    def set_config(self, key, convert=None):
        value, source = self.configured(key)
        if convert is not None:
            value = convert(value)
        self.values[key] = dict(value=value, source=source)
        return value

    def set_daemon(self, key, value, configured=None):
        """Record the daemon's value; warn when the configuration says otherwise."""
        self.values[key] = dict(value=value, source="daemon")
        if configured is None or not self.has_config:
            return value
        config_value, source = configured
        if config_value is not None and config_value != value:
            self.warnings.append(
                "the daemon reports %s = %s but its configuration (%s) says %s: dockerd was started with another "
                "configuration (a changed daemon.json takes effect at its next restart)"
                % (key, _show(value), source, _show(config_value)))
        return value


def _bool_setting(settings, key):
    value, source = settings.configured(key)
    return _go_bool(value), source


def _host_address(host):
    """(scheme, address) of a dockerd -H value; a value without scheme is TCP."""
    host = str(host).strip()
    scheme, sep, address = host.partition("://")
    if not sep:
        return "tcp", host
    return scheme.lower(), address


def _port_of(address, default):
    match = re.search(r":(\d+)$", address.rstrip("/"))
    return int(match.group(1)) if match else default


def evaluate(params, state, cmdline, file_cfg, has_config, listeners, foreign, warnings):
    """Findings and settings from what was gathered (no I/O, so tests can drive it directly)."""
    findings = []
    settings = Settings(cmdline, file_cfg, warnings, has_config)
    info = state["info"] if state["reachable"] else {}
    reachable = state["reachable"]
    security = [str(option) for option in (info.get("SecurityOptions") or [])]
    names = set(option.split(",", 1)[0] for option in security)
    audit_config = reachable or has_config

    # no-new-privileges
    configured = _bool_setting(settings, "no-new-privileges")
    if reachable and ("name=no-new-privileges" in names
                      or (_major(info.get("ServerVersion")) or 0) >= NNP_REPORTED_SINCE):
        nnp = settings.set_daemon("no-new-privileges", "name=no-new-privileges" in names, configured)
    else:
        nnp = settings.set_config("no-new-privileges", _go_bool)
    if audit_config and nnp is not True:
        findings.append(finding("GR033", None, "no-new-privileges", "no-new-privileges = %s (%s)"
                                % (_show(nnp), settings.values["no-new-privileges"]["source"])))

    # icc, from the default bridge network when the daemon has one
    bridge = state.get("bridge") if reachable else None
    options = (bridge or {}).get("Options") or {}
    if reachable and not state.get("bridge_error") and bridge is None:
        icc = settings.set_daemon("icc", None)  # no default bridge: nothing to judge
    elif reachable and "com.docker.network.bridge.enable_icc" in options:
        icc = settings.set_daemon("icc", _go_bool(options["com.docker.network.bridge.enable_icc"]),
                                  _bool_setting(settings, "icc"))
    else:
        icc = settings.set_config("icc", _go_bool)
    if audit_config and icc is not False and icc is not None:
        findings.append(finding("GR034", None, "icc", "icc = %s (%s)" % (_show(icc), settings.values["icc"]["source"])))

    # live-restore
    if reachable and isinstance(info.get("LiveRestoreEnabled"), bool):
        live = settings.set_daemon("live-restore", info["LiveRestoreEnabled"], _bool_setting(settings, "live-restore"))
    else:
        live = settings.set_config("live-restore", _go_bool)
    if audit_config and live is not True:
        findings.append(finding("GR035", None, "live-restore", "live-restore = %s (%s)"
                                % (_show(live), settings.values["live-restore"]["source"])))

    # userland-proxy (configuration only)
    proxy = settings.set_config("userland-proxy", _go_bool)
    if audit_config and proxy is not False:
        findings.append(finding("GR036", None, "userland-proxy", "userland-proxy = %s (%s)"
                                % (_show(proxy), settings.values["userland-proxy"]["source"])))

    # logs
    if reachable and info.get("LoggingDriver"):
        driver = settings.set_daemon("log-driver", str(info["LoggingDriver"]), settings.configured("log-driver"))
    else:
        driver = settings.set_config("log-driver")
    file_opts = file_cfg.get("log-opts") if isinstance(file_cfg.get("log-opts"), dict) else {}
    log_opts = dict((str(k), str(v)) for k, v in file_opts.items())
    log_opts.update(cmdline.get("log-opts", {}))
    source = "cmdline" if cmdline.get("log-opts") else "daemon.json" if file_opts else "default"
    settings.values["log-opts"] = dict(value=_mask_options(log_opts), source=source)
    if audit_config and driver == "json-file" and not str(log_opts.get("max-size", "")).strip():
        findings.append(finding("GR037", None, "log-opts max-size",
                                "log-driver json-file (%s) without max-size in log-opts (%s)"
                                % (settings.values["log-driver"]["source"], source)))

    # user namespaces
    remap_config, remap_source = settings.configured("userns-remap")
    remap_configured = (bool(str(remap_config).strip()) if remap_config is not None else False, remap_source)
    if reachable:
        userns = settings.set_daemon("userns-remap", "name=userns" in names, remap_configured)
        rootless = settings.set_daemon("rootless", "name=rootless" in names)
    else:
        userns = remap_configured[0]
        settings.values["userns-remap"] = dict(value=userns, source=remap_source)
        rootless = None
        settings.values["rootless"] = dict(value=None, source="default")
    if audit_config and not userns and not rootless:
        findings.append(finding("GR041", None, "userns-remap", "userns-remap is off (%s)%s" % (
            settings.values["userns-remap"]["source"],
            "" if remap_source == "default" else '; configured as "%s"' % remap_config)))

    # TCP listeners
    findings.extend(_tcp_findings(settings, state, listeners, foreign, audit_config))

    group_value, group_source = settings.configured("group")
    settings.values["group"] = dict(value=group_value, source=group_source)

    if not reachable:
        findings.append(finding("GR042", None, "docker_host %s" % params["docker_host"],
                                _clip("the Docker API did not answer (%s)%s" % (
                                    state["error"],
                                    "; settings read from the command line and daemon.json" if has_config
                                    else "; no dockerd process and no daemon.json found"))))
    return findings, settings.values


def _tcp_findings(settings, state, listeners, foreign, audit_config):
    hosts_value, hosts_source = settings.configured("hosts")
    hosts = [str(h) for h in (hosts_value if isinstance(hosts_value, list) else [hosts_value])]
    tls, tls_source = _bool_setting(settings, "tls")
    verify, verify_source = _bool_setting(settings, "tlsverify")
    settings.values["hosts"] = dict(value=hosts, source=hosts_source)
    settings.values["tls"] = dict(value=tls, source=tls_source)
    settings.values["tlsverify"] = dict(value=verify, source=verify_source)
    # dockerd turns TLS on when --tlsverify is given at all, and with TLS on
    # and no hosts it listens on tcp://localhost:2376.
    tls_on = tls is True or verify_source != "default"
    unverified = "tlsverify = %s (%s)" % (_show(verify), verify_source)
    by_port = {}

    def note(port, address, text):
        by_port.setdefault(port, [address, []])[1].append(text)

    if state["reachable"]:
        for warning in state["info"].get("Warnings") or []:
            match = _TCP_WARNING.search(str(warning))
            if match:
                address = match.group(2)
                note(_port_of(address, 2375), address, "the daemon reports the API on %s://%s without %s"
                     % (match.group(1), address, match.group(3)))
    if audit_config and verify is not True:
        if not hosts and tls_on:
            note(2376, "localhost:2376", "TLS is on without hosts, so dockerd listens on tcp://localhost:2376; %s"
                 % unverified)
        for host in hosts:
            scheme, address = _host_address(host)
            if scheme == "tcp":
                note(_port_of(address, 2376 if tls_on else 2375), address,
                     "hosts has tcp://%s (%s); %s" % (address, hosts_source, unverified))
        for address, port in listeners:
            note(port, address, "dockerd listens on %s; %s" % (address, unverified))
    for address, port, owner in foreign:
        note(port, address, "%s listens on %s, a Docker API port; its TLS cannot be verified"
             % (owner or "a process other than dockerd", address))
    return [finding("GR040", None, "tcp %s" % address, _clip("; ".join(dict.fromkeys(texts))))
            for address, texts in by_port.values()]


# --- socket and group -----------------------------------------------------------

# Through this module's own pwd and grp (not host_text's), which the unit tests
# replace with fake user and group databases.
def _user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def check_socket(path, docker_group):
    """(socket summary, findings, gid of a group other than root/docker_group that may connect)."""
    summary = dict(path=path, exists=False, is_socket=False, mode=None, owner=None, group=None)
    try:
        st = os.stat(path)
    except OSError:
        return summary, [], None
    mode = stat.S_IMODE(st.st_mode)
    summary.update(exists=True, is_socket=stat.S_ISSOCK(st.st_mode), mode="%04o" % mode,
                   owner=_user_name(st.st_uid), group=_group_name(st.st_gid))
    if not summary["is_socket"]:
        return summary, [], None
    problems = []
    if st.st_uid != 0:
        problems.append("owner %s is not root" % summary["owner"])
    if mode & ~0o660:
        problems.append("mode is more open than 0660")
    other_group = None
    if mode & 0o060 and st.st_gid != 0 and summary["group"] != docker_group:
        problems.append("group %s (not root or %s) may connect" % (summary["group"], docker_group))
        other_group = st.st_gid
    if not problems:
        return summary, [], other_group
    where = path if os.path.realpath(path) == path else "%s (%s)" % (path, os.path.realpath(path))
    return summary, [finding("GR038", None, path, "%s mode %s owner %s:%s: %s" % (
        where, summary["mode"], summary["owner"], summary["group"], "; ".join(problems)))], other_group


def group_members(group):
    """(exists, members) of a group: its member list and the users whose primary group it is."""
    try:
        entry = grp.getgrnam(group) if isinstance(group, str) else grp.getgrgid(group)
    except KeyError:
        return False, []
    members = list(entry.gr_mem)
    try:
        members.extend(user.pw_name for user in pwd.getpwall() if user.pw_gid == entry.gr_gid)
    except OSError:
        pass
    return True, list(dict.fromkeys(members))


def _is_root(name):
    try:
        return pwd.getpwnam(name).pw_uid == 0
    except KeyError:
        return False


def check_groups(docker_group, other_gid, job_user):
    exists, members = group_members(docker_group)
    summary = dict(name=docker_group, exists=exists, members=members, job_user_member=job_user in members)
    findings = []
    groups = [(docker_group, members)]
    if other_gid is not None:
        groups.append((_group_name(other_gid), group_members(other_gid)[1]))
    for name, names in groups:
        risky = [member for member in names if not _is_root(member)]
        if not risky:
            continue
        text = "members: %s" % ", ".join(risky)
        if job_user in risky:
            text += "; the job user %s is one of them, so its shell jobs get root on the host" % job_user
        findings.append(finding("GR039", None, "group %s" % name, _clip(text, 600)))
    return summary, findings


# --- module -------------------------------------------------------------------------

def _is_local(docker_host):
    host = str(docker_host)
    if host.startswith(("unix://", "/")):
        return True
    scheme, address = _host_address(host)
    return scheme in ("tcp", "http", "https") and re.match(r"^(127\.|localhost|\[::1\])", address) is not None


def audit(params):
    warnings = []
    if not _is_local(params["docker_host"]):
        warnings.append("docker_host %s is not on this host: daemon.json, the dockerd process, the socket and the "
                        "groups are read on the managed host and may describe another daemon" % params["docker_host"])
    pid, argv = find_dockerd(params["socket_path"], warnings)
    cmdline = parse_dockerd_args(argv[1:]) if argv else {}
    path = params["daemon_json"] or cmdline.get("config-file") or DEFAULT_DAEMON_JSON
    file_cfg, exists, error = read_daemon_json(path)
    if error:
        warnings.append("%s ignored: %s" % (path, error))
    state = query_daemon(params["docker_host"], params["timeout"])

    listeners = []
    dockerd_inodes = set()
    if pid is not None:
        dockerd_inodes = _socket_inodes(pid)
        listeners = [(address, port) for address, port, inode in
                     tcp_listeners(os.path.join(PROC, str(pid), "net")) if inode in dockerd_inodes]
    foreign = [(address, port, _process_holding(inode)) for address, port, inode in
               tcp_listeners(os.path.join(PROC, "net"))
               if port in DOCKER_API_PORTS and inode not in dockerd_inodes]

    findings, settings = evaluate(params, state, cmdline, file_cfg, pid is not None or exists,
                                  listeners, foreign, warnings)
    socket_summary, socket_findings, other_gid = check_socket(params["socket_path"], params["docker_group"])
    group_summary, group_findings = check_groups(params["docker_group"], other_gid, params["job_user"])
    findings.extend(socket_findings)
    findings.extend(group_findings)
    findings.sort(key=lambda item: item["id"])

    info = state["info"] if state["reachable"] else {}
    version = state["version"] if state["reachable"] else {}
    return dict(
        changed=False,
        findings=findings,
        settings=settings,
        daemon=dict(
            reachable=state["reachable"],
            error=state["error"],
            server_version=info.get("ServerVersion") or version.get("Version"),
            api_version=version.get("ApiVersion"),
            security_options=list(info.get("SecurityOptions") or []),
            tcp_warnings=[_clip(w, 200) for w in (info.get("Warnings") or []) if _TCP_WARNING.search(str(w))],
        ),
        dockerd=dict(
            pid=pid,
            argv=[_mask_arg(arg) for arg in argv] if argv else None,
            tcp_listeners=[address for address, _port in listeners],
        ),
        daemon_json=dict(path=path, exists=exists, error=error),
        socket=socket_summary,
        docker_group=group_summary,
    ), warnings


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
            socket_path=dict(type="path", default="/var/run/docker.sock"),
            daemon_json=dict(type="path"),
            docker_group=dict(type="str", default="docker"),
            job_user=dict(type="str", default="gitlab-runner"),
            timeout=dict(type="int", default=10),
            skip_without_socket=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    if module.params["skip_without_socket"] and not os.path.lexists(module.params["socket_path"]):
        # Ansible reports a result with skipped=true as a skipped task.
        module.exit_json(skipped=True, changed=False,
                         msg="no Docker socket at %s: no Docker engine to audit" % module.params["socket_path"])
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"), exception=DOCKER_IMPORT_ERROR)
    if module.params["timeout"] < 1:
        module.fail_json(msg="timeout must be at least 1 second, got %d" % module.params["timeout"])
    try:
        result, warnings = audit(module.params)
    except Exception as exc:
        module.fail_json(msg="docker_daemon_audit failed: %s: %s" % (type(exc).__name__, _clip(exc, 300)))
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
