"""runner_job_probe without Docker: the host configuration GitLab Runner would
give job and service containers (derived from config.toml), the mapping of the
probe program's output to catalog findings (fake outputs, shaped like real
ones recorded on Docker 20.10), the container lifecycle against a fake Docker
API (every container and network removed, also on failure), and the module's
own entry point. The live counterpart is tests/integration/test_job_probe.py."""

import copy
import json
import subprocess
import sys

import pytest

from ansible.module_utils.testing import patch_module_args
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.job_probe_script import SCRIPT
from ansible_collections.hardened.gitlab_runner.plugins.modules import runner_job_probe as probe

TOKEN = "glrt-FAKE-job-probe-unit-token-0123456789"
HARDENED_DROPS = ["SETUID", "SETGID", "NET_RAW", "MKNOD", "AUDIT_WRITE", "SETFCAP", "SETPCAP", "SYS_CHROOT"]


def hardened_runner(name="shared", **docker):
    section = {
        "image": "debian:stable-slim",
        "privileged": False,
        "services_privileged": False,
        "cap_drop": list(HARDENED_DROPS),
        "security_opt": ["no-new-privileges:true"],
        "services_security_opt": ["no-new-privileges:true"],
        "volumes": ["/cache"],
    }
    section.update(docker)
    return {"name": name, "url": "https://gitlab.example.com", "token": TOKEN, "executor": "docker",
            "feature_flags": {"FF_NETWORK_PER_BUILD": True, "FF_ENABLE_JOB_CLEANUP": True}, "docker": section}


def derive(runner, **kwargs):
    kwargs.setdefault("host_path_exists", lambda path: True)
    return probe.derive_host_configs(runner, "hgr-probe-test-net", **kwargs)


# --- host configuration: job container ---------------------------------------------------------

def test_hardened_job_and_service_host_config():
    plan = derive(hardened_runner())
    assert plan["job"]["host_config"] == {
        "Privileged": False,
        "CapDrop": HARDENED_DROPS,
        "SecurityOpt": ["no-new-privileges:true"],
        "NetworkMode": "hgr-probe-test-net",
    }
    assert plan["service"]["host_config"] == {
        "Privileged": False,
        "SecurityOpt": ["no-new-privileges:true"],
        "NetworkMode": "hgr-probe-test-net",
    }
    assert plan["job"]["volumes"] == ["/cache", "/builds"]
    assert plan["service"]["volumes"] == ["/cache", "/builds"]
    assert plan["job"]["user"] is None and plan["service"]["user"] is None
    assert plan["network"] == {"per_build": True, "mode": "hgr-probe-test-net", "label": "per-build network"}
    assert plan["notes"] == []


@pytest.mark.parametrize("given, expected", [
    (["cap_setuid", "Setgid", " net_raw ", "CAP_MKNOD"], ["SETUID", "SETGID", "NET_RAW", "MKNOD"]),
    (["SETUID", "CAP_SETUID", "setuid"], ["SETUID"]),
    (["all"], ["ALL"]),
    ("NET_RAW", ["NET_RAW"]),
    (["", "  "], []),
    (None, []),
])
def test_capability_names_are_normalized_as_docker_does(given, expected):
    assert probe.docker_caps(given) == expected
    plan = derive(hardened_runner(cap_drop=given, cap_add=given))
    assert plan["job"]["host_config"].get("CapDrop", []) == expected
    assert plan["job"]["host_config"].get("CapAdd", []) == expected


def test_keys_are_matched_case_insensitively_like_the_runner():
    runner = {"Name": "odd", "Executor": "docker", "Docker": {
        "Cap_Drop": ["setuid"], "CAP_ADD": ["net_raw"], "Security_Opt": ["no-new-privileges:true"],
        "Privileged": True, "User": "1000", "Volumes": ["/cache"], "Network_Mode": "host"}}
    plan = derive(runner)
    job = plan["job"]["host_config"]
    assert job["CapDrop"] == ["SETUID"] and job["CapAdd"] == ["NET_RAW"]
    assert job["SecurityOpt"] == ["no-new-privileges:true"]
    assert job["Privileged"] is True and plan["service"]["host_config"]["Privileged"] is True
    assert job["NetworkMode"] == "host"
    assert plan["job"]["user"] == "1000"


def test_service_container_gets_only_the_service_settings():
    runner = hardened_runner(
        cap_add=["NET_ADMIN"], user="1000:1000", devices=["/dev/kvm"], device_cgroup_rules=["c 10:232 rwm"],
        pid_mode="host", ipcmode="host", group_add=["video"], sysctls={"net.ipv4.ip_forward": "1"},
        tmpfs={"/scratch": "rw,size=64m"}, services_tmpfs={"/var/lib/mysql": "rw"},
        services_security_opt=["no-new-privileges:true", "apparmor=docker-default"],
        services_devices={"registry.example.com/gpu/*": ["/dev/dri/card0"], "*": ["/dev/fuse:/dev/fuse:rw"]},
        userns_mode="host", shm_size=268435456, runtime="runc", volumes=["/cache", "/srv/ref:/ref:ro"])
    plan = derive(runner)
    job, service = plan["job"]["host_config"], plan["service"]["host_config"]
    assert job["CapAdd"] == ["NET_ADMIN"] and job["CapDrop"] == HARDENED_DROPS
    assert job["Devices"] == [{"PathOnHost": "/dev/kvm", "PathInContainer": "/dev/kvm", "CgroupPermissions": "rwm"}]
    assert job["DeviceCgroupRules"] == ["c 10:232 rwm"]
    assert (job["PidMode"], job["IpcMode"], job["GroupAdd"]) == ("host", "host", ["video"])
    assert job["Sysctls"] == {"net.ipv4.ip_forward": "1"} and job["Tmpfs"] == {"/scratch": "rw,size=64m"}
    # GitLab Runner's createHostConfigForService: no cap_add/cap_drop, security_opt, user,
    # devices, pid/ipc mode, group_add or sysctls from the job's settings.
    for key in ("CapAdd", "CapDrop", "DeviceCgroupRules", "PidMode", "IpcMode", "GroupAdd", "Sysctls"):
        assert key not in service, key
    assert service["SecurityOpt"] == ["no-new-privileges:true", "apparmor=docker-default"]
    assert service["Devices"] == [
        {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rw"},
        {"PathOnHost": "/dev/dri/card0", "PathInContainer": "/dev/dri/card0", "CgroupPermissions": "rwm"}]
    assert service["Tmpfs"] == {"/var/lib/mysql": "rw"}
    assert plan["service"]["user"] is None and plan["job"]["user"] == "1000:1000"
    # ...but what the runner shares with services does reach them.
    for key in ("UsernsMode", "NetworkMode", "Binds", "ShmSize", "Runtime"):
        assert service[key] == job[key], key
    assert service["Binds"] == ["/srv/ref:/ref:ro"]
    assert any("services_devices" in note for note in plan["notes"])


@pytest.mark.parametrize("privileged, services_privileged, job, service", [
    (False, None, False, False),
    (True, None, True, True),          # unset: services follow privileged
    (True, False, True, False),
    (False, True, False, True),
    (None, None, False, False),
])
def test_privileged_and_services_privileged(privileged, services_privileged, job, service):
    docker = {"privileged": privileged, "services_privileged": services_privileged}
    runner = hardened_runner(**dict((k, v) for k, v in docker.items()))
    plan = derive(runner)
    assert plan["job"]["host_config"]["Privileged"] is job
    assert plan["service"]["host_config"]["Privileged"] is service


def test_privileged_of_the_wrong_type_is_refused_like_the_runner():
    with pytest.raises(probe.ProbeError, match="not a boolean"):
        derive(hardened_runner(privileged="true"))


def test_security_opt_is_passed_in_order_so_the_last_of_a_kind_wins():
    options = ["no-new-privileges:true", "seccomp=unconfined", "no-new-privileges:false"]
    plan = derive(hardened_runner(security_opt=options))
    assert plan["job"]["host_config"]["SecurityOpt"] == options


def test_seccomp_profile_path_is_read_and_inlined_like_the_runner():
    profile = '{"defaultAction": "SCMP_ACT_ERRNO"}'
    read = {"/etc/gitlab-runner/seccomp.json": profile}
    plan = derive(hardened_runner(security_opt=["seccomp=/etc/gitlab-runner/seccomp.json", "seccomp:/x.json",
                                                "seccomp=builtin", 'seccomp={"defaultAction":"SCMP_ACT_LOG"}']),
                  read_file=lambda path: read[path])
    assert plan["job"]["host_config"]["SecurityOpt"] == [
        "seccomp=" + profile, "seccomp:/x.json", "seccomp=builtin", 'seccomp={"defaultAction":"SCMP_ACT_LOG"}']
    with pytest.raises(probe.ProbeError, match="cannot be used"):
        derive(hardened_runner(security_opt=["seccomp=/missing.json"]), read_file=lambda path: open(path).read())
    with pytest.raises(probe.ProbeError, match="cannot be used"):
        derive(hardened_runner(services_security_opt=["seccomp=/p.json"]), read_file=lambda path: "not json")


def test_volumes_become_binds_and_anonymous_volumes():
    existing_hosts = {"/var/run/docker.sock", "/srv/ref"}
    existing_volumes = {"shared-cache"}
    plan = derive(hardened_runner(volumes=[
        "/cache", "/var/run/docker.sock:/var/run/docker.sock", "/srv/ref:/ref:ro", "/srv/missing:/data:rw",
        "shared-cache:/shared", "gone:/gone", "/tmp/x:relative/dir", ""]),
        host_path_exists=lambda path: path in existing_hosts, volume_exists=lambda name: name in existing_volumes)
    assert plan["job"]["host_config"]["Binds"] == [
        "/var/run/docker.sock:/var/run/docker.sock", "/srv/ref:/ref:ro", "shared-cache:/shared"]
    assert plan["job"]["volumes"] == ["/cache", "/data", "/gone", "/builds/project/relative/dir", "/builds"]
    notes = " | ".join(plan["notes"])
    assert "host path /srv/missing does not exist" in notes
    assert "named volume gone does not exist" in notes
    assert "relative destination relative/dir placed under /builds/project" in notes


def test_builds_volume_is_not_added_twice():
    plan = derive(hardened_runner(volumes=["/builds", "/cache"]))
    assert plan["job"]["volumes"] == ["/builds", "/cache"]
    plan = derive(hardened_runner(volumes=["/srv/builds:/builds"]))
    assert plan["job"]["volumes"] == [] and plan["job"]["host_config"]["Binds"] == ["/srv/builds:/builds"]


@pytest.mark.parametrize("volume", ["/srv:/", "/", "/a:/b:ro:extra"])
def test_volumes_the_runner_refuses(volume):
    with pytest.raises(probe.ProbeError):
        derive(hardened_runner(volumes=[volume]))


def test_windows_volumes_are_noted_not_mirrored():
    plan = derive(hardened_runner(volumes=["C:\\cache", "C:\\src:C:\\dst"]))
    assert plan["job"]["host_config"].get("Binds", []) == []
    assert len([n for n in plan["notes"] if "Windows path" in n]) == 2


@pytest.mark.parametrize("docker, flags, mode, label", [
    ({}, {"FF_NETWORK_PER_BUILD": True}, "hgr-probe-test-net", "per-build network"),
    ({}, {"FF_NETWORK_PER_BUILD": "true"}, "hgr-probe-test-net", "per-build network"),
    ({}, {}, "", "default bridge"),
    ({}, {"FF_NETWORK_PER_BUILD": False}, "", "default bridge"),
    ({"network_mode": "host"}, {"FF_NETWORK_PER_BUILD": True}, "host", "host"),
    ({"network_mode": "ci-net"}, {}, "ci-net", "ci-net"),
])
def test_network_mode(docker, flags, mode, label):
    runner = hardened_runner(**docker)
    runner["feature_flags"] = flags
    plan = derive(runner)
    assert plan["job"]["host_config"].get("NetworkMode", "") == mode
    assert plan["service"]["host_config"].get("NetworkMode", "") == mode
    assert plan["network"]["label"] == label


@pytest.mark.parametrize("spec, expected", [
    ("/dev/kvm", ("/dev/kvm", "/dev/kvm", "rwm")),
    ("/dev/sda:/dev/xvda", ("/dev/sda", "/dev/xvda", "rwm")),
    ("/dev/fuse:/dev/fuse:r", ("/dev/fuse", "/dev/fuse", "r")),
])
def test_devices(spec, expected):
    device = probe.parse_device(spec)
    assert (device["PathOnHost"], device["PathInContainer"], device["CgroupPermissions"]) == expected
    with pytest.raises(probe.ProbeError, match="too many colons"):
        probe.parse_device(spec + ":a:b:c")


def test_user():
    assert derive(hardened_runner(user="gitlab-job"))["job"]["user"] == "gitlab-job"
    assert derive(hardened_runner(user="1000:1000", allowed_users=["1000:1000"]))["job"]["user"] == "1000:1000"
    assert derive(hardened_runner(user=""))["job"]["user"] is None
    with pytest.raises(probe.ProbeError, match="allowed_users"):
        derive(hardened_runner(user="root", allowed_users=["1000"]))


def test_settings_not_mirrored_are_noted():
    plan = derive(hardened_runner(gpus="all", volumes_from=["x"], cache_dir="/srv/cache",
                                  allowed_privileged_images=["docker:*-dind"]))
    notes = " | ".join(plan["notes"])
    for key in ("gpus", "volumes_from", "cache_dir", "allowed_privileged_images"):
        assert "not mirrored: " + key in notes


def test_shm_size_of_the_wrong_type():
    assert derive(hardened_runner(shm_size=0))["job"]["host_config"].get("ShmSize") is None
    with pytest.raises(probe.ProbeError, match="shm_size"):
        derive(hardened_runner(shm_size="64m"))


# --- probe output -> findings --------------------------------------------------------------------

# Recorded from the hardened default on Docker 20.10 (abridged).
HARDENED_JOB_OUTPUT = {
    "version": 1, "kind": "job", "uid": 0, "euid": 0, "gid": 0, "groups": [0],
    "setuid": {"helper": "/usr/local/libexec/hgr-probe/suid-id", "ran_as": 65534, "euid": 65534, "error": None,
               "needs_unprivileged_user": False, "via": "a second container started as 65534:65534"},
    "status": {"Uid": "0\t0\t0\t0", "Gid": "0\t0\t0\t0", "CapInh": "0000000000000000",
               "CapPrm": "000000000000043b", "CapEff": "000000000000043b", "CapBnd": "000000000000043b",
               "CapAmb": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2"},
    "cap_last_cap": 40,
    "raw_socket": {"ok": False, "error": "EPERM (Operation not permitted)"},
    "mknod": {"ok": False, "error": "EPERM (Operation not permitted)"},
    "sockets": {"found": [], "entries": 837, "truncated": False, "roots": ["/run", "/tmp", "/builds", "/cache"]},
    "sysfs": {"mounted": True, "rw": False},
    "proc_sys": {"separate_ro_mount": True},
    "devices": {"block": [], "block_count": 0, "extra": [], "extra_count": 0},
    "processes": {"count": 1, "runtime": []},
}
DEFAULT_DOCKER_CAPS = "00000000a80425fb"   # Docker's 14 default capabilities
ALL_CAPS_41 = "000001ffffffffff"          # every capability up to CHECKPOINT_RESTORE (40)


def output(**changes):
    data = copy.deepcopy(HARDENED_JOB_OUTPUT)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return data


def found(runner_output, kind="job", seccomp=True):
    return [(f["id"], f["evidence"]) for f in probe.findings_from_probe("shared", kind, runner_output, seccomp)]


def test_decode_caps():
    assert probe.decode_caps("000000000000043b") == ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL",
                                                     "NET_BIND_SERVICE"]
    assert set(probe.decode_caps(DEFAULT_DOCKER_CAPS)) == {
        "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP", "SETPCAP",
        "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}
    assert len(probe.decode_caps(ALL_CAPS_41)) == 41
    assert probe.decode_caps("0000040000000000") == ["CAP_42"]
    assert probe.decode_caps("nonsense") == [] and probe.decode_caps("0") == []


def test_hardened_output_gives_no_finding():
    assert found(output()) == []
    service = output(kind="service", status={"CapBnd": DEFAULT_DOCKER_CAPS, "CapEff": DEFAULT_DOCKER_CAPS},
                     raw_socket={"ok": True}, mknod={"ok": True})
    # Service containers keep Docker's default capabilities by design: no capability finding.
    assert found(service, "service") == []


def test_kept_required_capabilities_are_gr006_for_jobs():
    kept = output(status={"CapBnd": "00000000000004fb", "CapEff": "00000000000004fb"})  # + SETGID, SETUID
    assert found(kept) == [("GR006", "capability bounding set keeps SETUID, SETGID (effective: SETUID, SETGID)")]
    non_root = output(uid=1000, euid=1000, status={"CapBnd": "00000000000024fb", "CapEff": "0000000000000000"})
    assert found(non_root) == [("GR006", "capability bounding set keeps SETUID, SETGID, NET_RAW "
                                         "(effective: none, the user is not root)")]


def test_raw_socket_and_mknod_are_gr006_for_jobs_only():
    both = output(raw_socket={"ok": True, "error": None}, mknod={"ok": True, "error": None})
    assert found(both) == [("GR006", "a raw ICMP socket was created (NET_RAW); nothing was sent"),
                           ("GR006", "mknod of a character device in /tmp succeeded (MKNOD)")]
    assert found(both, "service") == []


def test_no_new_privileges_off_is_gr007_for_jobs_and_gr029_for_services():
    off = output(status={"NoNewPrivs": "0"})
    assert found(off) == [("GR007", "NoNewPrivs = 0 in /proc/self/status")]
    assert found(off, "service") == [("GR029", "NoNewPrivs = 0 in /proc/self/status")]


def test_setuid_escalation():
    escalated = output(setuid={"ran_as": 65534, "euid": 0})
    assert found(escalated) == [("GR007", "the setuid-root helper run as uid 65534 got effective uid 0 "
                                          "(a second container started as 65534:65534)")]
    direct = output(setuid={"ran_as": 1000, "euid": 0, "via": None})
    assert found(direct, "service") == [("GR029", "the setuid-root helper run as uid 1000 got effective uid 0")]
    # root running it proves nothing; a failed run is not a finding either
    assert found(output(setuid={"ran_as": 0, "euid": 0})) == []
    assert found(output(setuid={"ran_as": None, "euid": None, "error": "helper missing"})) == []


def test_runtime_sockets_are_gr009():
    sockets = output(sockets={"found": [
        {"path": "/run/docker.sock", "connect": True, "error": None},
        {"path": "/host/run/containerd/containerd.sock", "connect": False, "error": "EACCES (Permission denied)"}]})
    expected = [("GR009", "Unix socket /run/docker.sock in the container (accepts connections)"),
                ("GR009", "Unix socket /host/run/containerd/containerd.sock in the container "
                          "(connect failed: EACCES (Permission denied))")]
    assert found(sockets) == expected
    assert found(sockets, "service") == expected


def test_privileged_signs():
    privileged = output(status={"CapBnd": ALL_CAPS_41, "CapEff": ALL_CAPS_41}, sysfs={"rw": True},
                        proc_sys={"separate_ro_mount": False},
                        devices={"block": ["/dev/vda"], "block_count": 3, "extra": ["/dev/vda"], "extra_count": 90})
    job = found(privileged)
    assert job[0] == ("GR002", "runs privileged: all 41 capabilities in the bounding set; /sys mounted read-write; "
                               "/proc/sys not read-only; 3 block devices in /dev")
    assert [i for i, _evidence in job] == ["GR002", "GR006"]  # no GR028 or GR011 on top of privileged
    assert [i for i, _evidence in found(privileged, "service")] == ["GR003"]
    assert found(output(sysfs={"rw": True}))[0] == ("GR002", "runs privileged: /sys mounted read-write")


def test_privileged_equivalent_capabilities_are_gr028():
    sys_admin = output(status={"CapBnd": "000000000020043b", "CapEff": "000000000020043b"})
    assert found(sys_admin) == [("GR028", "bounding set has SYS_ADMIN")]


def test_extra_devices_are_gr011():
    devices = output(devices={"block": [], "block_count": 0, "extra": ["/dev/kvm", "/dev/fuse"], "extra_count": 2})
    assert found(devices) == [("GR011", "2 device nodes beyond Docker's defaults: /dev/kvm, /dev/fuse")]
    assert found(devices, "service") == [("GR011", "2 device nodes beyond Docker's defaults: /dev/kvm, /dev/fuse")]


def test_unconfined_and_host_namespaces_are_gr008():
    unconfined = output(status={"Seccomp": "0"})
    assert found(unconfined) == [("GR008", "seccomp is off in the container (Seccomp: 0) although the daemon "
                                           "supports it")]
    assert found(unconfined, seccomp=False) == []
    host_pid = output(processes={"count": 180, "runtime": ["containerd", "dockerd"]})
    assert found(host_pid) == [("GR008", "host PID namespace: containerd, dockerd visible in /proc")]


def test_findings_carry_runner_and_setting():
    items = probe.findings_from_probe("shared", "service", output(status={"NoNewPrivs": "0"}))
    assert items[0]["runner"] == "shared" and items[0]["setting"] == "probe: service container"
    assert items[0]["severity"] == "medium" and set(items[0]) == {
        "id", "severity", "title", "guidance", "runner", "setting", "evidence", "ack", "enforcement"}


def test_parse_output():
    assert probe.parse_output(b"noise\n" + json.dumps({"version": 1, "x": 1}).encode() + b"\n\n") == {
        "version": 1, "x": 1}
    for bad, message in ((b"", "printed nothing"), (b"Traceback...", "not JSON"),
                         (b'{"version": 2}', "not from this module"), (b"[1]", "not from this module")):
        with pytest.raises(probe.ProbeError, match=message):
            probe.parse_output(bad)


# --- the probe program itself ------------------------------------------------------------------------

def test_probe_script_runs_here_and_reports_its_facts(tmp_path):
    """The program is valid Python that runs as any user and prints one JSON object."""
    proc = subprocess.run([sys.executable, "-I", "-c", SCRIPT, json.dumps({"kind": "service"})],
                          capture_output=True, timeout=120, cwd=str(tmp_path), check=False)
    assert proc.returncode == 0, proc.stderr
    data = probe.parse_output(proc.stdout)
    assert data["kind"] == "service"
    for key in ("status", "cap_last_cap", "raw_socket", "mknod", "sockets", "sysfs", "devices", "processes",
                "setuid"):
        assert key in data, key
    assert data["sockets"]["entries"] <= 20000 + 1
    compile(SCRIPT, "probe", "exec")


# --- container lifecycle against a fake Docker API -------------------------------------------------

class NotFound(Exception):
    status_code = 404


class FakeApi(object):
    def __init__(self, outputs=None):
        self.outputs = list(outputs or [HARDENED_JOB_OUTPUT, dict(HARDENED_JOB_OUTPUT, kind="service")])
        self.calls = []
        self.containers = {}
        self.networks = set()
        self.fail = {}
        self.exit_code = 0
        self.volumes = set()

    def _maybe_fail(self, name):
        if name in self.fail:
            raise self.fail[name]

    def create_container(self, **kwargs):
        self.calls.append(("create", kwargs))
        self._maybe_fail("create")
        cid = "id-%d" % (len(self.containers) + 1)
        self.containers[cid] = kwargs
        return {"Id": cid}

    def start(self, cid):
        self.calls.append(("start", cid))
        self._maybe_fail("start")

    def wait(self, cid, timeout=None):
        self.calls.append(("wait", cid, timeout))
        self._maybe_fail("wait")
        return {"StatusCode": self.exit_code}

    def logs(self, cid, stdout=True, stderr=True):
        if stderr and not stdout:
            return b"Traceback (most recent call last):\nRuntimeError: boom\n"
        self._maybe_fail("logs")
        data = self.outputs.pop(0)
        return data if isinstance(data, bytes) else (json.dumps(data) + "\n").encode()

    def remove_container(self, cid, v=False, force=False):
        self.calls.append(("remove", cid, v, force))
        self._maybe_fail("remove")
        if cid not in self.containers:
            raise NotFound("no such container: %s" % cid)
        del self.containers[cid]

    def create_network(self, name, **kwargs):
        self.calls.append(("create_network", name, kwargs))
        self._maybe_fail("create_network")
        self.networks.add(name)

    def remove_network(self, name):
        self.calls.append(("remove_network", name))
        self._maybe_fail("remove_network")
        self.networks.discard(name)

    def inspect_volume(self, name):
        if name not in self.volumes:
            raise NotFound(name)
        return {"Name": name}

    def inspect_image(self, name):
        self._maybe_fail("inspect_image")
        return {"Id": "sha256:probe"}

    def removed(self):
        return [c for c in self.calls if c[0] == "remove"]


PARAMS = dict(path="/etc/gitlab-runner/config.toml", image=probe.DEFAULT_IMAGE, docker_host=None, runners=None,
              services=True, workload=False, timeout=30, _docker_host="unix:///var/run/docker.sock")


def run_runner(api, runner=None, **params):
    return probe.probe_runner(api, runner or hardened_runner(), dict(PARAMS, **params), True, "t0k3n",
                              host_path_exists=lambda path: True)


def test_lifecycle_job_and_service_containers_are_started_and_removed():
    api = FakeApi()
    probes, findings, workload = run_runner(api)
    assert [p["container"] for p in probes] == ["job", "service"] and findings == [] and workload == []
    assert [p["error"] for p in probes] == [None, None]
    creates = [c[1] for c in api.calls if c[0] == "create"]
    assert [c["name"] for c in creates] == ["hgr-probe-t0k3n-job", "hgr-probe-t0k3n-service"]
    job = creates[0]
    assert job["entrypoint"][:3] == ["python3", "-I", "-c"] and job["entrypoint"][3] == SCRIPT
    assert json.loads(job["command"][0]) == {"kind": "job", "workload": False}
    assert job["host_config"]["CapDrop"] == HARDENED_DROPS
    assert job["volumes"] == ["/cache", "/builds"] and job["labels"] == {probe.LABEL: "1"}
    assert creates[1]["host_config"].get("CapDrop") is None
    assert api.containers == {} and api.networks == set()
    assert all(c[2] is True and c[3] is True for c in api.removed())  # with volumes, forced
    network = [c for c in api.calls if c[0] == "create_network"][0]
    assert network[1] == "hgr-probe-t0k3n-net" and network[2]["labels"] == {probe.LABEL: "1"}
    assert api.calls[-1] == ("remove_network", "hgr-probe-t0k3n-net")


def test_setuid_check_falls_back_to_a_container_started_as_65534():
    needs = copy.deepcopy(HARDENED_JOB_OUTPUT)
    needs["setuid"] = {"ran_as": None, "euid": None, "error": "cannot become uid 65534 here",
                       "needs_unprivileged_user": True}
    second = {"version": 1, "kind": "setuid", "setuid": {"ran_as": 65534, "euid": 0, "error": None,
                                                         "needs_unprivileged_user": False}}
    api = FakeApi([needs, second])
    probes, findings, _workload = run_runner(api, services=False)
    creates = [c[1] for c in api.calls if c[0] == "create"]
    assert [(c["name"], c["user"]) for c in creates] == [("hgr-probe-t0k3n-job", ""),
                                                         ("hgr-probe-t0k3n-job-setuid", "65534:65534")]
    assert json.loads(creates[1]["command"][0]) == {"kind": "setuid"}
    assert creates[1]["host_config"] == creates[0]["host_config"]
    assert probes[0]["result"]["setuid"]["via"] == "a second container started as 65534:65534"
    assert [f["id"] for f in findings] == ["GR007"]
    assert api.containers == {}


@pytest.mark.parametrize("stage, error", [
    ("start", RuntimeError("OCI runtime create failed: unable to apply caps")),
    ("wait", TimeoutError("read timed out")),
    ("logs", ConnectionError("connection reset")),
])
def test_containers_are_removed_when_a_probe_fails(stage, error):
    api = FakeApi()
    api.fail[stage] = error
    probes, findings, _workload = run_runner(api)
    assert [p["error"] for p in probes] == ["%s: %s" % (type(error).__name__, error)] * 2
    assert findings == [] and api.containers == {} and api.networks == set()
    assert len(api.removed()) == 2


def test_non_zero_exit_and_garbage_output_are_errors_and_removed():
    api = FakeApi([b"not json\n"])
    api.exit_code = 1
    probes, _findings, _workload = run_runner(api, services=False)
    assert probes[0]["error"] == "the probe exited with 1: RuntimeError: boom"
    assert api.containers == {}
    api = FakeApi([b"Segmentation fault\n"])
    probes, _findings, _workload = run_runner(api, services=False)
    assert probes[0]["error"].startswith("the probe's output is not JSON")
    assert api.containers == {}


def test_create_failure_removes_by_name_and_ignores_not_found():
    api = FakeApi()
    api.fail["create"] = RuntimeError("network hgr-x not found")
    probes, _findings, _workload = run_runner(api, services=False)
    assert probes[0]["error"] == "RuntimeError: network hgr-x not found"
    assert api.removed() == [("remove", "hgr-probe-t0k3n-job", True, True)]


def test_a_container_that_cannot_be_removed_is_an_error():
    api = FakeApi()
    api.fail["remove"] = RuntimeError("daemon gone")
    probes, _findings, _workload = run_runner(api, services=False)
    assert probes[0]["error"] == "container hgr-probe-t0k3n-job could not be removed: daemon gone"


def test_network_errors():
    api = FakeApi()
    api.fail["create_network"] = RuntimeError("pool exhausted")
    probes, _findings, _workload = run_runner(api)
    assert [(p["container"], p["error"]) for p in probes] == [("network", "RuntimeError: pool exhausted")]
    assert api.networks == set() and not [c for c in api.calls if c[0] == "remove_network"]
    api = FakeApi()
    api.fail["remove_network"] = RuntimeError("in use")
    probes, _findings, _workload = run_runner(api)
    assert probes[-1]["container"] == "network"
    assert probes[-1]["error"] == "network hgr-probe-t0k3n-net could not be removed: in use"


def test_no_network_is_created_without_per_build_networks():
    runner = hardened_runner()
    runner["feature_flags"] = {}
    api = FakeApi()
    run_runner(api, runner)
    assert not [c for c in api.calls if "network" in c[0]]


def test_a_config_the_runner_refuses_is_an_error_without_containers():
    api = FakeApi()
    probes, _findings, _workload = run_runner(api, hardened_runner(volumes=["/srv:/"]))
    assert probes[0]["error"] == "volume '/srv:/' targets /; GitLab Runner refuses it" and api.calls == []


def test_workload_steps_are_returned_with_what_they_need():
    out = copy.deepcopy(HARDENED_JOB_OUTPUT)
    out["workload"] = [
        {"step": "run an interpreter (python3 -c)", "ok": True, "detail": "python3 printed 45", "error": None},
        {"step": "su to another user", "ok": False, "detail": None, "error": "su: cannot set groups"}]
    api = FakeApi([out])
    probes, _findings, workload = run_runner(api, services=False, workload=True)
    assert json.loads([c[1] for c in api.calls if c[0] == "create"][0]["command"][0])["workload"] is True
    assert "workload" not in probes[0]["result"]
    assert [(w["runner"], w["step"], w["ok"]) for w in workload] == [
        ("shared", "run an interpreter (python3 -c)", True), ("shared", "su to another user", False)]
    assert workload[0]["needs"] is None and "SETUID and SETGID" in workload[1]["needs"]
    assert set(probe.WORKLOAD_NEEDS) <= set(SCRIPT_STEPS)


SCRIPT_STEPS = [line.split('step("', 1)[1].split('",', 1)[0] for line in SCRIPT.splitlines()
                if line.strip().startswith('step("')]


# --- run(): runner selection and the engine ---------------------------------------------------------

class FakeClient(object):
    def __init__(self, api, info=None):
        self.api = api
        self._info = info or {"SecurityOptions": ["name=seccomp,profile=default"]}
        self.closed = False

    def info(self):
        return self._info

    def close(self):
        self.closed = True


def document(*runners):
    return {"concurrent": 2, "runners": list(runners)}


def test_run_selects_docker_runners_and_skips_the_rest():
    api = FakeApi([HARDENED_JOB_OUTPUT] * 6)
    urls = []

    def factory(url, timeout):
        urls.append(url)
        return FakeClient(api)

    shell = {"name": "shell", "executor": "shell"}
    k8s = {"name": "k8s", "executor": "kubernetes"}
    win = {"name": "win", "executor": "docker-windows"}
    remote = hardened_runner("remote", host="tcp://10.0.0.5:2376")
    result = probe.run(dict(PARAMS, services=False), document(
        hardened_runner("a"), shell, k8s, win, remote, hardened_runner("b")), factory)
    assert [p["runner"] for p in result["probes"]] == ["a", "remote", "b"]
    assert [(s["runner"], s["executor"]) for s in result["not_probed"]] == [
        ("shell", "shell"), ("k8s", "kubernetes"), ("win", "docker-windows")]
    assert urls == ["unix:///var/run/docker.sock", "tcp://10.0.0.5:2376"]
    assert api.containers == {}


def test_run_with_selected_runners_and_docker_host():
    api = FakeApi([HARDENED_JOB_OUTPUT] * 2)
    urls = []
    result = probe.run(dict(PARAMS, services=False, runners=["b"], docker_host="unix:///run/other.sock"),
                       document(hardened_runner("a"), hardened_runner("b")),
                       lambda url, timeout: urls.append(url) or FakeClient(api))
    assert [p["runner"] for p in result["probes"]] == ["b"]
    assert result["not_probed"] == [{"runner": "a", "executor": "docker", "reason": "not in runners"}]
    assert urls == ["unix:///run/other.sock"]
    with pytest.raises(probe.ProbeError, match="runners not in .*: nope"):
        probe.run(dict(PARAMS, runners=["nope"]), document(hardened_runner("a")), None)


def test_run_without_the_image_or_the_daemon():
    api = FakeApi()
    api.fail["inspect_image"] = NotFound("No such image")
    with pytest.raises(probe.ProbeError, match="is never pulled.*tests/images/probe/build.sh"):
        probe.run(dict(PARAMS), document(hardened_runner()), lambda url, timeout: FakeClient(api))

    def down(url, timeout):
        raise ConnectionError("connection refused")

    with pytest.raises(probe.ProbeError, match="did not answer: connection refused"):
        probe.run(dict(PARAMS), document(hardened_runner()), down)


def test_seccomp_finding_only_when_the_daemon_supports_it():
    unconfined = output(status={"Seccomp": "0"})
    api = FakeApi([unconfined])
    result = probe.run(dict(PARAMS, services=False), document(hardened_runner()),
                       lambda url, timeout: FakeClient(api, {"SecurityOptions": []}))
    assert result["findings"] == []
    api = FakeApi([unconfined])
    result = probe.run(dict(PARAMS, services=False), document(hardened_runner()), lambda url, timeout: FakeClient(api))
    assert [f["id"] for f in result["findings"]] == ["GR008"]


# --- the module entry point --------------------------------------------------------------------------

CONFIG = """
concurrent = 2
[[runners]]
  name = "shared"
  url = "https://gitlab.example.com"
  token = "%s"
  executor = "docker"
  [runners.feature_flags]
    FF_NETWORK_PER_BUILD = true
  [runners.docker]
    cap_drop = ["SETUID", "SETGID", "NET_RAW", "MKNOD"]
    security_opt = ["no-new-privileges:false"]
    services_security_opt = ["no-new-privileges:true"]
    volumes = ["/cache"]
""" % TOKEN


def run_module(monkeypatch, capsys, args, api, expect_failure=False):
    monkeypatch.setattr(probe, "HAS_DOCKER", True)
    monkeypatch.setattr(probe, "_client_factory", lambda url, timeout: FakeClient(api))
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            probe.main()
    out = capsys.readouterr().out
    assert TOKEN not in out
    result = json.loads(out)
    assert result["changed"] is False
    assert (exit_info.value.code == 1) is expect_failure, result
    return result


def test_module_reports_findings_and_changes_nothing_in_check_mode(monkeypatch, capsys, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    api = FakeApi([output(status={"NoNewPrivs": "0"}), dict(HARDENED_JOB_OUTPUT, kind="service")])
    result = run_module(monkeypatch, capsys, {"path": str(path), "_ansible_check_mode": True}, api)
    assert [(f["id"], f["setting"]) for f in result["findings"]] == [("GR007", "probe: job container")]
    assert [p["container"] for p in result["probes"]] == ["job", "service"]
    assert api.containers == {} and api.networks == set()


def test_module_fails_naming_the_runner_when_a_probe_cannot_run(monkeypatch, capsys, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    api = FakeApi()
    api.fail["start"] = RuntimeError("unable to apply caps")
    result = run_module(monkeypatch, capsys, {"path": str(path)}, api, expect_failure=True)
    assert result["msg"] == ("the probe could not run for: shared (job container): RuntimeError: unable to apply "
                             "caps; shared (service container): RuntimeError: unable to apply caps")
    assert len(result["probes"]) == 2 and api.containers == {}


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("[[runners]\n", "not valid TOML"),
    ("runners = 3\n", "not an array of tables"),
])
def test_module_refuses_a_config_it_cannot_read(monkeypatch, capsys, tmp_path, content, message):
    path = tmp_path / "config.toml"
    if content is not None:
        path.write_text(content)
    result = run_module(monkeypatch, capsys, {"path": str(path)}, FakeApi(), expect_failure=True)
    assert message in result["msg"]


def test_module_without_the_docker_sdk(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(probe, "HAS_DOCKER", False)
    monkeypatch.setattr(probe, "DOCKER_IMPORT_ERROR", "ImportError: No module named 'docker'")
    with patch_module_args({"path": str(tmp_path / "config.toml")}):
        with pytest.raises(SystemExit):
            probe.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] and "docker" in result["msg"] and "required" in result["msg"].lower()


def test_documentation_is_valid_yaml_and_lists_every_option():
    import yaml
    doc = yaml.safe_load(probe.DOCUMENTATION)
    assert set(doc["options"]) == {"path", "image", "docker_host", "runners", "services", "workload", "timeout"}
    yaml.safe_load(probe.EXAMPLES)
    returned = yaml.safe_load(probe.RETURN)
    assert set(returned) == {"findings", "probes", "workload", "not_probed"}


def test_checks_without_an_answer_are_noted():
    incomplete = output(setuid={"ran_as": None, "euid": None, "error": "helper missing: ENOENT"},
                        sockets={"found": [], "entries": 20001, "truncated": True})
    api = FakeApi([incomplete])
    probes, findings, _workload = run_runner(api, services=False)
    assert findings == []
    assert probes[0]["notes"] == [
        "job container: the setuid check did not run: helper missing: ENOENT",
        "job container: the socket search stopped after 20001 entries; sockets deeper in the mounts were not "
        "looked for"]
