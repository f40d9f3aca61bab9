"""docker_daemon_audit: GR033 to GR042 from a fake Docker API, a fake /proc,
temporary daemon.json and socket files and fake group and user databases, so
nothing depends on this machine; plus one read-only run against the live
daemon, skipped when /var/run/docker.sock does not answer.

The socket tests chown files and run as root (as the rest of tests/unit does)."""

import json
import os
import shutil
import socket
import tempfile
from types import SimpleNamespace

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.policy import CATALOG, severity_at_least
from ansible_collections.hardened.gitlab_runner.plugins.modules import docker_daemon_audit

OWN_NS = "pid:[4026531836]"
OTHER_NS = "pid:[4026532999]"
DOCKER_GID = 998
USERS_GID = 100
TCP_HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
UNIX_HEADER = "Num       RefCount Protocol Flags    Type St Inode Path\n"
LIVE_SOCKET = "/var/run/docker.sock"

HARDENED_INFO = {
    "ServerVersion": "26.1.5+dfsg1",
    "LiveRestoreEnabled": True,
    "LoggingDriver": "json-file",
    "SecurityOptions": ["name=seccomp,profile=builtin", "name=userns", "name=cgroupns", "name=no-new-privileges"],
    "Warnings": None,
}
HARDENED_JSON = {
    "no-new-privileges": True,
    "icc": False,
    "live-restore": True,
    "userland-proxy": False,
    "log-driver": "json-file",
    "log-opts": {"max-size": "10m", "max-file": "3"},
    "userns-remap": "default",
}
OLD_INFO = {  # what Debian 12's docker.io 20.10 reports with no daemon.json
    "ServerVersion": "20.10.24+dfsg1",
    "LiveRestoreEnabled": False,
    "LoggingDriver": "json-file",
    "SecurityOptions": ["name=seccomp,profile=default"],
    "Warnings": None,
}


def _bridge(icc):
    return {"Name": "bridge", "Options": {"com.docker.network.bridge.default_bridge": "true",
                                          "com.docker.network.bridge.enable_icc": icc}}


class ApiError(Exception):
    def __init__(self, message, status_code):
        super().__init__(message)
        self.status_code = status_code


class FakeHost(object):
    """A host: the daemon's API answers, /proc, daemon.json, the socket and the account databases."""

    def __init__(self, root, monkeypatch):
        self.root = root
        self.proc = os.path.join(root, "proc")
        self.info = dict(HARDENED_INFO)
        self.version = {"Version": "26.1.5+dfsg1", "ApiVersion": "1.45"}
        self.bridge = _bridge("false")
        self.bridge_error = None
        self.connect_error = None
        self.clients = []
        self.groups = {"root": (0, []), "docker": (DOCKER_GID, []), "users": (USERS_GID, [])}
        self.users = {"root": (0, 0), "gitlab-runner": (999, 999), "alice": (1000, 1000), "bob": (1001, USERS_GID)}
        self.daemon_json = os.path.join(root, "daemon.json")
        self.socket_path = os.path.join(root, "docker.sock")
        for directory in ("self/ns", "net"):
            os.makedirs(os.path.join(self.proc, directory))
        os.symlink(OWN_NS, os.path.join(self.proc, "self", "ns", "pid"))
        self._write("net/tcp", TCP_HEADER)
        self._write("net/tcp6", TCP_HEADER)
        self._write("net/unix", UNIX_HEADER)
        self.write_json(HARDENED_JSON)
        self.make_socket(0o660, 0, DOCKER_GID)
        monkeypatch.setattr(docker_daemon_audit, "PROC", self.proc)
        monkeypatch.setattr(docker_daemon_audit, "docker", SimpleNamespace(DockerClient=self._client))
        monkeypatch.setattr(docker_daemon_audit, "HAS_DOCKER", True)
        monkeypatch.setattr(docker_daemon_audit, "grp", SimpleNamespace(
            getgrnam=self._getgrnam, getgrgid=self._getgrgid))
        monkeypatch.setattr(docker_daemon_audit, "pwd", SimpleNamespace(
            getpwnam=self._getpwnam, getpwuid=self._getpwuid, getpwall=self._getpwall))

    # --- fake Docker SDK -----------------------------------------------------

    def _client(self, base_url, timeout):
        if self.connect_error:
            raise self.connect_error
        host = self

        class Api(object):
            def inspect_network(self, name):
                assert name == "bridge"
                if host.bridge_error:
                    raise host.bridge_error
                return host.bridge

        class Client(object):
            api = Api()

            def info(self):
                return dict(host.info)

            def version(self):
                return dict(host.version)

            def close(self):
                host.clients.append(base_url)

        return Client()

    def fail_connect(self, error):
        """Connecting to the daemon raises ``error``."""
        self.connect_error = error

    def fail_bridge(self, error):
        """Inspecting the default bridge network raises ``error``."""
        self.bridge_error = error

    def old_daemon(self):
        self.info = dict(OLD_INFO)
        self.version = {"Version": "20.10.24+dfsg1", "ApiVersion": "1.41"}
        self.bridge = _bridge("true")

    # --- fake accounts ---------------------------------------------------------

    def _group(self, name, gid, members):
        return SimpleNamespace(gr_name=name, gr_gid=gid, gr_mem=list(members))

    def _getgrnam(self, name):
        gid, members = self.groups[name]
        return self._group(name, gid, members)

    def _getgrgid(self, gid):
        for name, (number, members) in self.groups.items():
            if number == gid:
                return self._group(name, number, members)
        raise KeyError(gid)

    def _user(self, name, uid, gid):
        return SimpleNamespace(pw_name=name, pw_uid=uid, pw_gid=gid)

    def _getpwnam(self, name):
        uid, gid = self.users[name]
        return self._user(name, uid, gid)

    def _getpwuid(self, uid):
        for name, (number, gid) in self.users.items():
            if number == uid:
                return self._user(name, number, gid)
        raise KeyError(uid)

    def _getpwall(self):
        return [self._user(name, uid, gid) for name, (uid, gid) in self.users.items()]

    # --- files -------------------------------------------------------------------

    def _write(self, relative, text):
        path = os.path.join(self.proc, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return path

    def write_json(self, data, path=None):
        with open(path or self.daemon_json, "w", encoding="utf-8") as handle:
            handle.write(data if isinstance(data, str) else json.dumps(data))

    def make_socket(self, mode, uid, gid):
        if os.path.lexists(self.socket_path):
            os.unlink(self.socket_path)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(self.socket_path)
        server.close()
        os.chown(self.socket_path, uid, gid)
        os.chmod(self.socket_path, mode)

    def add_process(self, pid, argv, comm="dockerd", ns=OWN_NS, sockets=()):
        self._write("%d/comm" % pid, comm + "\n")
        self._write("%d/cmdline" % pid, "\0".join(argv) + "\0")
        os.makedirs(os.path.join(self.proc, str(pid), "ns"))
        os.symlink(ns, os.path.join(self.proc, str(pid), "ns", "pid"))
        os.makedirs(os.path.join(self.proc, str(pid), "fd"))
        for index, inode in enumerate(sockets):
            os.symlink("socket:[%s]" % inode, os.path.join(self.proc, str(pid), "fd", str(index + 3)))
        self._write("%d/net/tcp" % pid, TCP_HEADER)
        self._write("%d/net/tcp6" % pid, TCP_HEADER)

    def listen(self, hex_address, inode, pid=None, table="tcp"):
        """A listening TCP socket in the host's (or process ``pid``'s) network namespace."""
        line = ("   0: %s 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 %s 1 "
                "0000000000000000 100 0 0 10 0\n" % (hex_address, inode))
        relative = "net/%s" % table if pid is None else "%d/net/%s" % (pid, table)
        with open(os.path.join(self.proc, relative), "a", encoding="utf-8") as handle:
            handle.write(line)

    def bind_unix(self, path, inode):
        with open(os.path.join(self.proc, "net", "unix"), "a", encoding="utf-8") as handle:
            handle.write("0000000000000000: 00000002 00000000 00010000 0001 01 %s %s\n" % (inode, path))

    # --- running the module ----------------------------------------------------------

    def run(self, capsys, **args):
        params = {
            "socket_path": self.socket_path,
            "daemon_json": self.daemon_json,
            "job_user": "gitlab-runner",
        }
        params.update(args)
        params = dict((k, v) for k, v in params.items() if v is not None)
        return run(params, capsys)


@pytest.fixture
def host(monkeypatch):
    # A short path: a Unix socket's path must stay under 108 bytes.
    root = tempfile.mkdtemp(prefix="hgr-dda-", dir="/tmp")
    yield FakeHost(root, monkeypatch)
    shutil.rmtree(root)


@pytest.fixture
def warnings(monkeypatch):
    """Warnings given by the module (ansible-core may display them instead of returning them)."""
    given = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, warning, *args, **kwargs: given.append(warning))
    return given


def run(args, capsys, expect_failure=False):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            docker_daemon_audit.main()
    result = json.loads(capsys.readouterr().out)
    if expect_failure:
        assert exit_info.value.code == 1 and result.get("failed"), result
        return result
    assert exit_info.value.code == 0, result
    assert result["changed"] is False
    return result


def ids(result):
    return sorted(f["id"] for f in result["findings"])


def by_id(result, policy_id):
    return [f for f in result["findings"] if f["id"] == policy_id]


def source(result, key):
    return result["settings"][key]["source"], result["settings"][key]["value"]


# --- the catalog ----------------------------------------------------------------------

def test_catalog_entries():
    expected = {
        "GR033": ("high", "2.14"), "GR034": ("medium", "2.2"), "GR035": ("low", "2.15"),
        "GR036": ("low", "2.16"), "GR037": ("low", None), "GR038": ("high", "3.15, 3.16"),
        "GR039": ("high", "1.1.2"), "GR040": ("critical", "2.7"), "GR041": ("low", "2.9"),
        "GR042": ("high", None),
    }
    for policy_id, (severity, item) in expected.items():
        policy = CATALOG[policy_id]
        assert (policy.severity, policy.enforcement, policy.ack) == (severity, "audit", None)
        assert "CIS Docker Benchmark" in policy.guidance
        if item:
            assert "CIS Docker Benchmark %s" % item in policy.guidance
    assert list(CATALOG).index("GR033") == list(CATALOG).index("GR032") + 1


# --- hardened ---------------------------------------------------------------------------

def test_hardened_daemon_has_no_finding(host, capsys, warnings):
    host.add_process(100, ["/usr/sbin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock"])
    result = host.run(capsys)
    assert result["findings"] == []
    assert warnings == []
    assert result["daemon"] == {"reachable": True, "error": None, "server_version": "26.1.5+dfsg1",
                                "api_version": "1.45", "security_options": HARDENED_INFO["SecurityOptions"],
                                "tcp_warnings": []}
    assert result["dockerd"] == {"pid": 100, "argv": ["/usr/sbin/dockerd", "-H", "fd://",
                                                      "--containerd=/run/containerd/containerd.sock"],
                                 "tcp_listeners": []}
    assert result["socket"] == {"path": host.socket_path, "exists": True, "is_socket": True, "mode": "0660",
                                "owner": "root", "group": "docker"}
    assert result["docker_group"] == {"name": "docker", "exists": True, "members": [], "job_user_member": False}
    assert result["daemon_json"] == {"path": host.daemon_json, "exists": True, "error": None}
    assert source(result, "no-new-privileges") == ("daemon", True)
    assert source(result, "icc") == ("daemon", False)
    assert source(result, "live-restore") == ("daemon", True)
    assert source(result, "userland-proxy") == ("daemon.json", False)
    assert source(result, "log-driver") == ("daemon", "json-file")
    assert source(result, "log-opts") == ("daemon.json", {"max-size": "10m", "max-file": "3"})
    assert source(result, "userns-remap") == ("daemon", True)
    assert source(result, "hosts") == ("cmdline", ["fd://"])
    assert host.clients == ["unix:///var/run/docker.sock"]


def _old_hardened(host):
    """Docker 20.10 (which does not report no-new-privileges), hardened."""
    host.info = dict(OLD_INFO, LiveRestoreEnabled=True, SecurityOptions=["name=seccomp,profile=default", "name=userns"])
    host.version = {"Version": "20.10.24+dfsg1", "ApiVersion": "1.41"}


def test_hardened_old_daemon_from_its_configuration(host, capsys, warnings):
    """Docker 20.10 does not report no-new-privileges: daemon.json is the source."""
    _old_hardened(host)
    result = host.run(capsys)
    assert result["findings"] == []
    assert source(result, "no-new-privileges") == ("daemon.json", True)


# --- each setting, insecure ----------------------------------------------------------------

def _without(key):
    data = dict(HARDENED_JSON)
    del data[key]
    return data


@pytest.mark.parametrize("change, expected, evidence", [
    (lambda h: (_old_hardened(h), h.write_json(_without("no-new-privileges"))),
     "GR033", "no-new-privileges = false (default)"),
    (lambda h: (_old_hardened(h), h.write_json(dict(HARDENED_JSON, **{"no-new-privileges": False}))),
     "GR033", "no-new-privileges = false (daemon.json)"),
    (lambda h: setattr(h, "bridge", _bridge("true")), "GR034", "icc = true (daemon)"),
    (lambda h: h.info.update(LiveRestoreEnabled=False), "GR035", "live-restore = false (daemon)"),
    (lambda h: h.write_json(_without("userland-proxy")), "GR036", "userland-proxy = true (default)"),
    (lambda h: h.write_json(dict(HARDENED_JSON, **{"log-opts": {"max-file": "3"}})),
     "GR037", "log-driver json-file (daemon) without max-size in log-opts (daemon.json)"),
    (lambda h: h.info.update(SecurityOptions=["name=seccomp,profile=builtin", "name=no-new-privileges"]),
     "GR041", 'userns-remap is off (daemon); configured as "default"'),
])
def test_each_insecure_setting_gives_its_finding(host, capsys, warnings, change, expected, evidence):
    change(host)
    result = host.run(capsys)
    found = by_id(result, expected)
    assert [f["evidence"] for f in found] == [evidence]
    assert found[0]["severity"] == CATALOG[expected].severity
    assert found[0]["title"] == CATALOG[expected].title and found[0]["enforcement"] == "audit"
    others = [f["id"] for f in result["findings"] if f["id"] != expected and severity_at_least(f, "medium")]
    assert others == []


def test_unhardened_default_daemon(host, capsys, warnings):
    """Debian's docker.io as installed: no daemon.json, 20.10."""
    host.old_daemon()
    os.unlink(host.daemon_json)
    host.add_process(100, ["dockerd"])
    result = host.run(capsys)
    assert ids(result) == ["GR033", "GR034", "GR035", "GR036", "GR037", "GR041"]
    assert result["daemon_json"] == {"path": host.daemon_json, "exists": False, "error": None}
    assert warnings == []


def test_invalid_value_in_daemon_json(host, capsys, warnings):
    _old_hardened(host)
    host.write_json(dict(HARDENED_JSON, **{"no-new-privileges": "yes"}))
    result = host.run(capsys)
    assert [f["evidence"] for f in by_id(result, "GR033")] == ["no-new-privileges = an invalid value (daemon.json)"]


def test_newer_daemon_is_authoritative_for_no_new_privileges(host, capsys, warnings):
    """Docker 24+ lists no-new-privileges when it is on; daemon.json alone changed since start."""
    host.info["SecurityOptions"] = ["name=seccomp,profile=builtin", "name=userns"]
    result = host.run(capsys)
    assert [f["evidence"] for f in by_id(result, "GR033")] == ["no-new-privileges = false (daemon)"]
    assert len(warnings) == 1
    assert "no-new-privileges = false" in warnings[0] and "(daemon.json) says true" in warnings[0]


def test_drift_between_daemon_and_daemon_json_is_a_warning(host, capsys, warnings):
    host.info["LiveRestoreEnabled"] = False
    result = host.run(capsys)
    assert ids(result) == ["GR035"]
    assert any("live-restore = false" in w and "next restart" in w for w in warnings)


def test_log_drivers(host, capsys, warnings):
    host.info["LoggingDriver"] = "local"
    host.write_json(_without("log-opts"))
    assert by_id(host.run(capsys), "GR037") == []
    host.info["LoggingDriver"] = "journald"
    assert by_id(host.run(capsys), "GR037") == []


def test_rootless_daemon_needs_no_remapping(host, capsys, warnings):
    host.info["SecurityOptions"] = ["name=seccomp,profile=builtin", "name=rootless", "name=no-new-privileges"]
    host.write_json(_without("userns-remap"))
    result = host.run(capsys)
    assert result["findings"] == []
    assert source(result, "rootless") == ("daemon", True)


def test_no_default_bridge_no_icc_finding(host, capsys, warnings):
    host.fail_bridge(ApiError("network bridge not found", 404))
    host.write_json(_without("icc"))
    result = host.run(capsys)
    assert by_id(result, "GR034") == []
    assert source(result, "icc") == ("daemon", None)


def test_bridge_inspect_error_falls_back_to_configuration(host, capsys, warnings):
    host.fail_bridge(ApiError("boom", 500))
    host.write_json(_without("icc"))
    result = host.run(capsys)
    assert [f["evidence"] for f in by_id(result, "GR034")] == ["icc = true (default)"]


# --- command line ----------------------------------------------------------------------

def test_cmdline_overrides_daemon_json(host, capsys, warnings):
    host.old_daemon()
    host.fail_bridge(ApiError("boom", 500))
    host.write_json({"no-new-privileges": False, "icc": True, "userland-proxy": True,
                     "log-opts": {"max-file": "2"}, "userns-remap": ""})
    host.add_process(4242, ["/usr/sbin/dockerd", "--no-new-privileges", "--icc=false", "--userland-proxy=0",
                            "--log-opt", "max-size=5m", "--userns-remap=default", "-H", "fd://"])
    result = host.run(capsys)
    assert source(result, "no-new-privileges") == ("cmdline", True)
    assert source(result, "icc") == ("cmdline", False)
    assert source(result, "userland-proxy") == ("cmdline", False)
    assert source(result, "log-opts") == ("cmdline", {"max-file": "2", "max-size": "5m"})
    assert ids(result) == ["GR035", "GR041"]  # the daemon says live-restore off and no userns
    assert any("userns-remap = false" in w and "(cmdline) says true" in w for w in warnings)


def test_config_file_flag_names_daemon_json(host, capsys, warnings):
    other = os.path.join(host.root, "other.json")
    host.write_json(dict(HARDENED_JSON, **{"userland-proxy": True}), other)
    host.add_process(100, ["dockerd", "--config-file", other])
    result = host.run(capsys, daemon_json=None)
    assert result["daemon_json"]["path"] == other
    assert [f["evidence"] for f in by_id(result, "GR036")] == ["userland-proxy = true (daemon.json)"]


def test_dockerd_in_another_pid_namespace_is_ignored(host, capsys, warnings):
    host.add_process(200, ["dockerd", "--icc=true"], ns=OTHER_NS)
    result = host.run(capsys)
    assert result["dockerd"]["pid"] is None


def test_several_dockerd_the_one_holding_the_socket(host, capsys, warnings):
    host.bind_unix(host.socket_path, "7001")
    host.add_process(300, ["dockerd", "-H", "unix:///run/other.sock"], sockets=["7002"])
    host.add_process(301, ["dockerd", "-H", "unix://" + host.socket_path], sockets=["7001"])
    assert host.run(capsys)["dockerd"]["pid"] == 301
    host.bind_unix("/run/other.sock", "7002")
    host.add_process(302, ["dockerd"], sockets=["7003"])
    with open(os.path.join(host.proc, "net", "unix"), "w", encoding="utf-8") as handle:
        handle.write(UNIX_HEADER)
    result = host.run(capsys)
    assert result["dockerd"]["pid"] is None
    assert any("3 dockerd processes" in w for w in warnings)


def test_parse_dockerd_args():
    parse = docker_daemon_audit.parse_dockerd_args
    assert parse(["--icc=false", "--live-restore", "--no-new-privileges=true", "--userland-proxy=F"]) == {
        "icc": False, "live-restore": True, "no-new-privileges": True, "userland-proxy": False}
    assert parse(["-H", "fd://", "-Htcp://0.0.0.0:2375", "-H=unix:///x.sock", "--host", "tcp://:2376",
                  "--host=ssh://ignored"]) == {
        "hosts": ["fd://", "tcp://0.0.0.0:2375", "unix:///x.sock", "tcp://:2376", "ssh://ignored"]}
    # Values of flags the module does not read are skipped, not taken for flags.
    assert parse(["--data-root", "/srv/docker", "--debug", "-l", "info", "-DG", "ci", "--tlsverify",
                  "--log-opt", "max-size=10m", "--log-opt=max-file=3", "--log-driver", "local"]) == {
        "group": "ci", "tlsverify": True, "log-opts": {"max-size": "10m", "max-file": "3"}, "log-driver": "local"}
    assert parse(["--icc=maybe"]) == {"icc": None}
    assert parse(["--", "--icc=false"]) == {}
    assert parse(["--userns-remap", "default", "--config-file=/etc/docker/x.json"]) == {
        "userns-remap": "default", "config-file": "/etc/docker/x.json"}


def test_secrets_are_masked(host, capsys, warnings):
    host.write_json(dict(HARDENED_JSON, **{"log-opts": {"max-size": "10m", "splunk-token": "t0k3n"}}))
    host.add_process(100, ["dockerd", "--registry-mirror=https://ci:s3cr3t@mirror.example.com",
                           "--log-opt", "splunk-token=t0k3n2", "--log-opt=fluentd-password=pw"])
    result = host.run(capsys)
    assert result["dockerd"]["argv"] == [
        "dockerd", "--registry-mirror=https://ci:********@mirror.example.com",
        "--log-opt", "splunk-token=********", "--log-opt=fluentd-password=********"]
    assert source(result, "log-opts") == ("cmdline", {"max-size": "10m", "splunk-token": "********",
                                                      "fluentd-password": "********"})
    text = json.dumps(result)
    assert "s3cr3t" not in text and "t0k3n" not in text and '"pw"' not in text


# --- TCP ------------------------------------------------------------------------------

def test_daemon_warns_about_tcp_without_tls(host, capsys, warnings):
    host.info["Warnings"] = [
        "WARNING: API is accessible on http://0.0.0.0:2375 without encryption.\n         Access to the remote API is "
        "equivalent to root access on the host.",
        "WARNING: bridge-nf-call-iptables is disabled",
    ]
    result = host.run(capsys)
    assert ids(result) == ["GR040"]
    found = by_id(result, "GR040")[0]
    assert found["severity"] == "critical" and found["setting"] == "tcp 0.0.0.0:2375"
    assert "the daemon reports the API on http://0.0.0.0:2375 without encryption" in found["evidence"]
    assert len(result["daemon"]["tcp_warnings"]) == 1


def test_daemon_json_tcp_host_without_tlsverify(host, capsys, warnings):
    host.write_json(dict(HARDENED_JSON, hosts=["unix:///var/run/docker.sock", "tcp://0.0.0.0:2375"]))
    result = host.run(capsys)
    assert [f["evidence"] for f in by_id(result, "GR040")] == [
        "hosts has tcp://0.0.0.0:2375 (daemon.json); tlsverify = false (default)"]


def test_tcp_host_with_tlsverify_is_fine(host, capsys, warnings):
    host.write_json(dict(HARDENED_JSON, hosts=["tcp://0.0.0.0:2376"], tlsverify=True,
                         tlscacert="/etc/docker/ca.pem"))
    assert by_id(host.run(capsys), "GR040") == []


def test_tls_without_verify_on_the_command_line(host, capsys, warnings):
    host.add_process(100, ["dockerd", "--tls", "-H", "tcp://10.0.0.5:2376", "-H", "fd://"])
    assert [f["evidence"] for f in by_id(host.run(capsys), "GR040")] == [
        "hosts has tcp://10.0.0.5:2376 (cmdline); tlsverify = false (default)"]


def test_tls_without_hosts_listens_on_localhost(host, capsys, warnings):
    host.add_process(100, ["dockerd", "--tls"])
    found = by_id(host.run(capsys), "GR040")
    assert [f["setting"] for f in found] == ["tcp localhost:2376"]


def test_socket_activated_tcp_listener_of_dockerd(host, capsys, warnings):
    """systemd passes dockerd a TCP socket (-H fd://): only /proc shows it."""
    host.add_process(100, ["dockerd", "-H", "fd://"], sockets=["5555", "5556"])
    host.listen("00000000:094F", "5555", pid=100)  # 0.0.0.0:2383
    host.listen("00000000000000000000000000000000:0950", "5556", pid=100, table="tcp6")  # [::]:2384
    host.listen("0100007F:0035", "9999", pid=100)  # not dockerd's (another fd owner in its namespace)
    result = host.run(capsys)
    assert result["dockerd"]["tcp_listeners"] == ["0.0.0.0:2383", "[::]:2384"]
    assert [f["evidence"] for f in by_id(result, "GR040")] == [
        "dockerd listens on 0.0.0.0:2383; tlsverify = false (default)",
        "dockerd listens on [::]:2384; tlsverify = false (default)"]


def test_other_process_on_a_docker_api_port(host, capsys, warnings):
    host.add_process(700, ["socat", "TCP-LISTEN:2375,fork", "UNIX-CONNECT:/var/run/docker.sock"], comm="socat",
                     sockets=["8100"])
    host.listen("0100007F:0947", "8100")  # 127.0.0.1:2375
    host.listen("00000000:0050", "8101")  # port 80: not a Docker API port
    result = host.run(capsys)
    assert result["dockerd"]["pid"] is None
    assert [f["evidence"] for f in by_id(result, "GR040")] == [
        "socat (pid 700) listens on 127.0.0.1:2375, a Docker API port; its TLS cannot be verified"]


def test_hex_addresses():
    decode = docker_daemon_audit._hex_address
    assert decode("0100007F:0948") == ("127.0.0.1:2376", 2376)
    assert decode("00000000000000000000000000000000:0947") == ("[::]:2375", 2375)
    assert decode("0000000000000000FFFF00000100007F:0947") == ("127.0.0.1:2375", 2375)
    assert decode("00000000000000000000000001000000:0947") == ("[::1]:2375", 2375)
    assert decode("zz:0947") == (None, None)


# --- socket and group ---------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
@pytest.mark.parametrize("mode, uid, gid, problem", [
    (0o660, 0, DOCKER_GID, None),
    (0o600, 0, 0, None),
    (0o660, 0, 0, None),
    (0o666, 0, DOCKER_GID, "mode is more open than 0660"),
    (0o670, 0, DOCKER_GID, "mode is more open than 0660"),
    (0o660, 1000, DOCKER_GID, "owner alice is not root"),
    (0o660, 0, USERS_GID, "group users (not root or docker) may connect"),
    (0o640, 0, USERS_GID, "group users (not root or docker) may connect"),
    (0o600, 0, USERS_GID, None),
])
def test_socket_mode_and_owner(host, capsys, warnings, mode, uid, gid, problem):
    host.make_socket(mode, uid, gid)
    found = by_id(host.run(capsys), "GR038")
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0]["setting"] == host.socket_path
        assert found[0]["evidence"].endswith(problem), found[0]["evidence"]
        assert found[0]["severity"] == "high"


def test_missing_socket_and_a_path_that_is_no_socket(host, capsys, warnings):
    os.unlink(host.socket_path)
    result = host.run(capsys)
    assert by_id(result, "GR038") == [] and result["socket"]["exists"] is False
    os.mkdir(host.socket_path, 0o755)
    result = host.run(capsys)
    assert by_id(result, "GR038") == [] and result["socket"]["is_socket"] is False


def test_docker_group_members(host, capsys, warnings):
    host.groups["docker"] = (DOCKER_GID, ["alice", "root"])
    host.users["carol"] = (1002, DOCKER_GID)  # primary group docker
    result = host.run(capsys)
    found = by_id(result, "GR039")
    assert [(f["setting"], f["evidence"], f["severity"]) for f in found] == [
        ("group docker", "members: alice, carol", "high")]
    assert result["docker_group"]["members"] == ["alice", "root", "carol"]
    assert result["docker_group"]["job_user_member"] is False


def test_job_user_in_docker_group_is_named(host, capsys, warnings):
    host.groups["docker"] = (DOCKER_GID, ["gitlab-runner"])
    result = host.run(capsys)
    assert [f["evidence"] for f in by_id(result, "GR039")] == [
        "members: gitlab-runner; the job user gitlab-runner is one of them, so its shell jobs get root on the host"]
    assert result["docker_group"]["job_user_member"] is True


def test_only_root_in_docker_group_and_missing_group(host, capsys, warnings):
    host.groups["docker"] = (DOCKER_GID, ["root"])
    assert by_id(host.run(capsys), "GR039") == []
    result = host.run(capsys, docker_group="docker-ci")
    assert result["docker_group"] == {"name": "docker-ci", "exists": False, "members": [], "job_user_member": False}


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_members_of_another_socket_group(host, capsys, warnings):
    host.make_socket(0o660, 0, USERS_GID)
    result = host.run(capsys)
    assert [(f["setting"], f["evidence"]) for f in by_id(result, "GR039")] == [("group users", "members: bob")]


# --- unreachable daemon and missing SDK ---------------------------------------------------

def test_unreachable_daemon_with_configuration(host, capsys, warnings):
    host.fail_connect(ConnectionError("Error while fetching server API version: ('Connection aborted.', "
                                      "FileNotFoundError(2, 'No such file or directory'))"))
    host.write_json({"icc": False, "live-restore": True})
    result = host.run(capsys)
    gr042 = by_id(result, "GR042")
    assert len(gr042) == 1 and gr042[0]["severity"] == "high"
    assert gr042[0]["setting"] == "docker_host unix:///var/run/docker.sock"
    assert "ConnectionError: Error while fetching server API version" in gr042[0]["evidence"]
    assert "settings read from the command line and daemon.json" in gr042[0]["evidence"]
    assert result["daemon"]["reachable"] is False and "No such file" in result["daemon"]["error"]
    assert ids(result) == ["GR033", "GR036", "GR037", "GR041", "GR042"]
    assert source(result, "icc") == ("daemon.json", False)
    assert source(result, "live-restore") == ("daemon.json", True)
    assert source(result, "log-driver") == ("default", "json-file")


def test_unreachable_daemon_without_any_configuration(host, capsys, warnings):
    host.fail_connect(PermissionError(13, "Permission denied"))
    os.unlink(host.daemon_json)
    result = host.run(capsys, docker_host="unix:///nonexistent/docker.sock")
    assert ids(result) == ["GR042"]
    assert "no dockerd process and no daemon.json found" in result["findings"][0]["evidence"]


def test_invalid_daemon_json_is_a_warning(host, capsys, warnings):
    host.write_json('{"icc": false,')
    result = host.run(capsys)
    assert result["daemon_json"]["error"].startswith("not valid JSON")
    assert any("ignored: not valid JSON" in w for w in warnings)
    assert source(result, "userland-proxy") == ("default", True)


def test_remote_docker_host_warns(host, capsys, warnings):
    host.run(capsys, docker_host="tcp://build-7.example.com:2376")
    assert any("is not on this host" in w for w in warnings)


def test_missing_docker_sdk(host, capsys, monkeypatch):
    monkeypatch.setattr(docker_daemon_audit, "HAS_DOCKER", False)
    monkeypatch.setattr(docker_daemon_audit, "DOCKER_IMPORT_ERROR", "ImportError: No module named 'docker'")
    result = run({"socket_path": host.socket_path}, capsys, expect_failure=True)
    assert "docker" in result["msg"] and "Failed to import the required Python library" in result["msg"]


def test_skip_without_socket(host, capsys, monkeypatch, tmp_path):
    # Checked before the SDK: a shell-only host has neither an engine nor python3-docker.
    monkeypatch.setattr(docker_daemon_audit, "HAS_DOCKER", False)
    missing = str(tmp_path / "no-docker.sock")
    skipped = run({"socket_path": missing, "skip_without_socket": True}, capsys)
    assert skipped["skipped"] is True and missing in skipped["msg"] and "findings" not in skipped
    # Without the option, or with a socket there, the audit runs (and here fails for the SDK).
    run({"socket_path": missing}, capsys, expect_failure=True)
    run({"socket_path": host.socket_path, "skip_without_socket": True}, capsys, expect_failure=True)


def test_check_mode(host, capsys, warnings):
    result = host.run(capsys, _ansible_check_mode=True)
    assert result["findings"] == []


# --- the live daemon (read-only) ------------------------------------------------------------

def _live_daemon():
    try:
        import docker
        client = docker.DockerClient(base_url="unix://" + LIVE_SOCKET, timeout=5)
        try:
            return client.ping()
        finally:
            client.close()
    except Exception:
        return False


@pytest.mark.skipif(not _live_daemon(), reason="no Docker daemon answers on %s" % LIVE_SOCKET)
def test_live_daemon(capsys, warnings):
    """This machine's daemon, read-only: Debian's docker.io without daemon.json is not hardened."""
    import docker
    result = run({"job_user": "hgr-no-such-user"}, capsys)
    assert result["daemon"]["reachable"] is True and result["daemon"]["error"] is None
    assert result["daemon"]["server_version"]
    assert set(result["settings"]) >= {"no-new-privileges", "icc", "live-restore", "userland-proxy", "log-driver",
                                       "log-opts", "userns-remap", "hosts", "tls", "tlsverify", "group"}
    for key, value in result["settings"].items():
        assert value["source"] in ("daemon", "cmdline", "daemon.json", "default"), (key, value)
    client = docker.DockerClient(base_url="unix://" + LIVE_SOCKET, timeout=5)
    try:
        info = client.info()
    finally:
        client.close()
    # What the module calls the daemon's values are the daemon's values.
    assert result["settings"]["live-restore"] == {"value": info["LiveRestoreEnabled"], "source": "daemon"}
    assert result["settings"]["log-driver"] == {"value": info["LoggingDriver"], "source": "daemon"}
    assert result["daemon"]["security_options"] == info["SecurityOptions"]
    assert by_id(result, "GR042") == []
    # The machine's daemon is Debian's default: no no-new-privileges.
    assert "GR033" in ids(result), result["settings"]["no-new-privileges"]
    assert result["socket"]["exists"] is True and result["socket"]["is_socket"] is True
