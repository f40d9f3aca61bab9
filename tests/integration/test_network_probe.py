"""network_isolation_probe with real packets, all inside one disposable container.

The lab is a container on Docker's ``none`` network (only a loopback, no default
route), started with NET_ADMIN and SYS_ADMIN. Inside it the test creates a network
namespace ``fakemeta`` behind a veth that holds the fake metadata endpoints
169.254.169.254, 100.100.100.200 and fd00:ec2::254 and a fake GitLab at 192.0.2.80
(TEST-NET-1), with a TCP listener on ports 80 and 443. Before any probe it checks
that ``ip route get`` sends each of those addresses into the veth and that the lab has
no default route, so nothing can reach a real metadata service or anyone's host.

Then, with the probe program the module uses (and the module itself, whose container
context joins the lab's network namespace with ``job_network: container:<lab>``):

1. no rule: root, the unprivileged user 65534 and the module's container all reach
   the endpoints (GR043), so the probe can fail;
2. an nftables ``output`` rule for ``meta skuid 65534`` (as the firewall role writes
   for the shell job user), loaded from the host into the lab's namespace with
   ``nsenter``: that user is rejected and gets no finding while root still connects;
3. the rule for every user: the module's container context passes, with the fake
   GitLab still reachable as its positive control.

Skipped when Docker does not answer or the host lacks ``nft`` or ``nsenter`` (both
installed by ``scripts/host-deps.sh``) or is not root.
"""

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
COLLECTIONS = CHECKOUT / ".collections"
IMAGE = "hardened-gitlab-runner/probe:latest"
LABEL = "hardened.gitlab_runner.netprobe"
METADATA = ("169.254.169.254", "100.100.100.200", "fd00:ec2::254")
GITLAB = "192.0.2.80"

SETUP = r"""
set -eu
ip netns add fakemeta
ip link add hgrnp0 type veth peer name hgrnp1
ip link set hgrnp1 netns fakemeta
ip addr add 10.255.77.1/30 dev hgrnp0
ip -6 addr add fd00:77::1/64 dev hgrnp0 nodad
ip link set hgrnp0 up
ip netns exec fakemeta sh -euc '
  ip link set lo up
  ip addr add 10.255.77.2/30 dev hgrnp1
  ip -6 addr add fd00:77::2/64 dev hgrnp1 nodad
  ip link set hgrnp1 up
  for a in 169.254.169.254 100.100.100.200 192.0.2.80; do ip addr add $a/32 dev hgrnp1; done
  ip -6 addr add fd00:ec2::254/128 dev hgrnp1 nodad
  ip route add default via 10.255.77.1
  ip -6 route add default via fd00:77::1'
for a in 169.254.169.254 100.100.100.200 192.0.2.80; do ip route add $a/32 via 10.255.77.2 dev hgrnp0; done
ip -6 route add fd00:ec2::254/128 via fd00:77::2 dev hgrnp0
"""

LISTENER = r"""
import socket, threading
def serve(port):
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        c.close()
threads = [threading.Thread(target=serve, args=(p,)) for p in (80, 443)]
for t in threads:
    t.start()
"""

BLOCKED = [
    {"name": "metadata-ipv4", "host": "169.254.169.254", "port": 80},
    {"name": "metadata-ipv4-closed-port", "host": "169.254.169.254", "port": 81},
    {"name": "aws-metadata-ipv6", "host": "[fd00:ec2::254]", "port": 80},
    {"name": "alibaba-metadata", "host": "100.100.100.200", "port": 80},
]
ALLOWED = [{"name": "gitlab", "host": GITLAB, "port": 443}]

RULE_65534 = """
table inet hgr_netprobe_test {
  chain output {
    type filter hook output priority 0; policy accept;
    meta skuid 65534 ip daddr { 169.254.169.254, 100.100.100.200 } reject with icmpx admin-prohibited
    meta skuid 65534 ip6 daddr fd00:ec2::254 reject with icmpx admin-prohibited
  }
}
"""
RULE_ALL = """
table inet hgr_netprobe_test {
  chain output {
    ip daddr 169.254.169.254 reject with icmpx admin-prohibited
    ip6 daddr fd00:ec2::254 reject with icmpx admin-prohibited
    ip daddr 100.100.100.200 drop
  }
}
"""


def _sh(*args, timeout=60, stdin=None):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, input=stdin, check=False)


def _probe_module():
    if str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))
    from ansible_collections.hardened.gitlab_runner.plugins.modules import network_isolation_probe

    return network_isolation_probe


@pytest.fixture(scope="module")
def lab():
    if shutil.which("docker") is None:
        pytest.skip("docker is not installed: the network probe's live test needs a Docker engine")
    info = _sh("docker", "info", "--format", "{{.ServerVersion}}", timeout=30)
    if info.returncode != 0:
        pytest.skip("Docker does not answer (`docker info`: %s)" % (info.stderr.strip()[:200] or "no output"))
    for tool in ("nft", "nsenter"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed on this host (scripts/host-deps.sh installs it)" % tool)
    if os.geteuid() != 0:
        pytest.skip("loading a rule into the lab's network namespace needs root")
    if _sh("docker", "image", "inspect", IMAGE).returncode != 0:
        pytest.fail("probe image %s is missing; build it with tests/images/probe/build.sh" % IMAGE)
    if not (COLLECTIONS / "ansible_collections/hardened/gitlab_runner/plugins/modules").is_dir():
        pytest.fail("%s does not hold the collection; run `make link`" % COLLECTIONS)

    name = "hgr-netprobe-lab-" + uuid.uuid4().hex[:8]
    run = _sh("docker", "run", "-d", "--name", name, "--label", LABEL + "=1", "--network", "none",
              "--cap-add", "NET_ADMIN", "--cap-add", "SYS_ADMIN",
              "--sysctl", "net.ipv6.conf.all.disable_ipv6=0", "--sysctl", "net.ipv6.conf.default.disable_ipv6=0",
              "--entrypoint", "sleep", IMAGE, "600")
    assert run.returncode == 0, run.stderr
    try:
        setup = _sh("docker", "exec", name, "sh", "-c", SETUP)
        assert setup.returncode == 0, "lab setup failed: %s%s" % (setup.stdout, setup.stderr)
        # Network safety: every address the test probes goes into the fake namespace, nothing leaves the lab.
        for address in METADATA + (GITLAB,):
            route = _sh("docker", "exec", name, "ip", "route", "get", address)
            assert route.returncode == 0 and " dev hgrnp0 " in route.stdout, \
                "%s is not routed into the fake namespace: %s%s" % (address, route.stdout, route.stderr)
        for family in ("-4", "-6"):
            default = _sh("docker", "exec", name, "ip", family, "route", "show", "default")
            assert default.returncode == 0 and default.stdout.strip() == "", \
                "the lab has a default route (%s): %s" % (family, default.stdout)
        served = _sh("docker", "exec", "-d", name, "ip", "netns", "exec", "fakemeta", "python3", "-c", LISTENER)
        assert served.returncode == 0, served.stderr
        pid = _sh("docker", "inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
        assert pid.isdigit() and pid != "0"
        yield {"name": name, "pid": pid}
    finally:
        _sh("docker", "rm", "-f", name)


def _script(lab, user=None):
    """The module's probe program, run in the lab as root (dropping to ``user`` when given)."""
    mod = _probe_module()
    params = dict(targets_blocked=BLOCKED, targets_allowed=ALLOWED, gitlab_url=None, dns_names=[],
                  require_positive_controls=True, refused_means_reached=True, timeout=1.0)
    targets = mod.build_targets(params)
    options = mod.script_options(targets, params, user=user)
    proc = _sh("docker", "exec", lab["name"], "python3", "-I", "-c", mod.SCRIPT, json.dumps(options), timeout=60)
    assert proc.returncode == 0, proc.stderr
    output = mod.parse_output(proc.stdout)
    where = "shell job user %s" % user if user else "root"
    context = dict(context="shell_user", setting="probe: " + where, where=where)
    rows, findings = mod.evaluate(context, output, targets, params)
    return output, {r["name"]: (r["outcome"], r["errno"]) for r in rows}, sorted(set(f["id"] for f in findings)), \
        context


def _module(lab, tmp_path, **overrides):
    """One ad-hoc run of the module, its probe container in the lab's network namespace."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_CONFIG=str(CHECKOUT / "ansible.cfg"),
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    args = {"job_network": "container:" + lab["name"], "targets_blocked": BLOCKED, "targets_allowed": ALLOWED,
            "image": IMAGE, "timeout": 1}
    args.update(overrides)
    ansible = Path(sys.executable).parent / "ansible"
    proc = subprocess.run([str(ansible) if ansible.exists() else "ansible", "localhost", "-m",
                           "hardened.gitlab_runner.network_isolation_probe", "-a", json.dumps(args)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    (tmp_path / "module.out").write_text(proc.stdout + proc.stderr)
    try:
        result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError("no module result (rc=%d): %s %s" % (proc.returncode, proc.stdout[-2000:],
                                                                  proc.stderr[-2000:]))
    assert proc.returncode == 0, result.get("msg")
    assert result["changed"] is False
    left = _sh("docker", "ps", "-a", "--filter", "label=%s=1" % LABEL, "--format", "{{.Names}}").stdout.split()
    assert [n for n in left if n != lab["name"]] == [], "the module left its probe container behind"
    return result, {r["name"]: (r["outcome"], r["errno"]) for r in result["results"]}


def _nft(lab, ruleset):
    proc = _sh("nsenter", "-t", lab["pid"], "-n", "nft", "-f", "-", stdin=ruleset)
    assert proc.returncode == 0, "nft in the lab's namespace failed: %s" % proc.stderr


REACHED = {"metadata-ipv4": ("connected", None), "metadata-ipv4-closed-port": ("refused", "ECONNREFUSED"),
           "aws-metadata-ipv6": ("connected", None), "alibaba-metadata": ("connected", None),
           "gitlab": ("connected", None)}


def test_probe_fails_before_the_block_and_passes_after(lab, tmp_path):
    # 1. No rule: everyone reaches the fake metadata service.
    result, outcomes = _module(lab, tmp_path)
    assert outcomes == REACHED
    assert [(f["id"], f["setting"]) for f in result["findings"]] == [("GR043", "probe: job container")] * 4
    assert result["contexts"][0]["positive_controls"] == "pass"
    for user in (None, "nobody"):
        output, outcomes, ids, _context = _script(lab, user)
        assert outcomes == REACHED, user
        assert ids == ["GR043"]
    assert output["identity"]["uid"] == 65534

    # 2. The job user's own traffic rejected in the output chain, as the firewall role does for shell jobs.
    _nft(lab, RULE_65534)
    output, outcomes, ids, context = _script(lab, "nobody")
    assert output["identity"]["uid"] == 65534
    # On some kernels a locally generated ICMPv6 reject does not come back to the socket (seen
    # here): the connect then times out, which is just as blocked. The same happened once for
    # IPv4 on a loaded machine (the kernel rate-limits the ICMP errors it sends itself, with a
    # random burst): a timeout is blocked too, what must never happen is a connection.
    blocked = (("rejected", "EHOSTUNREACH"), ("timeout", None))
    assert outcomes.pop("aws-metadata-ipv6") in (("rejected", "EACCES"), ("timeout", None))
    for name in ("metadata-ipv4", "metadata-ipv4-closed-port", "alibaba-metadata"):
        assert outcomes.pop(name) in blocked, name
    assert outcomes == {"gitlab": ("connected", None)}
    assert ids == [] and context["positive_controls"] == "pass"
    _output, outcomes, ids, _context = _script(lab)
    assert outcomes == REACHED and ids == ["GR043"], "root must keep its access"

    # 3. Everyone's traffic blocked: the module's job container passes, GitLab still reachable.
    _nft(lab, RULE_ALL)
    result, outcomes = _module(lab, tmp_path)
    assert outcomes.pop("aws-metadata-ipv6") in (("rejected", "EACCES"), ("timeout", None))
    for name in ("metadata-ipv4", "metadata-ipv4-closed-port"):
        assert outcomes.pop(name) in blocked, name
    assert outcomes == {"alibaba-metadata": ("timeout", None), "gitlab": ("connected", None)}
    assert result["findings"] == []
    assert set(r["status"] for r in result["results"]) == {"pass"}


def test_per_build_network_is_created_and_removed(lab, tmp_path):
    """The per-build context on a real engine; the only target is the probe container's own loopback."""
    result, outcomes = _module(lab, tmp_path, job_network="per_build", targets_allowed=[],
                               targets_blocked=[{"name": "own-loopback", "host": "127.0.0.1", "port": 9,
                                                 "kind": "internal"}])
    assert outcomes == {"own-loopback": ("refused", "ECONNREFUSED")}
    assert [(f["id"], f["severity"]) for f in result["findings"]] == [("GR044", "high")]
    context, = result["contexts"]
    assert context["per_build"] is True and context["network"].startswith("hgr-netprobe-")
    assert context["positive_controls"] == "none" and context["identity"]["uid"] == 0
    assert _sh("docker", "network", "inspect", context["network"]).returncode != 0, "the per-build network was left"
