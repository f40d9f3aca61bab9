#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: runner_job_probe
short_description: Probe docker-executor job and service containers from the inside
version_added: "0.1.0"
description:
  - Reads the runner host's C(config.toml) and, for each runner whose executor is C(docker),
    C(docker+machine) or C(docker-autoscaler), starts a throwaway B(job container) with the host
    configuration GitLab Runner would give it, and (with O(services)) a throwaway B(service
    container) with the service host configuration. A small Python program runs inside each and
    observes what a job could do there; what it finds is mapped to findings of this collection's
    policy catalog, in the same format as the audit modules.
  - "Job container host configuration, as GitLab Runner's docker executor builds it
    (C(createHostConfig)): C(cap_add) and C(cap_drop) (names normalized as Docker does: upper case,
    without C(CAP_)), C(security_opt) (a C(seccomp=<path>) profile is read and passed inline, as the
    runner does), C(devices), C(device_cgroup_rules), C(privileged), C(userns_mode), C(ipcmode),
    C(pid_mode), C(network_mode), C(volumes), C(tmpfs), C(shm_size), C(sysctls), C(group_add),
    C(runtime) and the user C([runners.docker] user). Keys are matched case-insensitively, like
    GitLab Runner's TOML decoder."
  - "Service container host configuration (C(createHostConfigForService)): only
    C(services_privileged) (unset, it follows C(privileged)), C(services_security_opt),
    C(services_devices), C(services_tmpfs), and the settings the runner shares with the job
    (C(userns_mode), C(network_mode), C(volumes), C(shm_size), C(runtime)). GitLab Runner never
    gives a service container the job's C(cap_add), C(cap_drop), C(security_opt), C(user),
    C(devices), C(pid_mode), C(ipcmode), C(group_add) or C(sysctls); only the Docker daemon's own
    defaults (C(daemon.json)) reach it besides these."
  - "Network: C(network_mode) when set; otherwise a fresh bridge network for the probe (removed
    afterwards) when C(FF_NETWORK_PER_BUILD) is on, as the runner creates one per job; otherwise
    Docker's default bridge."
  - "Volumes: a host path (C(/src:/dst[:mode])) is bind-mounted as written; an existing named
    volume is mounted; a container path alone (C(/cache)) becomes an anonymous volume, as does
    C(/builds), the runner's build volume. A host path that does not exist and a named volume that
    does not exist are replaced by anonymous volumes (Docker would create them, and the probe
    creates nothing that outlives it); a relative destination is placed under
    C(/builds/project), the project directory the runner resolves it against."
  - "Probes and findings (C(runner) is the runner's name, C(setting) C(probe: job container) or
    C(probe: service container)): the capability bounding set (C(CapBnd) in C(/proc/self/status),
    decoded to names) keeping C(SETUID), C(SETGID), C(NET_RAW) or C(MKNOD) is C(GR006) (job), and
    capabilities as strong as privileged are C(GR028) (job); creating a raw ICMP socket (only
    created, nothing is sent) and C(mknod) of a character device in a private temporary directory
    succeeding are C(GR006) (job); C(NoNewPrivs) 0 and a setuid-root helper run as uid 65534
    getting effective uid 0 are C(GR007) (job) or C(GR029) (service); a Unix socket of a container
    runtime or host service anywhere in the container's mounts (bounded walk of every mount point and
    the usual runtime directories; connected to, no byte sent) is C(GR009); privileged signs (every
    capability in the bounding set, or C(/sys) mounted read-write) are C(GR002) (job) or C(GR003)
    (service); device nodes beyond Docker's default set are C(GR011); seccomp off while the daemon
    supports it, or the runtime's processes visible (host PID namespace), are C(GR008)."
  - The setuid check needs an unprivileged process. The probe runs as the configured C(user) (else
    as root, the probe image's user, as a job image without C(USER) does); as root it forks a child
    that becomes uid 65534. When root cannot do that (C(SETUID) or C(SETGID) dropped, the hardened
    default), the check runs in a second container with the same host configuration started as
    C(65534:65534), as a job image with a non-root C(USER) would.
  - With O(workload), typical job steps run in the job container and are returned in RV(workload)
    (not as findings), so the cost of a hardened profile is visible.
  - "Check mode: the module starts throwaway containers (and, for per-build networks, a throwaway
    network) in both modes but changes no configuration; it always reports C(changed=false).
    Every container and network it starts is removed (containers with their anonymous volumes),
    also when a probe fails or times out; their names start with C(hgr-probe-)."
author:
  - hardened.gitlab_runner maintainers (@hardened)
options:
  path:
    description:
      - Path of the C(config.toml) whose runners are probed.
    type: path
    default: /etc/gitlab-runner/config.toml
  image:
    description:
      - The probe image, present on the Docker engine (it is never pulled). It needs C(python3)
        (3.6+), the setuid-root helper C(/usr/local/libexec/hgr-probe/suid-id) (a copy of C(id)
        with mode 4755) and, for O(workload), C(git), C(tar), C(gzip), C(apt-get), C(su),
        C(setcap), C(chroot) and C(ping).
      - Build it with C(tests/images/probe/build.sh) and load it into another engine with
        C(docker save IMAGE | docker load).
    type: str
    default: hardened-gitlab-runner/probe:latest
  docker_host:
    description:
      - The Docker API to start the containers on, as a Docker SDK C(base_url).
      - Unset, each runner's own C([runners.docker] host), else C(unix:///var/run/docker.sock).
      - For C(docker+machine) and C(docker-autoscaler) runners the jobs run on autoscaled machines;
        the probe checks the host configuration on this engine, so point it at an engine set up
        like those machines for the daemon defaults to match.
    type: str
  runners:
    description:
      - Names of the runners to probe. Unset or empty, every docker-type runner is probed.
      - A name that is not in the file fails the task.
    type: list
    elements: str
  services:
    description:
      - Also probe a service container for each runner.
    type: bool
    default: true
  workload:
    description:
      - Also run the workload check (typical job steps) in each job container.
    type: bool
    default: false
  timeout:
    description:
      - Seconds each container may run, and to wait for each Docker API call.
    type: int
    default: 120
notes:
  - "Not mirrored: resources (memory, CPUs, ulimits, cgroup parent), DNS and extra hosts, links,
    C(volumes_from), C(volume_driver) and its options, C(cache_dir) (the runner binds a host
    directory for container-only volumes; an anonymous volume stands in), C(gpus) and
    C(service_gpus) (they need a GPU runtime), the helper container, and feature flags or
    C(DOCKER_AUTH_CONFIG) set as job variables. RV(probes[].notes) names those a runner sets."
  - "C(allowed_privileged_images) and C(allowed_privileged_services) restrict which images run
    privileged; the probe takes the worst case, an image on that list."
  - "A probe that cannot run (missing image, a host configuration Docker refuses, a timeout, output
    that is not the probe's) fails the task, naming the runner; the result still holds every
    finding of the probes that ran."
  - Requires access to the Docker API (root or the docker group on the runner host).
  - Supports check mode; see the description. Findings never contain a token; the file's secret
    values are registered as no_log.
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the target.
    support: full
    details: The module changes no configuration; it does the same in check mode (the throwaway
      containers and networks it starts are removed again) and always reports C(changed=false).
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
    details: The module changes no configuration, so there is no difference to show.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
requirements:
  - The Docker SDK for Python (C(docker)) on the managed host
  - Python 3.11 or later, or the C(tomli) Python package
seealso:
  - module: hardened.gitlab_runner.runner_config_audit
  - module: hardened.gitlab_runner.docker_daemon_audit
"""

EXAMPLES = r"""
- name: Probe every docker runner's job and service containers
  hardened.gitlab_runner.runner_job_probe:
  register: job_probe

- name: Fail on findings at medium or above
  ansible.builtin.assert:
    that:
      - job_probe.findings | selectattr('severity', 'in', ['medium', 'high', 'critical']) | list | length == 0
    fail_msg: "{{ job_probe.findings | selectattr('severity', 'in', ['medium', 'high', 'critical']) | list }}"

- name: Probe one runner with the workload check, with an image loaded from the controller
  hardened.gitlab_runner.runner_job_probe:
    runners: [shared-docker]
    image: registry.invalid/hardened-gitlab-runner/probe:2024-06
    workload: true
  register: job_probe

- name: Show the job steps the hardened profile breaks
  ansible.builtin.debug:
    msg: "{{ job_probe.workload | rejectattr('ok') | list }}"
"""

RETURN = r"""
findings:
  description: Findings from the policy catalog, one per observation.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Catalog id.
      type: str
      sample: GR006
    severity:
      description: One of C(info), C(low), C(medium), C(high), C(critical).
      type: str
      sample: high
    title:
      description: What the policy is about.
      type: str
    guidance:
      description: Where the reasoning is documented.
      type: str
    runner:
      description: The runner's name.
      type: str
    setting:
      description: "C(probe: job container) or C(probe: service container)."
      type: str
      sample: "probe: job container"
    evidence:
      description: What the probe observed.
      type: str
      sample: "a raw ICMP socket was created (NET_RAW): nothing was sent"
    ack:
      description: Acknowledgement that unlocks the setting in the role's gate, or null.
      type: str
    enforcement:
      description: C(refuse), C(warn) or C(audit).
      type: str
probes:
  description: One entry per container probed.
  returned: always
  type: list
  elements: dict
  contains:
    runner:
      description: The runner's name.
      type: str
    container:
      description: C(job) or C(service); C(network) for an error creating or removing the per-build network.
      type: str
    docker_host:
      description: The Docker API used.
      type: str
    user:
      description: The user the container was started as, or null (the image's user, root).
      type: str
    network:
      description: C(per-build network), C(default bridge) or the C(network_mode) used.
      type: str
    host_config:
      description: The Docker C(HostConfig) the container was started with (an inline seccomp profile
        is shortened).
      type: dict
      sample: {"CapDrop": ["SETUID", "SETGID", "NET_RAW", "MKNOD"], "SecurityOpt": ["no-new-privileges:true"],
               "NetworkMode": "hgr-probe-1a2b3c4d-net", "Binds": []}
    volumes:
      description: Container paths that got anonymous volumes.
      type: list
      elements: str
    notes:
      description: Settings of the runner the probe did not mirror, substitutions made, and checks that gave no
        answer in this container (a setuid check that could not run, a socket search that hit its bound). Each is
        also given as a warning.
      type: list
      elements: str
    capabilities:
      description: The effective and bounding capability sets, decoded.
      type: dict
      sample: {"effective": ["CHOWN", "DAC_OVERRIDE"], "bounding": ["CHOWN", "DAC_OVERRIDE"]}
    result:
      description: What the program inside reported (raw), or null when it did not run.
      type: dict
    error:
      description: Why the probe could not run, or null.
      type: str
workload:
  description:
    - With O(workload), one entry per job step per runner, run in the job container.
  returned: always
  type: list
  elements: dict
  contains:
    runner:
      description: The runner's name.
      type: str
    step:
      description: What was done.
      type: str
      sample: apt-get update (apt drops to its _apt sandbox user)
    ok:
      description: Whether the step succeeded.
      type: bool
    detail:
      description: What the step produced, when it succeeded.
      type: str
    error:
      description: The error, when it failed.
      type: str
      sample: "setgroups([]): EPERM (Operation not permitted)"
    needs:
      description: What the step needs that a hardened profile may take away, and the least-risk way
        to do without it.
      type: str
not_probed:
  description: Runners not probed, with the reason (executor not docker-type, not selected).
  returned: always
  type: list
  elements: dict
  contains:
    runner:
      description: The runner's name.
      type: str
    executor:
      description: Its executor.
      type: str
    reason:
      description: Why it was skipped.
      type: str
"""

import json
import os
import posixpath
import re
import traceback
import uuid
from collections.abc import Mapping

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
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.config_file import (
    HAS_TOML,
    ConfigFileError,
    parse_config,
    read_config,
    secret_values,
)
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.job_probe_script import SCRIPT
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.policy import (
    PRIVILEGED_EQUIVALENT_CAPS,
    REQUIRED_CAP_DROP,
    _as_list,
    _cap,
    _get,
    _table,
    _truthy_flag,
    docker_volume_source,
    finding,
)

PROBED_EXECUTORS = ("docker", "docker+machine", "docker-autoscaler")
DEFAULT_IMAGE = "hardened-gitlab-runner/probe:latest"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
NAME_PREFIX = "hgr-probe-"
LABEL = "hardened.gitlab_runner.probe"
BUILDS_DIR = "/builds"
PROJECT_DIR = "/builds/project"
NOBODY = "65534:65534"
OUTPUT_LIMIT = 1024 * 1024
SETTING = {"job": "probe: job container", "service": "probe: service container"}

# Capability numbers (linux/capability.h), so CapEff/CapBnd masks decode to names.
CAP_NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
)

# What each workload step needs that a hardened profile can take away, and the
# least-risk way to do without it (measured on Docker 20.10 with the
# collection's default drops; see the README's workload table).
WORKLOAD_NEEDS = {
    "apt-get update (apt drops to its _apt sandbox user)":
        "SETUID and SETGID (apt switches to _apt); run apt-get with -o APT::Sandbox::User=root "
        "(the job is root in its container already), or install packages at image build time",
    "drop to another uid (setgroups, setgid, setuid)":
        "SETUID and SETGID; start the job as the non-root user instead ([runners.docker] user or the image's USER)",
    "su to another user":
        "SETUID and SETGID; start the job as the non-root user instead ([runners.docker] user or the image's USER)",
    "set file capabilities (setcap)":
        "SETFCAP; set file capabilities at image build time (docker build is not a job)",
    "chroot":
        "SYS_CHROOT; build root file systems at image build time, or on a dedicated runner that adds "
        "SYS_CHROOT with an acknowledged cap_add",
    "create a device node (mknod)":
        "MKNOD (a required drop); use rootless tools (fakeroot, mmdebstrap --mode=fakeroot) or a "
        "dedicated privileged-acknowledged runner",
    "ping the loopback address (ping -c1 127.0.0.1)":
        "NET_RAW, only because Debian's ping has the file capability cap_net_raw; strip it in the job "
        "image (setcap -r /usr/bin/ping, or cp ping elsewhere): Docker lets every group open ICMP echo "
        "sockets (net.ipv4.ping_group_range), so ping then works without NET_RAW",
    "chown a file to another uid": "CHOWN (kept by the default profile) and root in the container",
}


class ProbeError(Exception):
    """A probe could not run; the message says why (no secrets)."""


# --- what GitLab Runner would give the containers ---------------------------------------

def docker_caps(values):
    """Capability names as Docker normalizes them (upper case, no CAP_), in order, once each."""
    out = []
    for value in _as_list(values):
        if not str(value).strip():
            continue
        name = _cap(value)
        if name not in out:
            out.append(name)
    return out


def parse_device(spec):
    """GitLab Runner's PathOnHost[:PathInContainer[:CgroupPermissions]] device string."""
    parts = str(spec).split(":")
    if len(parts) > 3:
        raise ProbeError("device %r: too many colons (GitLab Runner refuses it)" % str(spec))
    return {
        "PathOnHost": parts[0],
        "PathInContainer": parts[1] if len(parts) >= 2 else parts[0],
        "CgroupPermissions": parts[2] if len(parts) >= 3 else "rwm",
    }


def _read_text_file(path):
    with open(path, "r", encoding="utf-8") as handle:
        return handle.read(4 * 1024 * 1024)


def process_security_opt(options, read_file=_read_text_file):
    """The runner's processSecurityOpt: a seccomp profile given as a path is read and passed inline."""
    out = []
    for raw in _as_list(options):
        opt = str(raw)
        key, sep, value = opt.partition("=")
        if sep and key == "seccomp" and not value.startswith("{") and value not in ("unconfined", "builtin"):
            try:
                text = read_file(value)
                json.loads(text)
            except (OSError, ValueError) as exc:
                raise ProbeError("security_opt seccomp profile %s cannot be used (%s); GitLab Runner fails the "
                                 "job the same way" % (value, type(exc).__name__))
            out.append("seccomp=" + text)
        else:
            out.append(opt)
    return out


def _bool(section, key):
    value = _get(section, key)
    if value is None or isinstance(value, bool):
        return value
    raise ProbeError("%s = %r is not a boolean; GitLab Runner refuses this config.toml" % (key, value))


def _str(section, key):
    value = _get(section, key)
    return "" if value is None else str(value).strip()


def _str_list(section, key):
    return [str(v) for v in _as_list(_get(section, key)) if str(v).strip()]


def _str_map(section, key):
    value = _get(section, key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ProbeError("%s is not a table; GitLab Runner refuses this config.toml" % key)
    return dict((str(k), str(v)) for k, v in value.items())


def _volume_destination(spec):
    parts = str(spec).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def plan_volumes(volumes, volume_exists, host_path_exists):
    """(binds, anonymous container paths, notes) for the runner's ``volumes``."""
    binds, anonymous, notes = [], [], []
    for raw in _as_list(volumes):
        spec = str(raw).strip()
        if not spec:
            continue
        kind, source = docker_volume_source(spec)
        if re.match(r"^([A-Za-z]:|\\\\|//[.?][\\/])", spec):
            notes.append("volume %s is a Windows path: not mirrored" % spec)
            continue
        destination = _volume_destination(spec) if kind else spec
        if len(spec.split(":")) > 3:
            raise ProbeError("volume %r has too many colons; GitLab Runner refuses it" % spec)
        if posixpath.normpath(destination) == "/":
            raise ProbeError("volume %r targets /; GitLab Runner refuses it" % spec)
        if not destination.startswith("/"):
            relative = destination
            destination = posixpath.join(PROJECT_DIR, destination)
            notes.append("volume %s: relative destination %s placed under %s" % (spec, relative, PROJECT_DIR))
            if kind:
                parts = spec.split(":")
                parts[1] = destination
                spec = ":".join(parts)
        if kind is None:
            anonymous.append(destination)
        elif kind == "host" and not host_path_exists(source):
            anonymous.append(destination)
            notes.append("volume %s: host path %s does not exist (Docker would create it); an anonymous "
                         "volume stands in" % (spec, source))
        elif kind == "named" and not volume_exists(source):
            anonymous.append(destination)
            notes.append("volume %s: named volume %s does not exist (Docker would create it); an anonymous "
                         "volume stands in" % (spec, source))
        else:
            binds.append(spec)
    covered = [_volume_destination(b) for b in binds] + anonymous
    if not any(posixpath.normpath(path) == BUILDS_DIR for path in covered):
        anonymous.append(BUILDS_DIR)  # the runner's build volume
    return binds, anonymous, notes


_NOT_MIRRORED = (
    ("gpus", "gpus (needs a GPU runtime)"),
    ("service_gpus", "service_gpus (needs a GPU runtime)"),
    ("volumes_from", "volumes_from (other containers' volumes)"),
    ("volume_driver", "volume_driver"),
    ("volume_driver_ops", "volume_driver_ops"),
    ("cache_dir", "cache_dir (container-only volumes get anonymous volumes, not host directories)"),
    ("allowed_privileged_images", "allowed_privileged_images (the worst case, a listed image, is probed)"),
    ("allowed_privileged_services", "allowed_privileged_services (the worst case, a listed image, is probed)"),
)


def _network(docker_section, flags, per_build_network):
    mode = _str(docker_section, "network_mode")
    if mode:
        return mode, mode
    if _truthy_flag((flags or {}).get("FF_NETWORK_PER_BUILD")):
        return per_build_network, "per-build network"
    return "", "default bridge"


def _clean(host_config):
    return dict((k, v) for k, v in host_config.items() if v not in (None, "", [], {}, 0, False) or k == "Privileged")


def derive_host_configs(runner, per_build_network="hgr-probe-net", read_file=_read_text_file,
                        volume_exists=lambda name: False, host_path_exists=os.path.exists):
    """What GitLab Runner gives a runner's job and service containers (pure apart from the callbacks).

    Returns a dict with ``job`` and ``service`` (each ``host_config``, ``volumes``
    (anonymous container paths) and ``user``), ``network`` (``per_build`` bool,
    ``mode`` and ``label``) and ``notes``. Raises ProbeError for a
    configuration GitLab Runner itself would refuse.
    """
    section = _table(runner, "docker")
    flags = _table(runner, "feature_flags")
    notes = []
    network_mode, network_label = _network(section, flags, per_build_network)
    binds, anonymous, volume_notes = plan_volumes(_get(section, "volumes"), volume_exists, host_path_exists)
    notes.extend(volume_notes)
    for key, text in _NOT_MIRRORED:
        if _get(section, key) not in (None, "", [], {}):
            notes.append("not mirrored: " + text)

    privileged = _bool(section, "privileged") is True
    services_privileged = _bool(section, "services_privileged")
    shm_size = _get(section, "shm_size") or 0
    if not isinstance(shm_size, int) or isinstance(shm_size, bool):
        raise ProbeError("shm_size = %r is not an integer; GitLab Runner refuses this config.toml" % shm_size)
    shared = {
        "UsernsMode": _str(section, "userns_mode"),
        "NetworkMode": network_mode,
        "Binds": list(binds),
        "ShmSize": shm_size,
        "Runtime": _str(section, "runtime"),
    }
    job = dict(shared)
    job.update({
        "Privileged": privileged,
        "CapAdd": docker_caps(_get(section, "cap_add")),
        "CapDrop": docker_caps(_get(section, "cap_drop")),
        "SecurityOpt": process_security_opt(_get(section, "security_opt"), read_file),
        "Devices": [parse_device(d) for d in _str_list(section, "devices")],
        "DeviceCgroupRules": _str_list(section, "device_cgroup_rules"),
        "IpcMode": _str(section, "ipcmode"),
        "PidMode": _str(section, "pid_mode"),
        "Tmpfs": _str_map(section, "tmpfs"),
        "Sysctls": _str_map(section, "sysctls"),
        "GroupAdd": _str_list(section, "group_add"),
    })
    service_devices = []
    devices_map = _get(section, "services_devices")
    if devices_map is not None and not isinstance(devices_map, Mapping):
        raise ProbeError("services_devices is not a table of image patterns; GitLab Runner refuses it")
    for pattern, specs in sorted((devices_map or {}).items()):
        service_devices.extend(parse_device(d) for d in _as_list(specs) if str(d).strip())
    if service_devices:
        notes.append("services_devices: the devices of every image pattern are given to the probe's service "
                     "container (the worst case)")
    service = dict(shared)
    service.update({
        "Privileged": services_privileged if services_privileged is not None else privileged,
        "SecurityOpt": process_security_opt(_get(section, "services_security_opt"), read_file),
        "Devices": service_devices,
        "Tmpfs": _str_map(section, "services_tmpfs"),
    })

    user = _str(section, "user") or None
    allowed = _str_list(section, "allowed_users")
    if user and allowed and user not in allowed:
        raise ProbeError("user %r is not in allowed_users; GitLab Runner refuses every job" % user)
    return {
        "job": {"host_config": _clean(job), "volumes": list(anonymous), "user": user},
        "service": {"host_config": _clean(service), "volumes": list(anonymous), "user": None},
        "network": {"per_build": network_label == "per-build network", "mode": network_mode,
                    "label": network_label},
        "notes": notes,
    }


# --- what the probe's output means --------------------------------------------------------

def decode_caps(mask):
    """Capability names of a /proc/self/status hex mask (unknown bits as CAP_<n>)."""
    try:
        value = int(str(mask), 16)
    except ValueError:
        return []
    out = []
    bit = 0
    while value:
        if value & 1:
            out.append(CAP_NAMES[bit] if bit < len(CAP_NAMES) else "CAP_%d" % bit)
        value >>= 1
        bit += 1
    return out


def _full_set(mask, last_cap):
    try:
        return isinstance(last_cap, int) and int(str(mask), 16) & ((1 << (last_cap + 1)) - 1) \
            == (1 << (last_cap + 1)) - 1
    except ValueError:
        return False


def capabilities(output):
    status = (output or {}).get("status") or {}
    return {"effective": decode_caps(status.get("CapEff", "0")), "bounding": decode_caps(status.get("CapBnd", "0"))}


def findings_from_probe(runner, kind, output, daemon_seccomp=True):
    """Catalog findings for one container's probe output (``kind`` job or service)."""
    out = []
    setting = SETTING[kind]
    job = kind == "job"

    def add(policy_id, evidence):
        out.append(finding(policy_id, runner, setting, evidence))

    status = output.get("status") or {}
    bounding = decode_caps(status.get("CapBnd", "0"))
    effective = decode_caps(status.get("CapEff", "0"))
    last_cap = output.get("cap_last_cap")
    signs = []
    if _full_set(status.get("CapBnd", "0"), last_cap):
        signs.append("all %d capabilities in the bounding set" % (last_cap + 1))
    if (output.get("sysfs") or {}).get("rw"):
        signs.append("/sys mounted read-write")
    devices = output.get("devices") or {}
    privileged = bool(signs)
    if privileged:
        if (output.get("proc_sys") or {}).get("separate_ro_mount") is False:
            signs.append("/proc/sys not read-only")
        if devices.get("block_count"):
            signs.append("%d block devices in /dev" % devices["block_count"])
        add("GR002" if job else "GR003", "runs privileged: " + "; ".join(signs))

    if job:
        strong = sorted(c for c in bounding if c in PRIVILEGED_EQUIVALENT_CAPS)
        if strong and not privileged:
            add("GR028", "bounding set has %s" % ", ".join(strong))
        kept = [c for c in REQUIRED_CAP_DROP if c in bounding]
        if kept:
            add("GR006", "capability bounding set keeps %s (effective: %s)"
                % (", ".join(kept), ", ".join(c for c in kept if c in effective) or "none, the user is not root"))
        if (output.get("raw_socket") or {}).get("ok"):
            add("GR006", "a raw ICMP socket was created (NET_RAW); nothing was sent")
        if (output.get("mknod") or {}).get("ok"):
            add("GR006", "mknod of a character device in /tmp succeeded (MKNOD)")

    escalation = "GR007" if job else "GR029"
    if status.get("NoNewPrivs") not in (None, "1"):
        add(escalation, "NoNewPrivs = %s in /proc/self/status" % status.get("NoNewPrivs"))
    setuid = output.get("setuid") or {}
    if setuid.get("euid") == 0 and setuid.get("ran_as") not in (None, 0):
        add(escalation, "the setuid-root helper run as uid %s got effective uid 0%s"
            % (setuid.get("ran_as"), " (%s)" % setuid["via"] if setuid.get("via") else ""))

    for item in ((output.get("sockets") or {}).get("found") or [])[:10]:
        add("GR009", "Unix socket %s in the container (%s)" % (
            item.get("path"), "accepts connections" if item.get("connect") else
            "connect failed: %s" % item.get("error")))

    if not privileged and devices.get("extra_count"):
        add("GR011", "%d device nodes beyond Docker's defaults: %s" % (
            devices["extra_count"], ", ".join((devices.get("extra") or [])[:8])))

    if daemon_seccomp and status.get("Seccomp") == "0":
        add("GR008", "seccomp is off in the container (Seccomp: 0) although the daemon supports it")
    runtime = (output.get("processes") or {}).get("runtime") or []
    if runtime:
        add("GR008", "host PID namespace: %s visible in /proc" % ", ".join(runtime))
    return out


# --- running the containers ----------------------------------------------------------------

def _not_found(exc):
    return getattr(exc, "status_code", None) == 404 or type(exc).__name__ in ("NotFound", "ImageNotFound")


def parse_output(stdout):
    """The JSON object on the last non-empty line of the probe's stdout."""
    text = stdout.decode("utf-8", "replace") if isinstance(stdout, bytes) else str(stdout or "")
    lines = [line for line in text[-OUTPUT_LIMIT:].splitlines() if line.strip()]
    if not lines:
        raise ProbeError("the probe printed nothing")
    try:
        data = json.loads(lines[-1])
    except ValueError:
        raise ProbeError("the probe's output is not JSON: %s" % _clip(lines[-1], 120))
    if not isinstance(data, dict) or data.get("version") != 1:
        raise ProbeError("the probe's output is not from this module's probe program")
    return data


def run_container(api, image, name, user, host_config, volumes, options, timeout):
    """Start one probe container, wait, read its output and remove it (always)."""
    container = None
    error = None
    try:
        try:
            created = api.create_container(
                image=image, name=name, user=user or "", entrypoint=["python3", "-I", "-c", SCRIPT],
                command=[json.dumps(options)], volumes=list(volumes) or None, host_config=host_config,
                labels={LABEL: "1"}, network_disabled=False)
        except Exception:
            # Docker may have created it before the call failed: remove it by name.
            container = name
            raise
        container = created.get("Id") or name
        api.start(container)
        state = api.wait(container, timeout=timeout)
        stdout = api.logs(container, stdout=True, stderr=False)
        code = state.get("StatusCode") if isinstance(state, Mapping) else state
        if code != 0:
            stderr = api.logs(container, stdout=False, stderr=True)
            text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else str(stderr)
            raise ProbeError("the probe exited with %s: %s" % (code, _clip("".join(text.strip().splitlines()[-1:]))))
        return parse_output(stdout)
    except ProbeError:
        raise
    except Exception as exc:
        error = exc
        raise ProbeError("%s: %s" % (type(exc).__name__, _clip(exc)))
    finally:
        if container is not None:
            try:
                api.remove_container(container, v=True, force=True)
            except Exception as exc:
                if not (error is not None and _not_found(exc)):
                    raise ProbeError("container %s could not be removed: %s%s" % (
                        name, _clip(exc), "; after: %s" % _clip(error) if error is not None else ""))


def _shown(host_config):
    shown = dict(host_config)
    if shown.get("SecurityOpt"):
        shown["SecurityOpt"] = [opt if len(opt) <= 120 else opt[:100] + "...(%d chars)" % len(opt)
                                for opt in shown["SecurityOpt"]]
    return shown


def _incomplete(kind, output):
    """Notes for checks that could not give an answer in this container."""
    notes = []
    setuid = output.get("setuid") or {}
    if setuid.get("euid") is None and setuid.get("error"):
        notes.append("%s container: the setuid check did not run: %s" % (kind, _clip(setuid["error"], 200)))
    if (output.get("sockets") or {}).get("truncated"):
        notes.append("%s container: the socket search stopped after %s entries; sockets deeper in the mounts were "
                     "not looked for" % (kind, output["sockets"].get("entries")))
    return notes


def _entry(name, kind, params, plan=None, part=None, error=None):
    part = part or {}
    return dict(runner=name, container=kind, docker_host=params["_docker_host"], user=part.get("user"),
                network=plan["network"]["label"] if plan else None,
                host_config=_shown(part.get("host_config") or {}), volumes=list(part.get("volumes") or []),
                notes=list(plan["notes"]) if plan else [], capabilities={}, result=None, error=error)


def probe_runner(api, runner, params, daemon_seccomp, token, host_path_exists=os.path.exists):
    """Probe one runner's job (and service) container. Returns (probes, findings, workload)."""
    name = str(_get(runner, "name", "(unnamed)"))
    prefix = NAME_PREFIX + token
    network_name = prefix + "-net"

    def volume_exists(volume):
        try:
            api.inspect_volume(volume)
            return True
        except Exception as exc:
            if _not_found(exc):
                return False
            raise

    probes, findings, workload = [], [], []
    try:
        plan = derive_host_configs(runner, network_name, volume_exists=volume_exists,
                                   host_path_exists=host_path_exists)
    except Exception as exc:
        text = str(exc) if isinstance(exc, ProbeError) else "%s: %s" % (type(exc).__name__, _clip(exc))
        return [_entry(name, "job", params, error=text)], [], []
    network_created = False
    try:
        if plan["network"]["per_build"]:
            section = _table(runner, "docker")
            mtu = _get(section, "network_mtu")
            api.create_network(network_name, driver="bridge", labels={LABEL: "1"},
                               options={"com.docker.network.driver.mtu": str(mtu)} if mtu else None,
                               enable_ipv6=_get(section, "enable_ipv6") is True)
            network_created = True
        for kind in ["job"] + (["service"] if params["services"] else []):
            part = plan[kind]
            entry = _entry(name, kind, params, plan, part)
            probes.append(entry)
            options = {"kind": kind, "workload": bool(params["workload"] and kind == "job")}
            try:
                output = run_container(api, params["image"], "%s-%s" % (prefix, kind), part["user"],
                                       part["host_config"], part["volumes"], options, params["timeout"])
                if (output.get("setuid") or {}).get("needs_unprivileged_user"):
                    second = run_container(api, params["image"], "%s-%s-setuid" % (prefix, kind), NOBODY,
                                           part["host_config"], part["volumes"], {"kind": "setuid"},
                                           params["timeout"])
                    output["setuid"] = dict(second.get("setuid") or {},
                                            via="a second container started as %s" % NOBODY)
            except ProbeError as exc:
                entry["error"] = str(exc)
                continue
            steps = output.pop("workload", None) or []
            entry["result"] = output
            entry["notes"].extend(_incomplete(kind, output))
            entry["capabilities"] = capabilities(output)
            findings.extend(findings_from_probe(name, kind, output, daemon_seccomp))
            for step in steps:
                workload.append(dict(runner=name, step=step.get("step"), ok=bool(step.get("ok")),
                                     detail=step.get("detail"), error=step.get("error"),
                                     needs=WORKLOAD_NEEDS.get(step.get("step"))))
    except Exception as exc:
        probes.append(_entry(name, "network", params, plan, error="%s: %s" % (type(exc).__name__, _clip(exc))))
    finally:
        if network_created:
            try:
                api.remove_network(network_name)
            except Exception as exc:
                probes.append(_entry(name, "network", params, plan, error="network %s could not be removed: %s"
                                     % (network_name, _clip(exc))))
    return probes, findings, workload


def _docker_host(params, runner):
    if params["docker_host"]:
        return params["docker_host"]
    host = _str(_table(runner, "docker"), "host")
    return host or DEFAULT_DOCKER_HOST


def run(params, document, client_factory):
    """Probe every selected runner of ``document``; returns the result dict (without changed)."""
    runners = _get(document, "runners") or []
    if not isinstance(runners, list):
        raise ProbeError("runners in config.toml is not an array of tables")
    wanted = list(params.get("runners") or [])
    names = [str(_get(r, "name", "(unnamed)")) for r in runners if isinstance(r, Mapping)]
    missing = [n for n in wanted if n not in names]
    if missing:
        raise ProbeError("runners not in %s: %s" % (params["path"], ", ".join(missing)))
    result = dict(findings=[], probes=[], workload=[], not_probed=[])
    clients = {}
    try:
        for runner in runners:
            if not isinstance(runner, Mapping):
                continue
            name = str(_get(runner, "name", "(unnamed)"))
            executor = _str(runner, "executor")
            if wanted and name not in wanted:
                result["not_probed"].append(dict(runner=name, executor=executor, reason="not in runners"))
                continue
            if executor not in PROBED_EXECUTORS:
                result["not_probed"].append(dict(runner=name, executor=executor, reason=(
                    "executor %s starts no Linux docker containers to probe" % (executor or "(unset)"))))
                continue
            base_url = _docker_host(params, runner)
            if base_url not in clients:
                clients[base_url] = _connect(client_factory, base_url, params)
            client, seccomp = clients[base_url]
            probes, findings, workload = probe_runner(
                client.api, runner, dict(params, _docker_host=base_url), seccomp, uuid.uuid4().hex[:10])
            result["probes"].extend(probes)
            result["findings"].extend(findings)
            result["workload"].extend(workload)
    finally:
        for client, _seccomp in clients.values():
            try:
                client.close()
            except Exception:
                pass
    return result


def _connect(client_factory, base_url, params):
    try:
        client = client_factory(base_url, params["timeout"])
        info = client.info()
    except Exception as exc:
        raise ProbeError("the Docker API at %s did not answer: %s" % (base_url, _clip(exc)))
    try:
        client.api.inspect_image(params["image"])
    except Exception as exc:
        client.close()
        if _not_found(exc):
            raise ProbeError("probe image %s is not on the Docker engine at %s (it is never pulled): build it "
                             "with tests/images/probe/build.sh, or docker save it elsewhere and docker load it "
                             "there" % (params["image"], base_url))
        raise ProbeError("probe image %s cannot be inspected: %s" % (params["image"], _clip(exc)))
    seccomp = any(str(opt).startswith("name=seccomp") for opt in (info.get("SecurityOptions") or []))
    return client, seccomp


def _client_factory(base_url, timeout):
    return docker.DockerClient(base_url=base_url, timeout=timeout)


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/gitlab-runner/config.toml"),
            image=dict(type="str", default=DEFAULT_IMAGE),
            docker_host=dict(type="str"),
            runners=dict(type="list", elements="str"),
            services=dict(type="bool", default=True),
            workload=dict(type="bool", default=False),
            timeout=dict(type="int", default=120),
        ),
        supports_check_mode=True,
    )
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"), exception=DOCKER_IMPORT_ERROR)
    if not HAS_TOML:
        module.fail_json(msg=missing_required_lib("tomli"))
    params = module.params
    if params["timeout"] < 1:
        module.fail_json(msg="timeout must be at least 1 second, got %d" % params["timeout"])
    if not str(params["image"] or "").strip():
        module.fail_json(msg="image must name the probe image")
    try:
        document = parse_config(read_config(params["path"]))
    except ConfigFileError as exc:
        module.fail_json(msg="%s: %s" % (params["path"], exc), changed=False)
    for secret in secret_values(document):
        module.no_log_values.add(secret)
    try:
        result = run(params, document, _client_factory)
    except ProbeError as exc:
        module.fail_json(msg=str(exc), changed=False)
    except Exception as exc:
        module.fail_json(msg="runner_job_probe failed: %s: %s" % (type(exc).__name__, _clip(exc)), changed=False)
    notes = sorted(set(note for probe in result["probes"] for note in probe["notes"]))
    for note in notes:
        module.warn(note)
    failed = [p for p in result["probes"] if p["error"]]
    if failed:
        module.fail_json(msg="the probe could not run for: %s" % "; ".join(
            "%s (%s container): %s" % (p["runner"], p["container"], p["error"]) for p in failed),
            changed=False, **result)
    module.exit_json(changed=False, **result)


def main():
    run_module()


if __name__ == "__main__":
    main()
