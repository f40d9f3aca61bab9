"""The policy catalog: the one source of truth for what this collection
considers insecure in a GitLab Runner host, and the checks that find it.

Three consumers read it and must never disagree:

* the role's input gate (``hardened.gitlab_runner.runner_policy_gate`` filter)
  evaluates the configuration the user *wants*, on the controller, before any
  task touches the host, and refuses what is not acknowledged;
* the audit modules evaluate what is *actually* in a host's ``config.toml``
  with the same ``evaluate_document()``;
* the README's policy table is generated from ``CATALOG``
  (``scripts/policy_table.py``).

Findings never carry a token: evidence is built from names, keys and
non-secret values only.  Plain Python (3.9+), no Ansible imports, so it runs
on managed hosts too.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections import namedtuple
from collections.abc import Mapping

from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config_schema import (
    NEWEST,
    format_key_path,
    unknown_keys,
)

SEVERITIES = ("info", "low", "medium", "high", "critical")

# enforcement:
#   refuse - the gate refuses it unless the runner carries the acknowledgement
#            named in `ack` (never, when `ack` is None);
#   warn   - the gate lets it through with a warning;
#   audit  - a property of the host, checked by the audit modules only.
# checked_by: the audit modules that evaluate it on a host (an audit report
#   marks a check none of them ran for as not checked, never as passed).
Policy = namedtuple("Policy", "id severity title guidance ack enforcement checked_by")

# The audit modules, by what they look at.
_CONFIG = ("runner_config_audit",)      # config.toml (evaluate_document; GR022 compares its hashes across hosts)
_HOST = ("runner_host_audit",)          # files, the job user, the service, the installed version
_DOCKER = ("docker_daemon_audit",)      # the Docker engine under docker-executor jobs
_NETWORK = ("network_isolation_probe",)  # connection attempts from a job container
_JOB = ("runner_job_probe",)            # what a real job container gets
AUDIT_MODULES = _CONFIG + _HOST + _DOCKER + _NETWORK + _JOB

_SEC = "GitLab Runner docs, Security of running jobs"
_K8S = "GitLab Runner docs, Kubernetes executor (security contexts, volumes, pod spec)"
_CIS = "CIS Docker Benchmark"

_POLICIES = (
    Policy("GR001", "high", "Shell executor runs jobs with the runner host's permissions",
           _SEC + ": Usage of Shell executor", "trusted", "refuse", _CONFIG),
    Policy("GR002", "critical", "Job containers run privileged (docker privileged, kubernetes privileged)",
           _SEC + ": Usage of Docker executor; " + _K8S, "allow_privileged", "refuse", _CONFIG + _JOB),
    Policy("GR003", "critical", "Service containers run privileged",
           _SEC + ": Usage of Docker executor; " + _K8S, "allow_privileged", "refuse", _CONFIG + _JOB),
    Policy("GR004", "high", "Images or services are allowed to run privileged",
           _SEC + ": Usage of Docker executor", "allow_privileged", "refuse", _CONFIG),
    Policy("GR005", "medium", "Job containers get extra capabilities (cap_add)",
           _SEC + ": Usage of Docker executor (cap_add/cap_drop)", "allow_capabilities", "refuse", _CONFIG),
    Policy("GR006", "high", "Job containers keep SETUID, SETGID, NET_RAW or MKNOD (not dropped, or added back)",
           _SEC + ": Usage of Docker executor (drop SETUID and SETGID)", None, "refuse", _CONFIG + _JOB),
    Policy("GR007", "medium", "Job containers may gain privileges (no no-new-privileges / allowPrivilegeEscalation)",
           _SEC + ": Usage of Docker executor; CIS Docker Benchmark 5.25", None, "refuse", _CONFIG + _JOB),
    Policy("GR008", "critical", "Job or service containers share a host namespace or run unconfined",
           _SEC + ": Usage of Docker executor; CIS Docker Benchmark 5.9, 5.15, 5.16, 5.21, 5.30", None, "refuse", _CONFIG + _JOB),
    Policy("GR009", "critical", "A container runtime socket, or a directory holding one, is mounted into jobs",
           _SEC + ": Systems with Docker installed; CIS Docker Benchmark 5.31", None, "refuse", _CONFIG + _JOB),
    Policy("GR010", "high", "A host path or a volume shared between jobs is mounted into jobs",
           _SEC + ": Usage of Docker executor; CIS Docker Benchmark 5.5", "allow_host_volumes", "refuse", _CONFIG),
    Policy("GR011", "high", "Host devices or GPUs are passed into job or service containers",
           _SEC + ": Usage of Docker executor; CIS Docker Benchmark 5.17", "allow_privileged", "refuse", _CONFIG + _JOB),
    Policy("GR012", "high", "Pull policy if-not-present or never lets jobs use other projects' private images",
           _SEC + ": Usage of private Docker images with if-not-present pull policy", "trusted", "refuse", _CONFIG),
    Policy("GR013", "high", "SSH connections do not check the host key (ssh, virtualbox, parallels: MITM)",
           _SEC + ": Usage of SSH executor", None, "refuse", _CONFIG),
    Policy("GR014", "high", "Autoscaled machines are reused for more than one job",
           _SEC + ": Network Segmentation / Cloning a runner (MaxBuilds = 1)", None, "refuse", _CONFIG),
    Policy("GR015", "high", "config.toml holds a key GitLab Runner does not recognize (silently ignored)",
           "GitLab Runner docs, Advanced configuration; the key list of the runner's release line",
           "allow_unknown_keys", "refuse", _CONFIG),
    Policy("GR016", "medium", "Docker jobs share a network (FF_NETWORK_PER_BUILD off, or network_mode set)",
           _SEC + ": Network Segmentation", None, "warn", _CONFIG),
    Policy("GR017", "low", "Job files are not cleaned up after jobs (FF_ENABLE_JOB_CLEANUP off)",
           _SEC + ": GIT_STRATEGY fetch on shared hosts", None, "warn", _CONFIG),
    Policy("GR018", "medium", "Metrics endpoint listens beyond loopback",
           "GitLab Runner docs, Monitoring (listen_address)", None, "warn", _CONFIG),
    Policy("GR019", "medium", "Interactive web terminal session server is enabled",
           "GitLab Runner docs, Advanced configuration ([session_server])", None, "warn", _CONFIG),
    Policy("GR020", "high", "config.toml or /etc/gitlab-runner is readable by others than root",
           _SEC + ": Cloning a runner", None, "audit", _HOST),
    Policy("GR021", "high", "The job user has sudo rights or is in a privileged group",
           _SEC + ": Usage of Shell executor; Systems with Docker installed", None, "audit", _HOST),
    Policy("GR022", "high", "The same runner token or system id is used on two hosts (cloned runner)",
           _SEC + ": Cloning a runner", None, "audit", _CONFIG),
    Policy("GR023", "high", "config.toml is missing, unreadable or not valid TOML",
           "GitLab Runner docs, Advanced configuration", None, "audit", _CONFIG),
    Policy("GR024", "medium", "The job user's home or builds directory is open to other users",
           _SEC + ": Usage of Shell executor", None, "audit", _HOST),
    Policy("GR025", "high", "A private SSH key is readable by the job user",
           _SEC + ": Usage of Shell executor", None, "audit", _HOST),
    Policy("GR026", "high", "The runner service runs shell jobs as root (no --user)",
           _SEC + ": Usage of Shell executor", None, "audit", _HOST),
    Policy("GR027", "info", "Installed GitLab Runner version",
           "GitLab Runner docs, Install GitLab Runner", None, "audit", _HOST + _CONFIG),
    Policy("GR028", "critical", "Jobs get capabilities or host mounts as strong as privileged (ALL, SYS_ADMIN, a bind of /)",
           _SEC + ": Usage of Docker executor; CIS Docker Benchmark 5.3, 5.5", "allow_privileged", "refuse", _CONFIG + _JOB),
    Policy("GR029", "medium", "Service containers may gain privileges (services_security_opt without no-new-privileges)",
           _SEC + ": Usage of Docker executor (services get no cap_drop); CIS Docker Benchmark 5.25", None, "refuse", _CONFIG + _JOB),
    Policy("GR030", "medium", "Kubernetes job, helper or service containers are set to run as root (run_as_user 0)",
           _K8S + "; " + _SEC + ": Usage of Docker executor (non-root user)", "allow_root", "refuse", _CONFIG),
    Policy("GR031", "high", "A Kubernetes pod spec patch cannot be verified (patch_path, or not valid JSON/YAML)",
           _K8S + " (pod_spec)", "allow_privileged", "refuse", _CONFIG),
    Policy("GR032", "high", "Jobs may pick their Kubernetes namespace, service account or API token, or get the token mounted",
           _K8S + " (overwrite settings)", "trusted", "refuse", _CONFIG),
    # The Docker engine under docker-executor jobs (docker_daemon_audit).
    # Item numbers are those of CIS Docker Benchmark v1.6.0.
    Policy("GR033", "high", "Docker daemon does not default containers to no-new-privileges",
           _CIS + " 2.14; " + _SEC + ": Usage of Docker executor "
           "(the daemon default is the only one that also reaches service containers)", None, "audit", _DOCKER),
    Policy("GR034", "medium", "Containers on Docker's default bridge can reach each other (icc on)",
           _CIS + " 2.2", None, "audit", _DOCKER),
    Policy("GR035", "low", "Docker live-restore is off (restarting dockerd stops every job container)",
           _CIS + " 2.15", None, "audit", _DOCKER),
    Policy("GR036", "low", "Docker userland-proxy is on",
           _CIS + " 2.16", None, "audit", _DOCKER),
    Policy("GR037", "low", "Container logs are not rotated (json-file log driver without max-size)",
           "Docker docs, JSON File logging driver (max-size, max-file); no CIS Docker Benchmark item", None, "audit", _DOCKER),
    Policy("GR038", "high", "Docker socket is open to others than root and the docker group",
           _CIS + " 3.15, 3.16", None, "audit", _DOCKER),
    Policy("GR039", "high", "Users other than root are in the docker group (root-equivalent)",
           _CIS + " 1.1.2; " + _SEC + ": Systems with Docker installed", None, "audit", _DOCKER),
    Policy("GR040", "critical", "Docker API listens on TCP without TLS client verification",
           _CIS + " 2.7; Docker docs, Protect the Docker daemon socket", None, "audit", _DOCKER),
    Policy("GR041", "low", "Docker user namespace remapping is off (optional: it has trade-offs)",
           _CIS + " 2.9; Docker docs, Isolate containers with a user namespace", None, "audit", _DOCKER),
    Policy("GR042", "high", "Docker daemon cannot be reached, its effective settings are unknown",
           _CIS + " section 2 (daemon configuration) cannot be checked", None, "audit", _DOCKER),
    # Network segmentation, proven with real connection attempts (network_isolation_probe).
    Policy("GR043", "critical", "Jobs can reach a cloud metadata endpoint",
           _SEC + ": Network segmentation; GitLab Runner docs, Security for self-managed runners", None, "audit", _NETWORK),
    Policy("GR044", "high", "Jobs can reach another runner host or a blocked private range",
           _SEC + ": Network segmentation; GitLab Runner docs, Security for self-managed runners", None, "audit", _NETWORK),
    Policy("GR045", "medium", "Jobs cannot reach the GitLab instance or DNS (positive control failed)",
           _SEC + ": Network segmentation (the probe cannot prove a block without it)", None, "audit", _NETWORK),
    # The SSH connections of the ssh, virtualbox and parallels executors, and the VMs jobs get.
    Policy("GR046", "high", "SSH host keys are not pinned: no known_hosts_file, so the runner user's "
           "~/.ssh/known_hosts decides (ssh, virtualbox, parallels)",
           _SEC + ": Usage of SSH executor", None, "refuse", _CONFIG),
    Policy("GR047", "high", "An SSH identity_file is open to others than root, or a known_hosts_file is missing "
           "or others than root can change it",
           _SEC + ": Usage of SSH executor", None, "audit", _CONFIG),
    Policy("GR048", "high", "Jobs may pick another VM on the host as their image (virtualbox/parallels "
           "allowed_images entries that are not whole VM names)",
           _SEC + ": Usage of Parallels executor; GitLab Runner docs, VirtualBox and Parallels executors "
           "(allowed_images)", "trusted", "refuse", _CONFIG),
)

CATALOG = dict((p.id, p) for p in _POLICIES)

# Capabilities every job container must drop.
REQUIRED_CAP_DROP = ("SETUID", "SETGID", "NET_RAW", "MKNOD")

# Docker's default capability set (moby oci/caps DefaultCapabilities); containerd
# and CRI-O start Kubernetes containers with the same list.
DEFAULT_CAPS = frozenset(("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
                          "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"))

# Every capability the kernel knows (capabilities(7)), for cap_add = ["ALL"].
ALL_CAPS = frozenset((
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE"))

# Capabilities that break out of a container about as well as `privileged`:
# mount and namespace control, kernel modules, raw I/O, reading any host file
# by handle, tracing other processes, loading eBPF, changing the LSM policy.
PRIVILEGED_EQUIVALENT_CAPS = frozenset(("ALL", "SYS_ADMIN", "SYS_MODULE", "SYS_RAWIO", "DAC_READ_SEARCH",
                                        "SYS_PTRACE", "BPF", "PERFMON", "MAC_ADMIN", "MAC_OVERRIDE", "SYS_BOOT"))

# Unix sockets of container runtimes and of services that control the host,
# with /var/run written as /run (it is a symlink to it on every supported OS).
# A mount of any of these, or of a directory above one, hands the job the host.
RUNTIME_SOCKETS = (
    "/run/docker.sock", "/run/docker/containerd/containerd.sock", "/run/containerd/containerd.sock",
    "/run/podman/podman.sock", "/run/crio/crio.sock", "/run/cri-dockerd.sock", "/run/dockershim.sock",
    "/run/buildkit/buildkitd.sock", "/run/k3s/containerd/containerd.sock", "/run/snap.docker/docker.sock",
    "/var/snap/docker/common/run/docker.sock", "/run/systemd/private", "/run/dbus/system_bus_socket",
)
# Directories whose every entry is a user's runtime directory (podman, rootless docker).
_RUNTIME_SOCKET_TREES = ("/run/user",)

# Host paths that give control of the host when mounted, about as well as
# `privileged`. A mount of one of them, of anything below one, or of a directory
# above one (a bind of / holds them all) counts.
HOST_CONTROL_TREES = (
    "/proc", "/sys", "/dev", "/boot", "/root", "/etc/gitlab-runner", "/etc/sudoers", "/etc/sudoers.d",
    "/etc/shadow", "/etc/passwd", "/etc/cron.d", "/etc/systemd", "/etc/ssh", "/var/spool/cron",
    "/var/lib/docker", "/var/lib/containerd", "/var/lib/kubelet", "/usr", "/bin", "/sbin", "/lib", "/lib64",
)
# Directories that are dangerous as a whole but have harmless parts (/etc/ssl/certs).
HOST_CONTROL_DIRS = ("/", "/etc", "/var", "/var/lib")

_LOOPBACK = re.compile(r"^(127\.[0-9.]+|localhost|\[::1\])(:[0-9]+)?$")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:([\\/]|$)")
_WINDOWS_PIPE = re.compile(r"^(\\\\|//)[.?](\\|/)pipe(\\|/)", re.IGNORECASE)
# Go's strconv.ParseBool, which Docker uses for no-new-privileges.
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
# SELinux types that are not confined.
_SELINUX_UNCONFINED = re.compile(r"(^|:)(spc_t|unconfined_t|container_runtime_t|kernel_t|.*unconfined.*)$",
                                 re.IGNORECASE)
# seccomp default actions that let every unlisted syscall through.
_SECCOMP_ALLOWING = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY")


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        return [value]
    if isinstance(value, Mapping):
        return list(value.values())
    try:
        return list(value)
    except TypeError:
        return [value]


def _get(table, key, default=None):
    """``table[key]`` as GitLab Runner reads it.

    Its TOML decoder takes a key that matches a struct field exactly, else one
    that matches it case-insensitively (Go strings.EqualFold), so
    ``Privileged = true`` is honoured; a check that looked up only the canonical
    spelling would miss it.
    """
    if not isinstance(table, Mapping):
        return default
    folded = key.casefold()
    variants = [(name, value) for name, value in table.items()
                if isinstance(name, str) and name.casefold() == folded]
    if not variants:
        return default
    if len(variants) == 1:
        return variants[0][1]
    # Two spellings of one key: which one GitLab Runner takes is unspecified
    # (GR015 refuses the odd spelling anyway), so judge the one that is set.
    for _spelling, value in variants:
        if value not in (None, False, "", [], {}):
            return value
    return table.get(key, variants[0][1])


def _table(table, key):
    value = _get(table, key)
    return value if isinstance(value, Mapping) else {}


def _set(value):
    """A boolean setting that is anything but absent or false.

    GitLab Runner refuses a config whose boolean holds another type, so only
    ``false`` (or nothing) is known to be off; a string or number is judged on.
    """
    return value is not None and value is not False


def _is_one(value):
    return isinstance(value, int) and not isinstance(value, bool) and value == 1


def _variants(table, key):
    """Every value ``table`` holds for ``key``, in any spelling.

    GitLab Runner's decoder loads each spelling into the same field, one
    after the other, in an order nobody chose: any of them may be the one
    that is in effect.
    """
    if not isinstance(table, Mapping):
        return []
    folded = key.casefold()
    return [value for name, value in table.items() if isinstance(name, str) and name.casefold() == folded]


def _cap(name):
    """Capability name as Docker normalizes it: upper case, without CAP_."""
    text = str(name).strip().upper()
    return text[4:] if text.startswith("CAP_") else text


def _caps(values):
    return [_cap(c) for c in _as_list(values) if str(c).strip()]


def _show(values):
    return "[%s]" % ", ".join(str(v) for v in _as_list(values))


def finding(policy_id, runner, setting, evidence):
    """One finding for catalog policy ``policy_id``.

    ``runner`` is the runner's name (or None for host/global findings),
    ``setting`` where the problem is (a config key or a file path) and
    ``evidence`` a short text that must never contain a secret.  Raises
    KeyError for an id that is not in ``CATALOG``.
    """
    policy = CATALOG[policy_id]
    return dict((
        ("id", policy.id),
        ("severity", policy.severity),
        ("title", policy.title),
        ("guidance", policy.guidance),
        ("runner", runner),
        ("setting", setting),
        ("evidence", evidence),
        ("ack", policy.ack),
        ("enforcement", policy.enforcement),
    ))


# --- capabilities ------------------------------------------------------------------

def docker_effective_caps(cap_add, cap_drop):
    """The capabilities Docker gives a non-privileged container.

    Mirrors moby's TweakCapabilities: with ALL added, every capability but the
    drops; with ALL dropped, only the adds; otherwise the defaults minus the
    drops plus the adds, so an add gives back a capability the drops removed.
    """
    adds, drops = set(_caps(cap_add)), set(_caps(cap_drop))
    if "ALL" in adds:
        return ALL_CAPS - drops
    if "ALL" in drops:
        return adds
    return (DEFAULT_CAPS - drops) | adds


def kubernetes_effective_caps(adds, drops):
    """The capabilities containerd/CRI-O give a Kubernetes container.

    ALL in add starts from every capability, ALL in drop from none; then the
    adds are added and the drops removed, so a drop always wins over an add.
    """
    adds, drops = set(_caps(adds)), set(_caps(drops))
    caps = set(ALL_CAPS) if "ALL" in adds else set(DEFAULT_CAPS)
    if "ALL" in drops:
        caps = set()
    return (caps | (adds - {"ALL"})) - drops


def _cap_findings(name, where, added, effective):
    out = []
    strong = sorted(c for c in set(_caps(added)) if c in PRIVILEGED_EQUIVALENT_CAPS and (c == "ALL" or c in effective))
    if strong:
        out.append(finding("GR028", name, where, "adds %s" % ", ".join(strong)))
    if _caps(added):
        out.append(finding("GR005", name, where, "adds %s" % _show(added)))
    kept = [c for c in REQUIRED_CAP_DROP if c in effective]
    if kept:
        out.append(finding("GR006", name, where, "effective capabilities keep %s" % ", ".join(kept)))
    return out


# --- docker security options -----------------------------------------------------------

def _seccomp_allows_everything(profile):
    text = str(profile).strip()
    if text.lower() == "unconfined":
        return True
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return False  # Docker refuses to start the container
        action = str(data.get("defaultAction", "")) if isinstance(data, Mapping) else ""
        return action.upper() in _SECCOMP_ALLOWING
    # A path or a profile name: Docker's API takes the profile inline, so what
    # it would allow cannot be verified from the config.
    return text not in ("", "builtin", "default")


def security_opt_state(options):
    """What Docker makes of a security_opt list (moby parseSecurityOpt).

    Returns (no_new_privileges, [unconfined settings]): for single-valued kinds
    the last entry wins; label options add up.
    """
    nnp = False
    last = {}
    unconfined = []
    for raw in _as_list(options):
        opt = str(raw).strip()
        if opt.lower() == "no-new-privileges":
            nnp = True
            continue
        if opt.lower() == "disable":
            unconfined.append(opt)
            continue
        sep = "=" if "=" in opt else ":"
        key, _sep, value = opt.partition(sep)
        key = key.strip().lower()
        if key == "no-new-privileges":
            nnp = value.strip() in _GO_TRUE
        elif key in ("seccomp", "apparmor", "systempaths", "writable-cgroups"):
            last[key] = (opt, value.strip())
        elif key == "label":
            if value.strip().lower() == "disable" or _SELINUX_UNCONFINED.search(value.strip()):
                unconfined.append(opt)
    for key, (opt, value) in last.items():
        if ((key == "seccomp" and _seccomp_allows_everything(value))
                or (key == "apparmor" and value.lower() == "unconfined")
                or (key == "systempaths" and value.lower() == "unconfined")
                or (key == "writable-cgroups" and value.strip() in _GO_TRUE)):
            unconfined.append(opt if len(opt) <= 80 else opt[:77] + "...")
    return nnp, unconfined


# --- mounts ------------------------------------------------------------------------------

def _norm_path(path):
    text = posixpath.normpath(str(path).strip())
    if text.startswith("//"):
        text = "/" + text.lstrip("/")
    if text == "/var/run" or text.startswith("/var/run/"):
        text = "/run" + text[len("/var/run"):]
    return text


def _under(path, tree):
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def _holds(path, target):
    """``path`` is ``target`` or a directory above it."""
    return _under(target, path)


def _unix_socket(host):
    host = str(host or "")
    return _norm_path(host[len("unix://"):]) if host.startswith("unix://") else None


def host_mount_findings(name, where, source, label, extra_sockets=()):
    """Findings for a host path mounted into jobs (``source`` as written)."""
    text = str(source).strip()
    if _WINDOWS_PIPE.match(text) or text.lower().startswith("npipe:"):
        return [finding("GR009", name, where, "%s (a Windows named pipe)" % label)]
    if _WINDOWS_DRIVE.match(text):
        rest = text[2:].strip("\\/")
        if not rest:
            return [finding("GR028", name, where, "%s (a whole drive)" % label),
                    finding("GR009", name, where, "%s (holds the Docker engine)" % label)]
        return [finding("GR010", name, where, label)]
    path = _norm_path(text)
    out = []
    sockets = tuple(RUNTIME_SOCKETS) + tuple(s for s in extra_sockets if s)
    if (path.endswith(".sock") or path.endswith(".socket")
            or any(_holds(path, s) for s in sockets)
            or any(_holds(path, t) or _under(path, t) for t in _RUNTIME_SOCKET_TREES)):
        out.append(finding("GR009", name, where, label))
    if path in HOST_CONTROL_DIRS or any(_under(path, t) or _holds(path, t) for t in HOST_CONTROL_TREES):
        out.append(finding("GR028", name, where, "%s (gives control of the host)" % label))
    if not out:
        out.append(finding("GR010", name, where, label))
    return out


def docker_volume_source(spec):
    """Host side of a docker volume spec: (kind, source).

    kind is "host" for a host path or pipe, "named" for a named volume, None for
    a container-only (anonymous) volume such as "/cache".
    """
    text = str(spec).strip()
    if _WINDOWS_PIPE.match(text):
        return "host", text
    drive = re.match(r"^([A-Za-z]:[^:]*):(.+)$", text)
    if drive:
        return "host", drive.group(1)
    if _WINDOWS_DRIVE.match(text):
        return None, None  # container path on Windows
    parts = text.split(":")
    if len(parts) < 2:
        return None, None
    source = parts[0]
    if source.startswith("/") or source.startswith("\\"):
        return "host", source
    return "named", source


def _docker_mounts(name, docker):
    out = []
    where = "[runners.docker]"
    extra = (_unix_socket(_get(docker, "host")),)
    for volume in _as_list(_get(docker, "volumes")):
        kind, source = docker_volume_source(volume)
        if kind == "host":
            out.extend(host_mount_findings(name, where + " volumes", source, "volume %s" % volume, extra))
        elif kind == "named":
            out.append(finding("GR010", name, where + " volumes",
                               "volume %s (a named volume every job on this runner shares)" % volume))
    for source in _as_list(_get(docker, "volumes_from")):
        out.append(finding("GR010", name, where + " volumes_from",
                           "volumes_from %s (another container's volumes)" % source))
    ops = _table(docker, "volume_driver_ops")
    driver = str(_get(docker, "volume_driver") or "local")
    if ops:
        device = _get(ops, "device")
        binds = "bind" in str(_get(ops, "o") or "").split(",") or str(_get(ops, "type") or "") == "none"
        label = "volume_driver_ops %s" % ", ".join("%s=%s" % (k, v) for k, v in sorted(ops.items()))
        if binds and device:
            out.extend(host_mount_findings(name, where + " volume_driver_ops", device, label, extra))
        else:
            out.append(finding("GR010", name, where + " volume_driver_ops",
                               "%s (the runner's volumes live on storage outside the job)" % label))
    elif driver != "local":
        out.append(finding("GR010", name, where + " volume_driver",
                           "volume_driver = %s (decides where the runner's volumes live)" % driver))
    return out


# --- executors ---------------------------------------------------------------------------

def _pull_findings(name, where, section):
    policies = _as_list(_get(section, "pull_policy")) + _as_list(_get(section, "allowed_pull_policies"))
    cached = [p for p in policies if re.sub(r"[-_\s]", "", str(p)).lower() in ("ifnotpresent", "never")]
    if cached:
        return [finding("GR012", name, where + " pull_policy",
                        "pull_policy = %s, allowed_pull_policies = %s"
                        % (_show(_get(section, "pull_policy")), _show(_get(section, "allowed_pull_policies"))))]
    return []


def _docker_findings(name, docker, flags):
    out = []
    where = "[runners.docker]"
    privileged = _get(docker, "privileged")
    if _set(privileged):
        out.append(finding("GR002", name, where + " privileged", "privileged = %s" % privileged))
    services_privileged = _get(docker, "services_privileged")
    # Unset, services follow `privileged`.
    if _set(services_privileged) or (services_privileged is None and _set(privileged)):
        out.append(finding("GR003", name, where + " services_privileged",
                           "services_privileged = %s" % (services_privileged if services_privileged is not None
                                                         else "unset (follows privileged)")))
    for key in ("allowed_privileged_images", "allowed_privileged_services"):
        if _as_list(_get(docker, key)):
            out.append(finding("GR004", name, "%s %s" % (where, key), "%s = %s" % (key, _show(_get(docker, key)))))
    cap_add, cap_drop = _get(docker, "cap_add"), _get(docker, "cap_drop")
    out.extend(_cap_findings(name, where + " cap_add/cap_drop", cap_add,
                             docker_effective_caps(cap_add, cap_drop)))
    for key, missing in (("security_opt", "GR007"), ("services_security_opt", "GR029")):
        options = _get(docker, key)
        nnp, unconfined = security_opt_state(options)
        if not nnp:
            out.append(finding(missing, name, "%s %s" % (where, key), "%s = %s (no-new-privileges is not on)"
                               % (key, _show(options) if options is not None else "unset")))
        for opt in unconfined:
            out.append(finding("GR008", name, "%s %s" % (where, key), "%s contains %s" % (key, opt)))
    for key in ("network_mode", "pid_mode", "ipcmode", "userns_mode"):
        value = str(_get(docker, key) or "").strip()
        if value.lower() == "host" or value.lower().startswith("container:"):
            out.append(finding("GR008", name, "%s %s" % (where, key), '%s = "%s"' % (key, value)))
    out.extend(_docker_mounts(name, docker))
    for key in ("devices", "services_devices", "device_cgroup_rules", "gpus", "service_gpus"):
        value = _get(docker, key)
        if value not in (None, "", [], {}):
            out.append(finding("GR011", name, "%s %s" % (where, key), "%s = %s" % (key, _show(value))))
    out.extend(_pull_findings(name, where, docker))
    network_mode = str(_get(docker, "network_mode") or "").strip()
    if network_mode:
        out.append(finding("GR016", name, where + " network_mode",
                           'network_mode = "%s" (replaces the per-build network)' % network_mode))
    elif not _truthy_flag(flags.get("FF_NETWORK_PER_BUILD")):
        out.append(finding("GR016", name, "[runners.feature_flags] FF_NETWORK_PER_BUILD", "not enabled"))
    return out


def _truthy_flag(value):
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "t"))


_K8S_CONTEXTS = (
    # (config key, what it covers, policy for privileged, for escalation)
    ("build_container_security_context", "build", "GR002", "GR007"),
    ("helper_container_security_context", "helper", "GR002", "GR007"),
    ("service_container_security_context", "service", "GR003", "GR029"),
    ("init_permissions_container_security_context", "init-permissions", "GR002", "GR007"),
)


def _walk(node, path=()):
    """Every (key path, value) pair in nested mappings and lists."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield path + (str(key),), value
            yield from _walk(value, path + (str(key),))
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value, path)


def _parse_patch(text):
    """A pod spec patch as data, or None when it cannot be read here."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        import yaml  # PyYAML: on every controller; optional on audited hosts
    except ImportError:
        return None
    try:
        return yaml.safe_load(text)
    except Exception:  # any YAML error: unverifiable
        return None


def _pod_spec_findings(name, patch_entry, index):
    where = "[[runners.kubernetes.pod_spec]] %s" % (_get(patch_entry, "name") or "#%d" % index)
    if _get(patch_entry, "patch_path"):
        return [finding("GR031", name, where + " patch_path",
                        "patch_path = %s (read by the runner at job time; not verifiable here)"
                        % _get(patch_entry, "patch_path"))]
    data = _parse_patch(str(_get(patch_entry, "patch") or ""))
    if not isinstance(data, (Mapping, list)):
        return [finding("GR031", name, where + " patch", "the patch is not valid JSON or YAML")]
    if isinstance(data, list):  # JSON patch: each operation's path ends in the key it sets
        data = [{str(op.get("path", "")).rstrip("/").rsplit("/", maxsplit=1)[-1]: op.get("value")}
                for op in data if isinstance(op, Mapping)]
    out = []
    for path, value in _walk(data):
        key = path[-1].lower()
        text = "%s = %s" % (".".join(path), json.dumps(value) if not isinstance(value, str) else value)
        if key in ("hostnetwork", "hostpid", "hostipc") and _set(value):
            out.append(finding("GR008", name, where + " patch", text))
        elif key == "hostusers" and value is not None and value is not True:
            out.append(finding("GR008", name, where + " patch", text))
        elif key == "hostpath":
            source = value.get("path") if isinstance(value, Mapping) else value
            out.extend(host_mount_findings(name, where + " patch", source, text))
        elif key == "privileged" and _set(value):
            out.append(finding("GR002", name, where + " patch", text))
        elif key == "allowprivilegeescalation" and _set(value):
            out.append(finding("GR007", name, where + " patch", text))
        elif key == "add" and len(path) > 1 and path[-2].lower() == "capabilities" and _as_list(value):
            out.extend(_cap_findings(name, where + " patch", value, set(_caps(value))))
        elif key in ("runasuser", "runasgroup") and value == 0 and not isinstance(value, bool):
            out.append(finding("GR030", name, where + " patch", text))
        elif key == "procmount" and str(value).lower() == "unmasked":
            out.append(finding("GR008", name, where + " patch", text))
        elif key == "type" and len(path) > 1 and path[-2].lower() in ("seccompprofile", "apparmorprofile") \
                and str(value).lower() == "unconfined":
            out.append(finding("GR008", name, where + " patch", text))
        elif key == "type" and len(path) > 1 and path[-2].lower() == "selinuxoptions" \
                and _SELINUX_UNCONFINED.search(str(value)):
            out.append(finding("GR008", name, where + " patch", text))
    return out


def _kubernetes_findings(name, k8s):
    out = []
    where = "[runners.kubernetes]"
    if _set(_get(k8s, "privileged")):
        out.append(finding("GR002", name, where + " privileged",
                           "privileged = %s (every container of the pod, services too)" % _get(k8s, "privileged")))
    escalation = _get(k8s, "allow_privilege_escalation")
    # GitLab Runner's own default drop list is NET_RAW; cap_add turns a
    # capability on, then cap_drop turns it off again (drop wins).
    runner_drops = [c for c in ["NET_RAW"] if c not in _caps(_get(k8s, "cap_add"))] + _caps(_get(k8s, "cap_drop"))
    runner_adds = [c for c in _caps(_get(k8s, "cap_add")) if c not in _caps(_get(k8s, "cap_drop"))]
    for key, what, privileged_id, escalation_id in _K8S_CONTEXTS:
        context = _table(k8s, key)
        cwhere = "%s %s" % (where, key)
        if _set(_get(context, "privileged")):
            out.append(finding(privileged_id, name, cwhere + " privileged",
                               "%s container privileged = %s" % (what, _get(context, "privileged"))))
        effective_escalation = _get(context, "allow_privilege_escalation", escalation)
        if what in ("build", "service") and effective_escalation is not False:
            setting = (cwhere if _get(context, "allow_privilege_escalation") is not None else where) \
                + " allow_privilege_escalation"
            out.append(finding(escalation_id, name, setting, "%s container allow_privilege_escalation = %s"
                               % (what, "unset (Kubernetes allows it)" if effective_escalation is None
                                  else effective_escalation)))
        caps = _table(context, "capabilities")
        if caps:
            adds, drops, cap_where = _get(caps, "add"), _get(caps, "drop"), cwhere + " capabilities"
        else:
            adds, drops, cap_where = runner_adds, runner_drops, where + " cap_add/cap_drop"
        if what in ("build", "service"):
            for item in _cap_findings(name, cap_where, adds, kubernetes_effective_caps(adds, drops)):
                item["evidence"] = "%s container: %s" % (what, item["evidence"])
                out.append(item)
        if _get(context, "run_as_user") == 0 and not isinstance(_get(context, "run_as_user"), bool):
            out.append(finding("GR030", name, cwhere + " run_as_user", "%s container run_as_user = 0" % what))
        if str(_get(context, "proc_mount") or "").lower() == "unmasked":
            out.append(finding("GR008", name, cwhere + " proc_mount", "%s container proc_mount = Unmasked" % what))
        for sub in ("selinux_type", "seccomp_profile_type", "apparmor_profile_type"):
            value = str(_get(context, sub) or "")
            if value.lower() == "unconfined" or (sub == "selinux_type" and value and _SELINUX_UNCONFINED.search(value)):
                out.append(finding("GR008", name, "%s %s" % (cwhere, sub), "%s container %s = %s" % (what, sub, value)))
    pod = _table(k8s, "pod_security_context")
    if _get(pod, "run_as_user") == 0 and not isinstance(_get(pod, "run_as_user"), bool):
        out.append(finding("GR030", name, where + " pod_security_context run_as_user", "pod run_as_user = 0"))
    for entry in _as_list(_get(_table(k8s, "volumes"), "host_path")):
        if not isinstance(entry, Mapping):
            continue
        # GitLab Runner mounts mount_path from the host when host_path is empty.
        source = _get(entry, "host_path") or _get(entry, "mount_path")
        label = "host_path %s (%s) mounted at %s" % (source, _get(entry, "name"), _get(entry, "mount_path"))
        out.extend(host_mount_findings(name, where + " volumes.host_path", source, label))
    for index, entry in enumerate(_as_list(_get(k8s, "pod_spec"))):
        if isinstance(entry, Mapping):
            out.extend(_pod_spec_findings(name, entry, index))
    out.extend(_pull_findings(name, where, k8s))
    for key in ("namespace_overwrite_allowed", "service_account_overwrite_allowed"):
        if str(_get(k8s, key) or "").strip():
            out.append(finding("GR032", name, "%s %s" % (where, key), '%s = "%s"' % (key, _get(k8s, key))))
    for key in ("bearer_token_overwrite_allowed", "automount_service_account_token"):
        if _set(_get(k8s, key)):
            out.append(finding("GR032", name, "%s %s" % (where, key), "%s = %s" % (key, _get(k8s, key))))
    return out


DOCKER_EXECUTORS = ("docker", "docker-windows", "docker+machine", "docker-autoscaler")
SSH_SECTION_EXECUTORS = ("ssh", "virtualbox", "parallels")
VM_EXECUTORS = ("virtualbox", "parallels")

_CANNOT_LOAD = "GitLab Runner cannot load it into its integer field and refuses the whole config.toml"


def _reuse_text(key, value):
    """What GitLab Runner makes of a MaxBuilds or max_use_count value (a Go int; 0 or less: no limit)."""
    if isinstance(value, bool):
        return "%s = %s (a boolean: %s)" % (key, "true" if value else "false", _CANNOT_LOAD)
    if isinstance(value, int):
        if value < 1:
            return "%s = %d (0 or less: unlimited)" % (key, value)
        return "%s = %d (a machine runs up to %d jobs)" % (key, value, value)
    if isinstance(value, str):
        return '%s = "%s" (a string: %s)' % (key, value[:40], _CANNOT_LOAD)
    if isinstance(value, float):
        return "%s = %r (a float: %s)" % (key, value, _CANNOT_LOAD)
    return "%s = %s (not a number: %s)" % (key, _show(value)[:60], _CANNOT_LOAD)


def _reuse_findings(name, runner, section, key):
    """GR014 unless every spelling of ``[runners.<section>] <key>`` holds the TOML integer 1."""
    values = [value for table in _variants(runner, section) for value in _variants(table, key)]
    setting = "[runners.%s] %s" % (section, key)
    if not values:
        return [finding("GR014", name, setting, "%s unset (0: unlimited)" % key)]
    for value in values:
        if not _is_one(value):
            return [finding("GR014", name, setting, _reuse_text(key, value))]
    return []


def _escaped(text, index):
    """Whether the character at ``index`` follows an odd number of backslashes."""
    count = 0
    while index - count - 1 >= 0 and text[index - count - 1] == "\\":
        count += 1
    return count % 2 == 1


def whole_vm_name_pattern(pattern):
    """Whether an ``allowed_images`` entry can only match whole, spelt-out VM names.

    GitLab Runner compiles each entry as a Go regular expression and lets a
    job use any VM whose name the expression finds anywhere in it
    (executors/vm/vm.go, MatchString). An entry passes when it is anchored at
    both ends (``^``/``\\A`` and ``$``/``\\z``; without the ``m`` flag Go's
    ``$`` is the end of the text) and between them holds only literal
    characters, escaped punctuation and groups of alternatives:
    ``^ubuntu-24\\.04$``, ``^(macos-14|macos-15)$``.
    """
    text = "" if pattern is None else str(pattern)
    if text.startswith("^"):
        body = text[1:]
    elif text.startswith("\\A"):
        body = text[2:]
    else:
        return False
    if body.endswith("\\z") and not _escaped(body, len(body) - 2):
        body = body[:-2]
    elif body.endswith("$") and not _escaped(body, len(body) - 1):
        body = body[:-1]
    else:
        return False
    depth = index = 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            # An escaped letter or digit is a class, an anchor or a code (\d, \b, \x41): not literal.
            if index + 1 >= len(body) or body[index + 1].isalnum():
                return False
            index += 2
            continue
        if char == "(":
            if body.startswith("(?:", index):
                index += 2
            elif body.startswith("(?", index):
                return False  # flags, named groups
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return False
        elif char == "|" and depth == 0:
            return False  # ^a|b$ is ^a or b$
        elif char in ".+*?[]{}^$":
            return False
        index += 1
    return depth == 0


def ssh_connection_files(runner):
    """The files GitLab Runner reads for a runner's SSH connections: [(key, path)].

    Only for the executors that connect with ``[runners.ssh]``:
    ``identity_file`` whenever it is set (helpers/ssh/ssh_command.go reads it
    for every connection) and ``known_hosts_file`` unless strict host key
    checking is off (then nothing reads it).
    """
    if str(_get(runner, "executor") or "") not in SSH_SECTION_EXECUTORS:
        return []
    ssh = _table(runner, "ssh")
    out = []
    identity = _get(ssh, "identity_file")
    if isinstance(identity, str) and identity.strip():
        out.append(("identity_file", identity))
    known = _get(ssh, "known_hosts_file")
    if isinstance(known, str) and known.strip() and not _set(_get(ssh, "disable_strict_host_key_checking")):
        out.append(("known_hosts_file", known))
    return out


def evaluate_runner(runner):
    """Findings for one ``[[runners]]`` table (a mapping, as parsed from TOML)."""
    name = str(_get(runner, "name", "(unnamed)"))
    executor = str(_get(runner, "executor") or "")
    flags = _table(runner, "feature_flags")
    out = []
    if executor == "shell":
        out.append(finding("GR001", name, "executor", 'executor = "shell"'))
    if executor in DOCKER_EXECUTORS:
        out.extend(_docker_findings(name, _table(runner, "docker"), flags))
    if executor == "kubernetes":
        out.extend(_kubernetes_findings(name, _table(runner, "kubernetes")))
    if executor in SSH_SECTION_EXECUTORS:
        ssh = _table(runner, "ssh")
        value = _get(ssh, "disable_strict_host_key_checking")
        if _set(value):
            out.append(finding("GR013", name, "[runners.ssh] disable_strict_host_key_checking",
                               "disable_strict_host_key_checking = %s" % value))
        elif not str(_get(ssh, "known_hosts_file") or "").strip():
            # helpers/ssh/ssh_command.go (getHostKeyCallback): without a
            # known_hosts_file the runner reads ~/.ssh/known_hosts of the user
            # it runs as, holding whatever key a first manual ssh accepted.
            out.append(finding("GR046", name, "[runners.ssh] known_hosts_file",
                               "unset: host keys are checked against ~/.ssh/known_hosts of the user GitLab Runner "
                               "runs as, which holds whatever keys an earlier ssh accepted"))
    if executor in VM_EXECUTORS:
        images = _get(_table(runner, executor), "allowed_images")
        loose = [str(p) for p in _as_list(images) if not whole_vm_name_pattern(p)]
        if loose:
            out.append(finding("GR048", name, "[runners.%s] allowed_images" % executor,
                               "allowed_images = %s (entries that are not ^whole-name$: %s; a job may use any VM "
                               "whose name they match anywhere)" % (_show(images)[:200], _show(loose)[:200])))
    if executor == "docker+machine":
        out.extend(_reuse_findings(name, runner, "machine", "MaxBuilds"))
    if executor in ("docker-autoscaler", "instance"):
        out.extend(_reuse_findings(name, runner, "autoscaler", "max_use_count"))
    if executor and not _truthy_flag(flags.get("FF_ENABLE_JOB_CLEANUP")):
        out.append(finding("GR017", name, "[runners.feature_flags] FF_ENABLE_JOB_CLEANUP", "not enabled"))
    return out


def unknown_key_findings(document, key_list=None):
    """GR015 for every key of ``document`` that ``key_list`` (the newest by default) does not know.

    Returns (runner index or None, key path from ``unknown_keys()``, finding);
    the evidence names the key list, as a different runner version can know
    the key.
    """
    key_list = key_list or NEWEST
    runners = _get(document, "runners") or []
    out = []
    for path in unknown_keys(document, key_list=key_list):
        index = runner = None
        if len(path) > 1 and path[0] == "runners":
            try:
                index = int(path[1])
                runner = str(_get(runners[index], "name", "(unnamed)"))
            except (ValueError, IndexError, TypeError, AttributeError):
                index = runner = None
        out.append((index, path, finding("GR015", runner, format_key_path(path, document),
                                         "unrecognized key %r (not in the %s)" % (path[-1], key_list.name))))
    return out


def evaluate_document_by_runner(document, key_list=None):
    """Findings for a whole parsed ``config.toml``, as (runner index or None, finding).

    ``key_list`` is the ``runner_config_schema.KeyList`` unknown keys (GR015)
    are checked against: the one of the runner version the document is for
    (``runner_config_schema.select_key_list()``); the newest by default.
    """
    out = []
    listen = _get(document, "listen_address")
    if listen and not _LOOPBACK.match(str(listen)):
        out.append((None, finding("GR018", None, "listen_address", "listen_address = %s" % listen)))
    session = _table(document, "session_server")
    if _get(session, "listen_address"):
        out.append((None, finding("GR019", None, "[session_server] listen_address",
                                  "listen_address = %s" % _get(session, "listen_address"))))
    runners = _get(document, "runners") or []
    out.extend((index, item) for index, _path, item in unknown_key_findings(document, key_list))
    for index, runner in enumerate(runners if isinstance(runners, list) else []):
        if isinstance(runner, Mapping):
            out.extend((index, item) for item in evaluate_runner(runner))
    return out


def evaluate_document(document, key_list=None):
    """Findings for a whole parsed ``config.toml`` document (global + runners); see evaluate_document_by_runner."""
    return [item for _runner, item in evaluate_document_by_runner(document, key_list)]


def severity_at_least(finding, threshold):
    return SEVERITIES.index(finding["severity"]) >= SEVERITIES.index(threshold)


def acknowledgement_key(item):
    """What binds an acknowledgement to one finding: runner, policy and the exact setting and value.

    For an unknown key (GR015) the setting is the key's whole path and its
    value does not matter (the runner ignores it); the evidence only names
    the key list it was checked against, which follows the runner version
    (the controller and the host may see different ones), so it is left out.
    """
    evidence = None if item.get("id") == "GR015" else item.get("evidence")
    return (item.get("runner"), item.get("id"), item.get("setting"), evidence)


def apply_acknowledgements(findings, declared, recorded=None, runner_names=None):
    """Lower the findings the controller declares as accepted to ``info``.

    ``declared`` is what the role's gate accepted for this host, computed on the
    controller from the inventory (a list of {"runner", "id", "setting",
    "evidence", "reason"}). A finding is lowered only when a declared entry has
    its runner, policy, setting and evidence exactly (so a setting changed since
    it was accepted is reported at full severity), its policy can be
    acknowledged at all, and its runner's name is used once in the document
    (``runner_names``), so no runner can take another's exception by its name.

    ``recorded`` is the acknowledgements file found on the host. It is never
    trusted: an entry there that the controller does not declare only explains
    the finding, which keeps its severity.
    """
    names = list(runner_names or [])
    accepted = {}
    for entry in declared or []:
        if isinstance(entry, Mapping) and entry.get("id") in CATALOG:
            accepted[acknowledgement_key(entry)] = str(entry.get("reason") or "no reason recorded")
    claimed = {}
    for entry in recorded or []:
        if isinstance(entry, Mapping):
            claimed.setdefault((entry.get("runner"), entry.get("id")), str(entry.get("reason") or "no reason"))
    out = []
    for item in findings:
        reason = accepted.get(acknowledgement_key(item))
        unique = item.get("runner") is None or names.count(item.get("runner")) <= 1
        if reason is not None and CATALOG[item["id"]].ack is not None and unique:
            item = dict(item)
            item["evidence"] = "ACKNOWLEDGED (%s; was %s): %s" % (reason, item["severity"], item["evidence"])
            item["severity"] = "info"
        elif (item.get("runner"), item.get("id")) in claimed:
            item = dict(item)
            item["evidence"] = ("%s [the host's acknowledgements file claims an exception (%s) that the controller "
                                "does not declare for this exact setting: not accepted]"
                                % (item["evidence"], claimed[(item.get("runner"), item.get("id"))][:200]))
        out.append(item)
    return out
