"""runner_job_probe against this machine's Docker engine.

Builds the probe image once (``tests/images/probe/build.sh``, cached by a hash
label, so re-runs take no time), then runs the module as Ansible runs it
(``ansible localhost -m hardened.gitlab_runner.runner_job_probe``) on
config.toml files written to a temporary directory:

- the collection's hardened default ``[runners.docker]`` section, built by the
  role's own document builder from ``roles/gitlab_runner/defaults/main.yml``:
  no finding at medium or above, and the ordinary job steps of the workload
  check all succeed;
- each relaxation written straight into config.toml, bypassing the role's
  gate, one runner per relaxation in one module run: the probe must report the
  expected finding for each, so every probe is shown able to fail;
- a runner whose containers Docker refuses to start: the task fails naming the
  runner, and nothing the probe started is left behind.

The probes send no network traffic (a raw socket is only created, Unix sockets
are only connected to); the workload check pings 127.0.0.1 only.
Skipped when Docker does not answer; fails with the fixing command when the
base image or the collection link is missing.
"""

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CHECKOUT = Path(__file__).resolve().parents[2]
COLLECTIONS = CHECKOUT / ".collections"
BUILD = CHECKOUT / "tests/images/probe/build.sh"
IMAGE = "hardened-gitlab-runner/probe:latest"
BASE = "hardened-gitlab-runner/debian:12"
LABEL = "hardened.gitlab_runner.probe"
TOKEN = "glrt-FAKE-job-probe-token-0123456789"
SEVERE = ("medium", "high", "critical")
ORDINARY_STEPS = (
    "git init, commit and clone from a local repository",
    "run an interpreter (python3 -c)",
    "write files in the build directory",
    "create and extract a cache archive (tar czf, tar xzf)",
    "chown a file to another uid",
)


def _sh(*args, timeout=120):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def probe_image():
    if shutil.which("docker") is None:
        pytest.skip("docker is not installed: the job probe needs a Docker engine")
    info = _sh("docker", "info", "--format", "{{.ServerVersion}}", timeout=30)
    if info.returncode != 0:
        pytest.skip("Docker does not answer (`docker info`: %s): the job probe needs a Docker engine"
                    % (info.stderr.strip()[:200] or "no output"))
    if _sh("docker", "image", "inspect", BASE).returncode != 0:
        pytest.fail("base image %s is missing; run `make images`" % BASE)
    if not (COLLECTIONS / "ansible_collections/hardened/gitlab_runner/plugins/modules/runner_job_probe.py").is_file():
        pytest.fail("%s does not hold the collection; run `make link`" % COLLECTIONS)
    build = _sh(str(BUILD), timeout=900)
    assert build.returncode == 0, "probe image build failed: %s%s" % (build.stdout, build.stderr)
    return IMAGE


def _hardened_document():
    """A config.toml document with one runner, exactly as the gitlab_runner role writes it by default."""
    if str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))
    from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config import build_document

    defaults = yaml.safe_load((CHECKOUT / "roles/gitlab_runner/defaults/main.yml").read_text())
    role_defaults = {
        "docker": defaults["gitlab_runner_docker_defaults"],
        "kubernetes": defaults["gitlab_runner_kubernetes_defaults"],
        "feature_flags": defaults["gitlab_runner_feature_flags"],
        "runner": defaults["gitlab_runner_runner_defaults"],
        "cap_drop_extra": defaults["gitlab_runner_docker_cap_drop_extra"],
    }
    runner = {"name": "hardened", "url": "https://gitlab.example.com", "token": TOKEN, "executor": "docker"}
    return build_document({"concurrent": 4}, [runner], role_defaults)


def _write_config(directory, document):
    from ansible_collections.hardened.gitlab_runner.plugins.filter.toml import toml_key, toml_value
    from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config import to_toml_document

    path = directory / "config.toml"
    path.write_text(to_toml_document(document, toml_value, toml_key))
    path.chmod(0o600)
    return path


def _run_probe(directory, document, **args):
    """(rc, module result) of one ad-hoc run of the module on ``document``."""
    path = _write_config(directory, document)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_CONFIG=str(CHECKOUT / "ansible.cfg"),
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    ansible = Path(sys.executable).parent / "ansible"
    args = dict({"path": str(path), "image": IMAGE, "timeout": 120}, **args)
    proc = subprocess.run([str(ansible) if ansible.exists() else "ansible", "localhost", "-m",
                           "hardened.gitlab_runner.runner_job_probe", "-a", json.dumps(args)],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    (directory / "probe.out").write_text(proc.stdout + proc.stderr)
    assert TOKEN not in proc.stdout + proc.stderr, "the runner token appeared in the module's output"
    try:
        result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError("no module result in the output (rc=%d): %s %s"
                             % (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return proc.returncode, result


def _leftovers():
    containers = _sh("docker", "ps", "-aq", "--filter", "label=" + LABEL).stdout.split()
    networks = _sh("docker", "network", "ls", "-q", "--filter", "label=" + LABEL).stdout.split()
    return containers + networks


def _short(findings):
    return ["%s %s [%s]: %s" % (f["id"], f["severity"], f["setting"], f["evidence"]) for f in findings]


# --- the hardened default --------------------------------------------------------------------

def test_hardened_default_has_no_finding_and_runs_ordinary_jobs(probe_image, tmp_path):
    document = _hardened_document()
    docker = document["runners"][0]["docker"]
    assert {"SETUID", "SETGID", "NET_RAW", "MKNOD"} <= set(docker["cap_drop"])
    rc, result = _run_probe(tmp_path, document, workload=True)
    assert rc == 0 and result.get("failed") is not True, result.get("msg")
    assert result["changed"] is False
    assert [p["container"] for p in result["probes"]] == ["job", "service"]
    severe = [f for f in result["findings"] if f["severity"] in SEVERE]
    assert severe == [], "\n".join(_short(severe))
    job = result["probes"][0]
    # what the probe saw is what the hardened profile promises
    assert not set(job["capabilities"]["bounding"]) & {"SETUID", "SETGID", "NET_RAW", "MKNOD"}
    assert job["result"]["status"]["NoNewPrivs"] == "1"
    assert job["result"]["setuid"]["ran_as"] == 65534 and job["result"]["setuid"]["euid"] == 65534
    assert job["network"] == "per-build network"
    steps = dict((s["step"], s) for s in result["workload"])
    broken = ["%s: %s" % (name, steps[name]["error"]) for name in ORDINARY_STEPS if not steps[name]["ok"]]
    assert broken == [], broken
    print("\nworkload under the hardened default:")
    for step in result["workload"]:
        print("  %-55s %s" % (step["step"], "ok" if step["ok"] else "FAILED: " + step["error"]))
    assert _leftovers() == []


# --- each relaxation is reported -----------------------------------------------------------

def _daemon_defaults_no_new_privileges():
    """Whether this Docker daemon starts containers with no-new-privileges by itself (measured)."""
    proc = _sh("docker", "run", "--rm", "--name", "hgr-probe-nnp-default", "--label", LABEL + "=1",
               "--entrypoint", "grep", IMAGE, "NoNewPrivs", "/proc/self/status")
    return proc.stdout.split()[-1:] == ["1"]


# name: (change to the hardened [runners.docker], [(policy, container, evidence text)])
RELAXATIONS = {
    "cap-drop-without-setuid-setgid": (
        lambda d: d.update(cap_drop=[c for c in d["cap_drop"] if c not in ("SETUID", "SETGID")]),
        [("GR006", "job", "capability bounding set keeps SETUID, SETGID")]),
    "no-no-new-privileges": (
        lambda d: d.update(security_opt=[]),
        [("GR007", "job", "NoNewPrivs = 0"),
         ("GR007", "job", "the setuid-root helper run as uid 65534 got effective uid 0")]),
    "no-new-privileges-then-false": (
        lambda d: d.update(security_opt=["no-new-privileges:true", "no-new-privileges:false"]),
        [("GR007", "job", "NoNewPrivs = 0")]),
    "docker-sock-volume": (
        lambda d: d.update(volumes=list(d["volumes"]) + ["/var/run/docker.sock:/var/run/docker.sock"]),
        [("GR009", "job", "docker.sock in the container (accepts connections)"),
         ("GR009", "service", "docker.sock in the container (accepts connections)")]),
    "cap-add-net-raw": (
        lambda d: d.update(cap_add=["NET_RAW"]),
        [("GR006", "job", "capability bounding set keeps NET_RAW"),
         ("GR006", "job", "a raw ICMP socket was created (NET_RAW)")]),
    "services-without-no-new-privileges": (
        lambda d: d.update(services_security_opt=[]),
        [("GR029", "service", "NoNewPrivs = 0"),
         ("GR029", "service", "the setuid-root helper run as uid 65534 got effective uid 0")]),
}


@pytest.fixture(scope="module")
def relaxed_result(probe_image, tmp_path_factory):
    document = _hardened_document()
    base = document["runners"][0]
    document["runners"] = []
    for name, (change, _expected) in RELAXATIONS.items():
        runner = copy.deepcopy(base)
        runner["name"] = name
        change(runner["docker"])
        document["runners"].append(runner)
    # A control: the hardened profile spelled as GitLab Runner also accepts it.
    control = copy.deepcopy(base)
    control["name"] = "spelling-control"
    docker = control.pop("docker")
    control["Docker"] = dict((k, v) for k, v in docker.items() if k not in ("cap_drop", "security_opt"))
    control["Docker"]["Cap_Drop"] = ["cap_" + c.lower() for c in docker["cap_drop"]]
    control["Docker"]["Security_Opt"] = docker["security_opt"]
    document["runners"].append(control)
    rc, result = _run_probe(tmp_path_factory.mktemp("relaxed"), document)
    assert rc == 0 and result.get("failed") is not True, result.get("msg")
    return result


@pytest.mark.parametrize("relaxation", sorted(RELAXATIONS))
def test_each_relaxation_is_reported(relaxed_result, relaxation):
    expected = RELAXATIONS[relaxation][1]
    if relaxation == "services-without-no-new-privileges" and _daemon_defaults_no_new_privileges():
        expected = []  # the daemon's own default protects service containers here (GR033 is off)
    ours = [f for f in relaxed_result["findings"] if f["runner"] == relaxation]
    print("\n%s:\n  %s" % (relaxation, "\n  ".join(_short(ours)) or "no finding"))
    for policy, container, text in expected:
        matching = [f for f in ours if f["id"] == policy and f["setting"] == "probe: %s container" % container
                    and text in f["evidence"]]
        assert matching, "%s: no %s finding for the %s container with %r; got %s" % (
            relaxation, policy, container, text, _short(ours))


def test_spelling_variants_are_honoured(relaxed_result):
    ours = [f for f in relaxed_result["findings"] if f["runner"] == "spelling-control"]
    assert [f for f in ours if f["severity"] in SEVERE] == [], _short(ours)
    probe = [p for p in relaxed_result["probes"] if p["runner"] == "spelling-control"][0]
    assert probe["host_config"]["CapDrop"][:4] == ["SETUID", "SETGID", "NET_RAW", "MKNOD"]
    assert _leftovers() == []


# --- a probe that cannot run --------------------------------------------------------------------

def test_probe_that_cannot_run_fails_and_leaves_nothing(probe_image, tmp_path):
    document = _hardened_document()
    document["runners"][0]["name"] = "broken-network"
    document["runners"][0]["docker"]["network_mode"] = "hgr-probe-no-such-network"
    rc, result = _run_probe(tmp_path, document)
    assert rc != 0 and result.get("failed") is True
    assert "broken-network (job container)" in result["msg"], result["msg"]
    assert "hgr-probe-no-such-network" in result["msg"], result["msg"]
    assert _leftovers() == []
