"""network_isolation_probe without Docker and without touching any real network: the
classification of the probe program's raw records (errnos, timeouts, names that do not
resolve), their mapping to catalog findings, IPv6 literals, the container context's
lifecycle against a fake Docker API (network and container removed, also on failure), the
shell-user context with a fake process runner, the module's entry point, and the probe
program itself run for real in a private network namespace that holds only a loopback
(skipped where one cannot be created). The live counterpart, with a fake metadata endpoint
and a firewall rule for the job user, is tests/integration/test_network_probe.py."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.net_probe_script import SCRIPT
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.policy import CATALOG
from ansible_collections.hardened.gitlab_runner.plugins.modules import network_isolation_probe as probe

PARAMS = dict(targets_blocked=None, targets_allowed=[], gitlab_url=None, dns_names=[], require_positive_controls=True,
              refused_means_reached=True, contexts=["container"], job_network="per_build", image=probe.DEFAULT_IMAGE,
              docker_host=probe.DEFAULT_DOCKER_HOST, job_user="gitlab-runner", timeout=3.0)


def params(**kwargs):
    return dict(PARAMS, **kwargs)


def attempt(address, outcome, elapsed=0.002):
    """A raw attempt record as the probe program writes it."""
    record = {"address": address, "ok": outcome == "ok", "timeout": outcome == "timeout", "errno": None,
              "error": None, "elapsed": elapsed}
    if outcome not in ("ok", "timeout"):
        record.update(errno=outcome, error="OSError: %s" % outcome)
    return record


def raw(index, *attempts):
    return {"index": index, "addresses": [a["address"] for a in attempts], "attempts": list(attempts),
            "resolve": None}


def output(targets, dns=None, identity=None):
    return {"version": 1, "user": None, "identity": identity or {"uid": 0, "gid": 0, "groups": [0], "user": "root"},
            "targets": targets, "dns": dns or []}


def context(name="container"):
    return dict(context=name, setting="probe: job container", where="job container on a per-build network")


# --- classification ------------------------------------------------------------------------------

@pytest.mark.parametrize("record, outcome", [
    (attempt("169.254.169.254", "ok"), "connected"),
    (attempt("169.254.169.254", "timeout"), "timeout"),
    (attempt("169.254.169.254", "ECONNREFUSED"), "refused"),
    (attempt("169.254.169.254", "ECONNRESET"), "refused"),
    # ICMP admin-prohibited (IPv4) and host unreachable, a local reject.
    (attempt("169.254.169.254", "EHOSTUNREACH"), "rejected"),
    # ICMPv6 administratively prohibited, a prohibit route.
    (attempt("fd00:ec2::254", "EACCES"), "rejected"),
    # A local output-chain drop seen by a blocking connect.
    (attempt("169.254.169.254", "EPERM"), "rejected"),
    (attempt("169.254.169.254", "ETIMEDOUT"), "timeout"),
    (attempt("169.254.169.254", "ENETUNREACH"), "no_route"),
    (attempt("fd00:ec2::254", "EADDRNOTAVAIL"), "no_route"),
    (attempt("fd00:ec2::254", "EAFNOSUPPORT"), "no_route"),
    (attempt("169.254.169.254", "EIO"), "error"),
    ({"address": "169.254.169.254", "ok": False, "timeout": False, "errno": None, "error": "ValueError: x"}, "error"),
])
def test_classify(record, outcome):
    assert probe.classify(record) == outcome


@pytest.mark.parametrize("given, expected", [
    ("169.254.169.254", "169.254.169.254"),
    (" 169.254.169.254 ", "169.254.169.254"),
    ("fd00:ec2::254", "fd00:ec2::254"),
    ("[fd00:ec2::254]", "fd00:ec2::254"),
    ("[FD00:EC2:0:0::254]", "fd00:ec2::254"),
    ("gitlab.example.com", "gitlab.example.com"),
])
def test_ipv6_literals_and_names_are_normalized(given, expected):
    assert probe.normalize_host(given) == expected


@pytest.mark.parametrize("given", ["", None, "[]", "a b", "10.0.0.0/8", "fd00::ec2::254", "[gitlab.example.com"])
def test_hosts_that_are_neither_address_nor_name_are_refused(given):
    with pytest.raises(probe.ProbeError):
        probe.normalize_host(given)


def test_show_brackets_ipv6():
    assert probe.show("fd00:ec2::254", 80) == "[fd00:ec2::254]:80"
    assert probe.show("169.254.169.254", 80, "tcp") == "169.254.169.254:80/tcp"
    assert probe.show("gitlab.example.com", None) == "gitlab.example.com"


# --- targets ---------------------------------------------------------------------------------------

def test_default_targets_are_every_clouds_metadata_endpoint():
    targets = probe.build_targets(params())
    assert [(t["host"], t["port"], t["proto"]) for t in targets] == [
        ("169.254.169.254", 80, "tcp"), ("fd00:ec2::254", 80, "tcp"), ("100.100.100.200", 80, "tcp"),
        ("168.63.129.16", 80, "tcp"), ("168.63.129.16", 32526, "tcp"), ("192.0.0.192", 80, "tcp")]
    assert set(t["kind"] for t in targets) == {"metadata"} and set(t["expect"] for t in targets) == {"blocked"}
    assert [t["index"] for t in targets] == list(range(6))
    assert probe.build_targets(params(targets_blocked=[])) == []


def test_targets_kinds_controls_and_gitlab_url():
    targets = probe.build_targets(params(
        targets_blocked=[{"host": "[fd00:ec2::254]", "port": 80},
                         {"name": "runner-2", "host": "10.20.0.12", "port": 22, "proto": "tcp"},
                         {"host": "10.20.0.13", "port": 53, "proto": "udp", "kind": "metadata"}],
        targets_allowed=[{"name": "mirror", "host": "deb.example.com", "port": 443}],
        gitlab_url="https://[2001:db8::5]:8443/group/project"))
    assert [(t["name"], t["host"], t["port"], t["proto"], t["expect"], t["kind"]) for t in targets] == [
        ("[fd00:ec2::254]:80/tcp", "fd00:ec2::254", 80, "tcp", "blocked", "metadata"),
        ("runner-2", "10.20.0.12", 22, "tcp", "blocked", "internal"),
        ("10.20.0.13:53/udp", "10.20.0.13", 53, "udp", "blocked", "metadata"),
        ("mirror", "deb.example.com", 443, "tcp", "reachable", "control"),
        ("gitlab", "2001:db8::5", 8443, "tcp", "reachable", "control")]


@pytest.mark.parametrize("url, host, port", [
    ("https://gitlab.example.com", "gitlab.example.com", 443),
    ("http://gitlab.example.com/", "gitlab.example.com", 80),
    ("https://GitLab.Example.com:8443", "gitlab.example.com", 8443),
])
def test_gitlab_url(url, host, port):
    assert probe.gitlab_control(url) == {"name": "gitlab", "host": host, "port": port}


@pytest.mark.parametrize("url", ["gitlab.example.com", "ftp://gitlab.example.com", "https://", "https://h:99999"])
def test_bad_gitlab_url(url):
    with pytest.raises(probe.ProbeError, match="gitlab_url"):
        probe.gitlab_control(url)


@pytest.mark.parametrize("target, message", [
    ({"host": "169.254.169.254", "port": 0}, "port 0"),
    ({"host": "169.254.169.254", "port": "80"}, "port '80'"),
    ({"host": "169.254.169.254", "port": 80, "proto": "icmp"}, "proto 'icmp'"),
])
def test_bad_targets(target, message):
    with pytest.raises(probe.ProbeError, match=message):
        probe.build_targets(params(targets_blocked=[target]))


# --- findings ----------------------------------------------------------------------------------------

def scenario(blocked, control="ok", dns_ok=True, **kwargs):
    """Targets: the default metadata list with the given outcomes, a GitLab control and a DNS name."""
    p = params(gitlab_url="https://gitlab.example.com", dns_names=["gitlab.example.com"], **kwargs)
    targets = probe.build_targets(p)
    records = [raw(t["index"], attempt(t["host"], blocked.get(t["host"], "EHOSTUNREACH")))
               for t in targets if t["expect"] == "blocked"]
    records.append(raw(len(records), attempt("192.0.2.80", control)))
    dns = [{"name": "gitlab.example.com", "ok": True, "addresses": ["192.0.2.80"], "elapsed": 0.01} if dns_ok else
           {"name": "gitlab.example.com", "ok": False, "errno": None, "gai": "EAI_NONAME",
            "error": "gaierror: [Errno -2] Name or service not known", "elapsed": 0.01}]
    ctx = context()
    rows, findings = probe.evaluate(ctx, output(records, dns), targets, p)
    return ctx, rows, findings


def test_all_blocked_and_controls_reachable_gives_no_finding():
    ctx, rows, findings = scenario({})
    assert findings == []
    assert ctx["positive_controls"] == "pass"
    assert [(r["name"], r["outcome"], r["errno"], r["status"]) for r in rows] == [
        ("metadata-ipv4", "rejected", "EHOSTUNREACH", "pass"),
        ("aws-metadata-ipv6", "rejected", "EHOSTUNREACH", "pass"),
        ("alibaba-metadata", "rejected", "EHOSTUNREACH", "pass"),
        ("azure-wireserver", "rejected", "EHOSTUNREACH", "pass"),
        ("azure-wireserver-32526", "rejected", "EHOSTUNREACH", "pass"),
        ("oracle-cc", "rejected", "EHOSTUNREACH", "pass"),
        ("gitlab", "connected", None, "pass"),
        ("gitlab.example.com", "resolved", None, "pass")]
    assert all(r["context"] == "container" for r in rows)


@pytest.mark.parametrize("outcome", ["timeout", "ENETUNREACH", "EACCES", "EPERM"])
def test_other_ways_of_not_getting_through_pass(outcome):
    _ctx, rows, findings = scenario({"169.254.169.254": outcome})
    assert findings == [] and rows[0]["status"] == "pass"


def test_reachable_metadata_endpoint_is_gr043():
    _ctx, rows, findings = scenario({"169.254.169.254": "ok", "fd00:ec2::254": "ECONNREFUSED"})
    assert [(f["id"], f["severity"], f["setting"], f["runner"]) for f in findings] == [
        ("GR043", "critical", "probe: job container", None), ("GR043", "critical", "probe: job container", None)]
    assert findings[0]["evidence"] == ("TCP connect to 169.254.169.254:80 (metadata-ipv4) succeeded (in 0.002 s) "
                                       "(job container on a per-build network)")
    assert findings[1]["evidence"].startswith("TCP connect to [fd00:ec2::254]:80 (aws-metadata-ipv6) was refused")
    assert "ECONNREFUSED" in findings[1]["evidence"]
    assert [r["status"] for r in rows[:2]] == ["fail", "fail"]
    assert findings[0]["title"] == CATALOG["GR043"].title and findings[0]["enforcement"] == "audit"


def test_refused_is_not_reached_when_told_so():
    _ctx, rows, findings = scenario({"169.254.169.254": "ECONNREFUSED"}, refused_means_reached=False)
    assert findings == [] and rows[0]["outcome"] == "refused" and rows[0]["status"] == "pass"


def test_reachable_internal_target_is_gr044():
    p = params(targets_blocked=[{"name": "runner-2 ssh", "host": "10.20.0.12", "port": 22}],
               targets_allowed=[{"name": "gitlab", "host": "192.0.2.80", "port": 443}])
    targets = probe.build_targets(p)
    _rows, findings = probe.evaluate(context(), output([raw(0, attempt("10.20.0.12", "ok")),
                                                        raw(1, attempt("192.0.2.80", "ok"))]), targets, p)
    assert [(f["id"], f["severity"]) for f in findings] == [("GR044", "high")]
    assert "10.20.0.12:22 (runner-2 ssh) succeeded" in findings[0]["evidence"]


def test_failed_positive_control_is_gr045_and_makes_blocked_results_inconclusive():
    ctx, rows, findings = scenario({"169.254.169.254": "ok"}, control="ENETUNREACH", dns_ok=False)
    assert [f["id"] for f in findings] == ["GR043", "GR045", "GR045"]
    assert ctx["positive_controls"] == "fail"
    # What got through is proven; what did not is not.
    assert [r["status"] for r in rows] == ["fail"] + ["inconclusive"] * 5 + ["fail", "fail"]
    assert rows[1]["note"].startswith("positive control failed (gitlab, gitlab.example.com)")
    assert findings[1]["evidence"] == ("TCP connect to 192.0.2.80:443 (gitlab) found no route (ENETUNREACH, in "
                                       "0.002 s) (job container on a per-build network); 5 blocked result(s) of this "
                                       "context are inconclusive")
    assert findings[2]["evidence"].startswith("name gitlab.example.com did not resolve (EAI_NONAME, in 0.010 s)")
    assert findings[1]["severity"] == "medium"


def test_failed_positive_control_without_require_is_only_a_result():
    ctx, rows, findings = scenario({}, control="timeout", require_positive_controls=False)
    assert findings == [] and ctx["positive_controls"] == "fail"
    assert [r["status"] for r in rows][:6] == ["pass"] * 6 and rows[6]["status"] == "fail"


def test_no_positive_control_makes_blocked_results_inconclusive():
    p = params()
    targets = probe.build_targets(p)
    ctx = context()
    rows, findings = probe.evaluate(ctx, output([raw(t["index"], attempt(t["host"], "timeout")) for t in targets]),
                                    targets, p)
    assert findings == [] and ctx["positive_controls"] == "none"
    assert set(r["status"] for r in rows) == {"inconclusive"}
    assert rows[0]["note"].startswith("no positive control was given")


def test_the_address_that_got_furthest_decides():
    p = params(targets_blocked=[{"name": "db", "host": "db.internal.example.com", "port": 5432}],
               targets_allowed=[{"host": "192.0.2.80", "port": 443}])
    targets = probe.build_targets(p)
    record = raw(0, attempt("fd00:1::5", "ENETUNREACH"), attempt("10.1.2.3", "ok", 0.01),
                 attempt("10.1.2.4", "timeout"))
    rows, findings = probe.evaluate(context(), output([record, raw(1, attempt("192.0.2.80", "ok"))]), targets, p)
    assert (rows[0]["outcome"], rows[0]["address"], rows[0]["elapsed"]) == ("connected", "10.1.2.3", 0.01)
    assert rows[0]["addresses"] == ["fd00:1::5", "10.1.2.3", "10.1.2.4"]
    assert [a["outcome"] for a in rows[0]["attempts"]] == ["no_route", "connected", "timeout"]
    assert [f["id"] for f in findings] == ["GR044"]
    assert "10.1.2.3:5432 (db)" in findings[0]["evidence"]


def test_unresolved_hung_and_unexpected_errors():
    p = params(targets_blocked=[{"host": "db.internal.example.com", "port": 5432}, {"host": "10.0.0.1", "port": 22},
                                {"host": "10.0.0.2", "port": 22}, {"host": "10.0.0.3", "port": 22}],
               targets_allowed=[{"host": "192.0.2.80", "port": 443}])
    targets = probe.build_targets(p)
    records = [{"index": 0, "addresses": [], "attempts": [], "resolve": {"errno": None, "gai": "EAI_NONAME",
                                                                         "error": "gaierror", "elapsed": 0.01}},
               {"index": 1, "hung": True},
               raw(2, attempt("10.0.0.2", "EIO")),
               {"crashed": "RuntimeError: boom"},
               raw(4, attempt("192.0.2.80", "ok"))]
    rows, findings = probe.evaluate(context(), output(records), targets, p)
    assert [(r["outcome"], r["errno"], r["status"]) for r in rows] == [
        ("unresolved", "EAI_NONAME", "pass"), ("timeout", None, "pass"), ("error", "EIO", "inconclusive"),
        ("error", None, "inconclusive"), ("connected", None, "pass")]
    assert rows[3]["note"] == "RuntimeError: boom" and findings == []


def test_missing_records_are_not_passes():
    p = params(targets_allowed=[{"host": "192.0.2.80", "port": 443}], dns_names=["gitlab.example.com"])
    targets = probe.build_targets(p)
    rows, findings = probe.evaluate(context(), output([]), targets, p)
    assert set(r["status"] for r in rows if r["expect"] == "blocked") == {"inconclusive"}
    assert [f["id"] for f in findings] == ["GR045", "GR045"]


def test_udp_answer_wording():
    p = params(targets_blocked=[{"host": "10.0.0.53", "port": 53, "proto": "udp"}],
               targets_allowed=[{"host": "192.0.2.80", "port": 443}])
    targets = probe.build_targets(p)
    record = raw(0, dict(attempt("10.0.0.53", "ok"), answer_bytes=40))
    _rows, findings = probe.evaluate(context(), output([record, raw(1, attempt("192.0.2.80", "ok"))]), targets, p)
    assert findings[0]["evidence"].startswith("UDP datagram to 10.0.0.53:53 (10.0.0.53:53/udp) was answered")


def test_parse_output():
    assert probe.parse_output(b"noise\n" + json.dumps(output([])).encode() + b"\n\n")["version"] == 1
    for bad, message in [(b"", "printed nothing"), (b"{nope", "not JSON"), (b'{"version": 2}', "not from"),
                         (json.dumps({"version": 1, "user": "gitlab-runner", "drop_error": "KeyError: x"}).encode(),
                          "could not become gitlab-runner")]:
        with pytest.raises(probe.ProbeError, match=message):
            probe.parse_output(bad)


# --- the container context against a fake Docker API ---------------------------------------------

class NotFound(Exception):
    status_code = 404


class FakeApi(object):
    def __init__(self, out=None, networks=("bridge",)):
        self.out = out
        self.calls = []
        self.containers = {}
        self.networks = set(networks)
        self.fail = {}
        self.exit_code = 0

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
        data = self.out if self.out is not None else output([])
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

    def inspect_network(self, name):
        if name not in self.networks:
            raise NotFound(name)
        return {"Name": name}

    def inspect_image(self, name):
        self._maybe_fail("inspect_image")
        return {"Id": "sha256:probe"}


class FakeClient(object):
    def __init__(self, api, ping_error=None):
        self.api = api
        self.ping_error = ping_error
        self.closed = False

    def ping(self):
        if self.ping_error:
            raise self.ping_error
        return True

    def close(self):
        self.closed = True


def good_output(targets):
    return output([raw(t["index"], attempt(t["host"], "ok" if t["expect"] == "reachable" else "EHOSTUNREACH"))
                   for t in targets])


def test_container_context_lifecycle_per_build_network():
    p = params(gitlab_url="https://gitlab.example.com")
    targets = probe.build_targets(p)
    api = FakeApi(good_output(targets))
    ctx, out = probe.probe_container(api, p, targets, "t0k3n")
    assert ctx["error"] is None and out["targets"]
    assert (ctx["network"], ctx["per_build"]) == ("hgr-netprobe-t0k3n-net", True)
    kinds = [c[0] for c in api.calls]
    assert kinds == ["create_network", "create", "start", "wait", "remove", "remove_network"]
    assert api.calls[0][2] == {"driver": "bridge", "labels": {probe.LABEL: "1"}}
    create = api.calls[1][1]
    assert create["name"] == "hgr-netprobe-t0k3n" and create["image"] == probe.DEFAULT_IMAGE
    assert create["entrypoint"] == ["python3", "-I", "-c", SCRIPT]
    assert create["host_config"] == {"NetworkMode": "hgr-netprobe-t0k3n-net", "CapDrop": ["ALL"],
                                     "SecurityOpt": ["no-new-privileges:true"]}
    options = json.loads(create["command"][0])
    assert options["user"] is None and options["timeout"] == 3.0
    assert [(t["host"], t["port"]) for t in options["targets"]][:2] == [("169.254.169.254", 80), ("fd00:ec2::254", 80)]
    assert api.calls[3][2] == probe.time_budget(targets, p) + 30
    assert api.containers == {} and api.networks == {"bridge"}


def test_container_context_on_an_existing_network_creates_none():
    p = params(job_network="ci-jobs")
    targets = probe.build_targets(p)
    api = FakeApi(networks=("bridge", "ci-jobs"))
    ctx, out = probe.probe_container(api, p, targets, "t0k3n")
    assert ctx["error"] is None and (ctx["network"], ctx["per_build"]) == ("ci-jobs", False)
    assert [c[0] for c in api.calls] == ["create", "start", "wait", "remove"]
    assert api.calls[0][1]["host_config"]["NetworkMode"] == "ci-jobs"


def test_container_context_with_a_missing_network_starts_nothing():
    api = FakeApi()
    ctx, out = probe.probe_container(api, params(job_network="nope"), [], "t0k3n")
    assert out is None and ctx["error"] == "Docker network nope does not exist (job_network)" and api.calls == []


@pytest.mark.parametrize("stage", ["start", "wait"])
def test_container_and_network_are_removed_when_the_probe_fails(stage):
    api = FakeApi()
    api.fail[stage] = RuntimeError("unable to apply caps")
    ctx, out = probe.probe_container(api, params(), [], "t0k3n")
    assert out is None and ctx["error"] == "RuntimeError: unable to apply caps"
    assert api.containers == {} and api.networks == {"bridge"}
    assert [c[0] for c in api.calls][-2:] == ["remove", "remove_network"]


def test_create_failure_removes_by_name_and_ignores_not_found():
    api = FakeApi()
    api.fail["create"] = RuntimeError("conflict")
    ctx, out = probe.probe_container(api, params(), [], "t0k3n")
    assert ctx["error"] == "RuntimeError: conflict"
    assert ("remove", "hgr-netprobe-t0k3n", True, True) in api.calls and api.networks == {"bridge"}


def test_bad_exit_garbage_and_removal_errors():
    api = FakeApi()
    api.exit_code = 1
    ctx, _output = probe.probe_container(api, params(), [], "t0k3n")
    assert ctx["error"] == "the probe exited with 1: RuntimeError: boom" and api.containers == {}
    api = FakeApi(b"not json\n")
    ctx, _output = probe.probe_container(api, params(), [], "t0k3n")
    assert "not JSON" in ctx["error"] and api.containers == {}
    api = FakeApi()
    api.fail["remove"] = RuntimeError("device busy")
    ctx, out = probe.probe_container(api, params(), [], "t0k3n")
    assert ctx["error"] == "container hgr-netprobe-t0k3n could not be removed: device busy" and out is None
    assert api.networks == {"bridge", "hgr-netprobe-t0k3n-net"} or ("remove_network", "hgr-netprobe-t0k3n-net") \
        in api.calls
    api = FakeApi()
    api.fail["remove_network"] = RuntimeError("has active endpoints")
    ctx, out = probe.probe_container(api, params(), [], "t0k3n")
    assert out is None
    assert ctx["error"] == "network hgr-netprobe-t0k3n-net could not be removed: has active endpoints"


def test_run_reports_a_missing_image_or_daemon():
    api = FakeApi()
    api.fail["inspect_image"] = NotFound("no such image")
    result = probe.run(params(), lambda url, timeout: FakeClient(api))
    assert "is not on the Docker engine" in result["contexts"][0]["error"] and api.calls == []
    result = probe.run(params(), lambda url, timeout: FakeClient(api, ping_error=OSError("refused")))
    assert result["contexts"][0]["error"] == ("the Docker API at unix:///var/run/docker.sock did not answer: "
                                              "refused")


# --- the shell-user context with a fake process runner ---------------------------------------------

class Proc(object):
    def __init__(self, stdout=b"", stderr=b"", returncode=0):
        self.stdout, self.stderr, self.returncode = stdout, stderr, returncode


def test_shell_user_context_runs_the_program_as_the_job_user(monkeypatch):
    monkeypatch.setattr(probe.os, "geteuid", lambda: 0)
    p = params(contexts=["shell_user"], job_user="nobody", gitlab_url="https://gitlab.example.com")
    targets = probe.build_targets(p)
    seen = []

    def runner(args, timeout):
        seen.append((args, timeout))
        return Proc((json.dumps(dict(good_output(targets), user="nobody", identity={
            "uid": 65534, "gid": 65534, "groups": [65534], "user": "nobody"})) + "\n").encode())

    result = probe.run(p, shell_runner=runner)
    (args, timeout), = seen
    assert args[:4] == [sys.executable, "-I", "-c", SCRIPT]
    assert json.loads(args[4])["user"] == "nobody"
    assert timeout == probe.time_budget(targets, p) + 15
    assert result["findings"] == []
    ctx, = result["contexts"]
    assert ctx["setting"] == "probe: shell job user nobody" and ctx["identity"]["uid"] == 65534
    assert ctx["error"] is None and "where" not in ctx
    assert set(r["context"] for r in result["results"]) == {"shell_user"}


def test_shell_user_context_findings_carry_the_user(monkeypatch):
    monkeypatch.setattr(probe.os, "geteuid", lambda: 0)
    p = params(job_user="nobody", targets_allowed=[{"host": "192.0.2.80", "port": 443}],
               targets_blocked=[{"host": "169.254.169.254", "port": 80}])
    targets = probe.build_targets(p)
    out = output([raw(0, attempt("169.254.169.254", "ok")), raw(1, attempt("192.0.2.80", "ok"))])
    ctx, parsed = probe.probe_shell_user(p, targets, runner=lambda a, t: Proc(json.dumps(out).encode()))
    rows, findings = probe.evaluate(ctx, parsed, targets, p)
    assert [(f["id"], f["setting"]) for f in findings] == [("GR043", "probe: shell job user nobody")]
    assert findings[0]["evidence"].endswith("(process of the shell job user nobody)")


def test_shell_user_context_errors(monkeypatch):
    p = params(job_user="hgr-no-such-user-xyz")
    ctx, out = probe.probe_shell_user(p, [], runner=lambda a, t: pytest.fail("must not run"))
    assert ctx["error"] == "the job user hgr-no-such-user-xyz does not exist on this host" and out is None

    monkeypatch.setattr(probe.os, "geteuid", lambda: 4242)
    ctx, out = probe.probe_shell_user(params(job_user="nobody"), [], runner=lambda a, t: pytest.fail("must not run"))
    assert "run the module as root" in ctx["error"]

    monkeypatch.setattr(probe.os, "geteuid", lambda: 0)

    def hang(args, timeout):
        raise subprocess.TimeoutExpired(args, timeout)

    ctx, out = probe.probe_shell_user(params(job_user="nobody"), [], runner=hang)
    assert ctx["error"].startswith("the probe did not finish within")
    ctx, out = probe.probe_shell_user(params(job_user="nobody"), [],
                                      runner=lambda a, t: Proc(b"", b"Traceback\nPermissionError: x\n", 1))
    assert ctx["error"] == "the probe exited with 1: PermissionError: x"
    drop = json.dumps({"version": 1, "user": "nobody", "drop_error": "PermissionError: [Errno 1] setgroups"})
    ctx, out = probe.probe_shell_user(params(job_user="nobody"), [], runner=lambda a, t: Proc(drop.encode()))
    assert ctx["error"] == "the probe could not become nobody: PermissionError: [Errno 1] setgroups"


# --- the module ------------------------------------------------------------------------------------------

def run_module(monkeypatch, capsys, args, api=None, shell_runner=None, expect_failure=False):
    monkeypatch.setattr(probe, "HAS_DOCKER", True)
    monkeypatch.setattr(probe, "_client_factory", lambda url, timeout: FakeClient(api or FakeApi()))
    if shell_runner:
        real_run = probe.run
        monkeypatch.setattr(probe, "run", lambda p, factory: real_run(p, factory, shell_runner=shell_runner))
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            probe.main()
    result = json.loads(capsys.readouterr().out)
    # Ansible's own argument-spec failures carry no "changed"; everything the module says does.
    assert result.get("changed", False) is False
    assert (exit_info.value.code == 1) is expect_failure, result
    return result


def test_module_in_check_mode_reports_and_changes_nothing(monkeypatch, capsys):
    p = params(gitlab_url="https://gitlab.example.com")
    targets = probe.build_targets(p)
    out = good_output(targets)
    out["targets"][0] = raw(0, attempt("169.254.169.254", "ok"))
    api = FakeApi(out)
    result = run_module(monkeypatch, capsys, {"gitlab_url": "https://gitlab.example.com",
                                              "_ansible_check_mode": True}, api)
    assert [(f["id"], f["setting"]) for f in result["findings"]] == [("GR043", "probe: job container")]
    assert len(result["results"]) == 7 and result["contexts"][0]["positive_controls"] == "pass"
    assert api.containers == {} and api.networks == {"bridge"}


def test_module_warns_without_positive_controls(monkeypatch, capsys):
    # ansible-core may display warnings instead of returning them: catch them where they are given.
    given = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, warning, *args, **kwargs: given.append(warning))
    result = run_module(monkeypatch, capsys, {}, FakeApi(good_output(probe.build_targets(params()))))
    assert result["findings"] == []
    assert set(r["status"] for r in result["results"]) == {"inconclusive"}
    assert len(given) == 1 and given[0].startswith("no positive control")


def test_module_warns_about_failed_controls_when_not_required(monkeypatch, capsys):
    given = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, warning, *args, **kwargs: given.append(warning))
    p = params(gitlab_url="https://gitlab.example.com")
    out = good_output(probe.build_targets(p))
    out["targets"][-1] = raw(6, attempt("192.0.2.80", "timeout"))
    result = run_module(monkeypatch, capsys, {"gitlab_url": "https://gitlab.example.com",
                                              "require_positive_controls": False}, FakeApi(out))
    assert result["findings"] == []
    assert given == ["positive control gitlab failed in the container context: timeout"]


def test_module_fails_naming_the_context_that_could_not_run(monkeypatch, capsys):
    api = FakeApi()
    api.fail["start"] = RuntimeError("unable to apply caps")
    monkeypatch.setattr(probe.os, "geteuid", lambda: 0)
    p = params(job_user="nobody", gitlab_url="https://gitlab.example.com")
    out = good_output(probe.build_targets(p))
    result = run_module(monkeypatch, capsys, {"contexts": ["container", "shell_user"], "job_user": "nobody",
                                              "gitlab_url": "https://gitlab.example.com"}, api,
                        shell_runner=lambda a, t: Proc(json.dumps(out).encode()), expect_failure=True)
    assert result["msg"] == "the probe could not run in: container context: RuntimeError: unable to apply caps"
    assert [c["context"] for c in result["contexts"]] == ["container", "shell_user"]
    assert len(result["results"]) == 7 and api.containers == {}


@pytest.mark.parametrize("args, message", [
    ({"timeout": 0}, "timeout must be more than 0"),
    ({"contexts": []}, "at least one context"),
    ({"gitlab_url": "gitlab.example.com"}, "gitlab_url"),
    ({"targets_blocked": [{"host": "[]", "port": 80}]}, "is not an address"),
    ({"contexts": ["vm"]}, "value of contexts must be one or more of"),
])
def test_module_refuses_bad_input(monkeypatch, capsys, args, message):
    result = run_module(monkeypatch, capsys, args, expect_failure=True)
    assert message in result["msg"]


def test_module_without_the_docker_sdk(monkeypatch, capsys):
    monkeypatch.setattr(probe, "HAS_DOCKER", False)
    with patch_module_args({}):
        with pytest.raises(SystemExit):
            probe.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] and "docker" in result["msg"]


def test_documentation_matches_the_argument_spec():
    import yaml
    doc = yaml.safe_load(probe.DOCUMENTATION)
    assert set(doc["options"]) == set(PARAMS)
    assert set(doc["options"]["targets_blocked"]["suboptions"]) == {"name", "host", "port", "proto", "expect", "kind"}
    yaml.safe_load(probe.EXAMPLES)
    returned = yaml.safe_load(probe.RETURN)
    assert set(returned) == {"findings", "results", "contexts"}
    row = probe.target_result(probe.build_targets(params())[0], None)
    assert set(row) | {"context"} == set(returned["results"]["contains"])


# --- the program itself, in a private network namespace ----------------------------------------------

NETNS_WRAPPER = r"""
import json, socket, subprocess, sys
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(8)
closed = socket.socket()
closed.bind(("127.0.0.1", 0))
port, closed_port = listener.getsockname()[1], closed.getsockname()[1]
targets = [{"index": 0, "host": "127.0.0.1", "port": port}, {"index": 1, "host": "127.0.0.1", "port": closed_port},
           {"index": 2, "host": "192.0.2.1", "port": 80}, {"index": 3, "host": "hgr-netprobe.invalid", "port": 80}]
opts = {"timeout": 1, "targets": targets, "dns": ["hgr-netprobe.invalid"], "user": sys.argv[2] or None}
proc = subprocess.run([sys.executable, "-I", "-c", sys.argv[1], json.dumps(opts)], capture_output=True, timeout=60)
sys.stderr.write(proc.stderr.decode())
print(json.dumps({"port": port, "closed": closed_port, "out": proc.stdout.decode()}))
"""


@pytest.mark.parametrize("user", ["", "nobody"])
def test_the_program_in_a_private_network_namespace(user):
    """Only a loopback exists in the namespace: nothing can leave it."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare or ip is not installed")
    if user and os.geteuid() != 0:
        pytest.skip("dropping to another user needs root")
    check = subprocess.run(["unshare", "--net", "ip", "link", "set", "lo", "up"], capture_output=True, check=False)
    if check.returncode != 0:
        pytest.skip("cannot create a network namespace here: %s" % check.stderr.decode().strip())
    proc = subprocess.run(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable,
                           "-I", "-c", NETNS_WRAPPER, SCRIPT, user], capture_output=True, timeout=90, check=False)
    assert proc.returncode == 0, proc.stderr
    wrapped = json.loads(proc.stdout)
    out = probe.parse_output(wrapped["out"])
    assert out["identity"]["uid"] == (65534 if user else os.geteuid())
    p = params(targets_blocked=[{"name": "open", "host": "127.0.0.1", "port": wrapped["port"]},
                                {"name": "closed", "host": "127.0.0.1", "port": wrapped["closed"]},
                                {"name": "test-net", "host": "192.0.2.1", "port": 80},
                                {"name": "unresolvable", "host": "hgr-netprobe.invalid", "port": 80}],
               dns_names=["hgr-netprobe.invalid"])
    targets = probe.build_targets(p)
    rows, findings = probe.evaluate(context(), out, targets, p)
    assert [(r["outcome"], r["errno"]) for r in rows[:3]] == [
        ("connected", None), ("refused", "ECONNREFUSED"), ("no_route", "ENETUNREACH")]
    assert rows[3]["outcome"] in ("unresolved", "timeout") and rows[4]["outcome"] in ("unresolved", "timeout")
    assert [f["id"] for f in findings] == ["GR044", "GR044", "GR045"]
    compile(SCRIPT, "probe", "exec")
