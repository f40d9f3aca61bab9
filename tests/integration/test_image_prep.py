"""image_prep.yml leaves a host that can be cloned, and each clone registers runners of its own at first boot.

Acceptance (issue 12): after ``image_prep.yml`` the audit finds no token and no
system id on the host, and a first boot of a clone registers a new runner against
the local API server.

1. A fresh Debian 12 host (``hgr-image-prep``) is converged with site.yml: two
   trusted shell runners with fake tokens made up for this run, and on one of them
   the fields GitLab Runner writes with a token (``id``, ``token_obtained_at``,
   ``token_expires_at``). The audit module sees both tokens and the system id
   there (the positive control of what follows).
2. Bad inputs (an entry without runner_type, an entry for a runner config.toml
   does not have, a runner without an entry, a group runner without its group, no
   config.toml) stop image_prep.yml before the host changes; --check changes nothing.
3. image_prep.yml at -vvv with --diff: no token anywhere in its output; the audit
   module finds no token and no system id; the files say the same; GitLab Runner
   is disabled and stopped, the first-boot unit enabled. A second run changes
   nothing, and audit.yml passes on the prepared host.
4. The host is committed to an image. The fake GitLab API
   (tests/fixtures/fake_gitlab) runs in a container on ``hgr-test``. Two clones
   get the credentials file before they boot; each registers one new runner per
   runner of config.toml, described with its own host name, and runs GitLab Runner
   with exactly the tokens the fake issued; neither the issued tokens nor the
   access token are in the clone's journal, and the access token is nowhere on
   its disk. audit.yml over both clones finds no shared token or system id
   (GR022), and a second boot registers nothing.
5. A clone with a wrong access token: a clear message in the journal without the
   token, the credentials file kept, GitLab Runner disabled, nothing registered.

The first tests need no container: they check the script's TOML writer and its
prepare command on files in a temporary directory.

Needs docker, the local images and the fixture apt repository
(``make images fixtures link``). Run with ``pytest tests/integration``.
"""

import hashlib
import importlib.util
import io
import json
import re
import secrets
import tarfile
import time
import tomllib

import docker
import pytest
import yaml
from runner_hosts import CHECKOUT, check_prerequisites, disposable_hosts, find_leaks, fixture_repo_url, run_playbook, sh

HOST = "hgr-image-prep"
FAKE = "hgr-image-prep-fake-gitlab"
CLONES = ("hgr-image-prep-clone-1", "hgr-image-prep-clone-2")
BAD_CLONE = "hgr-image-prep-clone-bad"
NETWORK = "hgr-test"
LABEL = {"hardened-gitlab-runner.test": "image-prep"}
CONFIG_DIR = "/etc/gitlab-runner"
CONFIG = CONFIG_DIR + "/config.toml"
SYSTEM_ID = CONFIG_DIR + "/.runner_system_id"
CREDENTIALS = CONFIG_DIR + "/firstboot.env"
FIRSTBOOT = "gitlab-runner-firstboot"
SCRIPT = CHECKOUT / "roles/runner_image/files/gitlab-runner-firstboot.py"
INSTALLED_SCRIPT = "/usr/local/libexec/hardened-gitlab-runner/gitlab-runner-firstboot"
FAKE_SCRIPT = CHECKOUT / "tests/fixtures/fake_gitlab/fake_gitlab_api.py"
FAKE_STATE = "/srv/fake-gitlab/state.json"
URL = "https://gitlab.example.test"
TOKEN_FIELDS = ("token", "id", "token_obtained_at", "token_expires_at")
# What the first boot is asked to create for each runner of config.toml.
RUNNER_SPECS = [
    {"name": "shell-a", "runner_type": "group_type", "group_id": 42, "tag_list": ["image-prep", "shell"]},
    {"name": "shell-b", "runner_type": "project_type", "project_id": 7, "access_level": "ref_protected"},
]
# run-host.sh's options for a systemd container (no --privileged).
SYSTEMD_CAPS = ["SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE"]
BOOT_TIMEOUT = 90


def _load_script():
    spec = importlib.util.spec_from_file_location("gitlab_runner_firstboot", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _token(label):
    return "glrt-FAKE-imageprep-%s-%s" % (label, secrets.token_hex(16))


def _recap(output, host):
    match = re.search(r"^%s\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)" % re.escape(host),
                      output, re.M)
    assert match, "no PLAY RECAP line for %s" % host
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


# --- the script alone ------------------------------------------------------------------


TRICKY = r'''
concurrent = 4
"odd key" = "x"
[session_server]
listen_address = "127.0.0.1:8093"
[[runners]]
name = "quote\"and\\back\nnew\u0001line ünï"
url = "https://gitlab.example.test"
Token = "glrt-FAKE-mixed-case-key"
ID = 5
token_obtained_at = 2025-01-01T00:00:00Z
token_expires_at = 0001-01-01T00:00:00Z
executor = "docker"
environment = ["A=1", "B=two words"]
values = [nan, -inf, 1e300, -0.0, 2024-01-01, 12:00:00.5, 2024-01-01T01:02:03.123456, 2024-01-01T01:02:03+05:30]
nested = [[1, 2], ["a"], []]
inline = [{a = 1}, {b = [{c = 2}]}]
empty = {}
[runners.docker]
cap_drop = ["ALL"]
[[runners.docker.services]]
name = "postgres"
[runners.docker.services.extra]
k = 1
[runners.feature_flags]
FF_NETWORK_PER_BUILD = true
[[runners]]
name = "second"
[runners.cache.s3]
SecretKey = "kept: not a runner token"
'''


def test_the_toml_writer_keeps_every_value():
    script = _load_script()
    document = tomllib.loads(TRICKY)
    text = script.toml_dump(document)
    assert script._same(tomllib.loads(text), document)  # pylint: disable=protected-access
    # A document that would not parse back the same is refused (the NaN-aware comparison can fail).
    assert not script._same({"a": [1.0]}, {"a": [1]})  # pylint: disable=protected-access


def test_prepare_takes_token_fields_in_any_spelling_and_keeps_the_rest(tmp_path):
    script = _load_script()
    config, system_id = tmp_path / "config.toml", tmp_path / ".runner_system_id"
    config.write_text(TRICKY)
    system_id.write_text("s_0123456789ab")
    before = tomllib.loads(TRICKY)
    assert script.main(["prepare", "--check", "--config", str(config)]) == 0
    assert config.read_text() == TRICKY and system_id.exists(), "--check changed something"
    assert script.main(["prepare", "--config", str(config)]) == 0
    after = tomllib.loads(config.read_text())
    assert not system_id.exists()
    assert "glrt-FAKE" not in config.read_text()
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    for old, new in zip(before["runners"], after["runners"]):
        kept = {k: v for k, v in old.items() if k.casefold() not in TOKEN_FIELDS}
        assert list(new) == list(kept)
        assert script._same(new, kept)  # pylint: disable=protected-access
    assert after["runners"][1]["cache"]["s3"]["SecretKey"] == "kept: not a runner token"
    again = config.read_text()
    assert script.main(["prepare", "--config", str(config)]) == 0
    assert config.read_text() == again


# --- the host, the image and its clones ---------------------------------------------------------


class Lab:
    """The converged host, the playbook runs' working directory and the tokens made up for this run."""

    def __init__(self, workdir, client):
        self.workdir = workdir
        self.client = client
        self.inventory = workdir / "inventory.yml"
        self.tokens = {"shell-a": _token("shell-a"), "shell-b": _token("shell-b")}
        self.access_token = "glpat-FAKE-imageprep-" + secrets.token_hex(16)
        self.images = []
        self.containers = []
        self.issued = {}  # "<clone> <description>" -> the token the fake issued for it

    def secrets(self):
        return list(self.tokens.items()) + [("access token", self.access_token)]

    def playbook(self, label, *args):
        return run_playbook(self.workdir, label, "-i", str(self.inventory), *args)

    def image_prep(self, label, *args):
        return self.playbook(label, str(CHECKOUT / "playbooks/image_prep.yml"), *args)


def in_host(name, *args, check=True):
    return sh("docker", "exec", name, *args, check=check)


def _unit(name, unit, prop):
    return in_host(name, "systemctl", "show", "-p", prop, "--value", unit).stdout.strip()


def _audit_module(lab, label, host=HOST):
    """runner_config_audit on ``host`` (an ad-hoc run): its JSON result."""
    env_out = lab.workdir / ("%s.json" % label)
    rc, output = run_playbook(lab.workdir, label, "-i", str(lab.inventory), "--limit", host, "-e",
                              "audit_out=%s" % env_out, str(lab.workdir / "audit_module.yml"))
    assert rc == 0, "the audit module run failed (rc=%d); see %s" % (rc, lab.workdir / ("%s.out" % label))
    assert not find_leaks(output, lab.secrets())
    return json.loads(env_out.read_text())


ADD_TOKEN_FIELDS = """\
import re, sys
path, token = sys.argv[1:]
text = open(path).read()
line = re.search(r'^( *)token = "%s"$' % re.escape(token), text, re.M)
extra = "".join("\\n%s%s" % (line.group(1), field) for field in (
    "id = 41", "token_obtained_at = 2025-06-01T10:00:00Z", "token_expires_at = 0001-01-01T00:00:00Z"))
open(path, "w").write(text[:line.end()] + extra + text[line.end():])
"""

AUDIT_MODULE_PLAY = """\
---
- name: Run the config audit module and keep its result
  hosts: all
  gather_facts: false
  tasks:
    - name: Audit config.toml and the system id
      hardened.gitlab_runner.runner_config_audit:
        salt: image-prep-test-salt-that-is-long-enough-to-mask-nothing
      register: result
      no_log: true
    - name: Keep the result on the controller
      ansible.builtin.copy:
        content: "{{ {'runners': result.runners, 'system_id_hash': result.system_id_hash, 'parsed': result.parsed} | to_json }}"
        dest: "{{ audit_out }}"
        mode: "0600"
      delegate_to: localhost
"""


def _inventory(repo_url, fingerprint, tokens):
    """The host and its clones in gitlab_runners; the runners are the group's, so audit.yml knows them on the clones."""
    return {"gitlab_runners": {
        "hosts": {name: {} for name in (HOST,) + CLONES},
        "vars": {
            "ansible_connection": "community.docker.docker",
            # Already root in the containers, which have no sudo.
            "ansible_become": False,
            "gitlab_runner_repo_url": repo_url,
            "gitlab_runner_repo_key_fingerprint": fingerprint,
            "gitlab_runner_runners": [
                {"name": name, "url": URL, "token": token, "executor": "shell", "trusted": True}
                for name, token in tokens.items()],
            "runner_image_runners": RUNNER_SPECS,
        }}}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    fingerprint = check_prerequisites("12")
    repo_url = fixture_repo_url()
    client = docker.from_env()
    workdir = tmp_path_factory.mktemp("image-prep")
    lab = Lab(workdir, client)
    lab.inventory.write_text(yaml.safe_dump(_inventory(repo_url, fingerprint, lab.tokens)))
    (workdir / "audit_module.yml").write_text(AUDIT_MODULE_PLAY)
    for name in (FAKE, BAD_CLONE) + CLONES:
        sh("docker", "rm", "-f", name, check=False)
    try:
        with disposable_hosts({HOST: "12"}, "image-prep"):
            yield lab
    finally:
        for container in lab.containers:
            sh("docker", "rm", "-f", container, check=False)
        for image in lab.images:
            sh("docker", "rmi", "-f", image, check=False)


def test_site_yml_converges_a_runner_host_with_tokens_and_a_system_id(lab):
    rc, output = lab.playbook("site", "--limit", HOST, str(CHECKOUT / "playbooks/site.yml"))
    assert rc == 0, "site.yml failed (rc=%d); see %s" % (rc, lab.workdir / "site.out")
    assert not find_leaks(output, lab.secrets())
    # The fields GitLab Runner itself writes after it verified a token, on shell-a.
    in_host(HOST, "python3", "-c", ADD_TOKEN_FIELDS, CONFIG, lab.tokens["shell-a"])
    config = tomllib.loads(in_host(HOST, "cat", CONFIG).stdout)
    assert [r["token"] for r in config["runners"]] == [lab.tokens["shell-a"], lab.tokens["shell-b"]]
    assert config["runners"][0]["id"] == 41
    assert in_host(HOST, "test", "-s", SYSTEM_ID, check=False).returncode == 0, "GitLab Runner made no system id"
    # Positive control for the audit after image_prep: it does see tokens and a system id.
    audit = _audit_module(lab, "audit-module-before")
    assert audit["parsed"] and all(r["token_hash"] for r in audit["runners"]), audit
    assert audit["system_id_hash"], audit


def _host_snapshot():
    return {
        "config": hashlib.sha256(in_host(HOST, "cat", CONFIG).stdout.encode()).hexdigest(),
        "system_id": in_host(HOST, "cat", SYSTEM_ID, check=False).stdout,
        "service": (_unit(HOST, "gitlab-runner", "UnitFileState"), _unit(HOST, "gitlab-runner", "ActiveState")),
        "firstboot": in_host(HOST, "test", "-e", "/etc/systemd/system/%s.service" % FIRSTBOOT, check=False).returncode,
        "script": in_host(HOST, "test", "-e", INSTALLED_SCRIPT, check=False).returncode,
    }


@pytest.mark.parametrize("label, extra, message", [
    ("no-runner-type", {"runner_image_runners": [{"name": "shell-a", "group_id": 42}, RUNNER_SPECS[1]]},
     "missing required arguments: runner_type"),
    ("unknown-runner", {"runner_image_runners": RUNNER_SPECS + [{"name": "not-there", "runner_type": "instance_type"}]},
     'runner_image_runners names ["not-there"], not in config.toml'),
    ("runner-without-entry", {"runner_image_runners": RUNNER_SPECS[:1]},
     'The runner(s) ["shell-b"] of config.toml have no entry'),
    ("group-without-id", {"runner_image_runners": [{"name": "shell-a", "runner_type": "group_type"}, RUNNER_SPECS[1]]},
     "a group_type runner needs its group_id"),
    ("no-config", {"runner_image_config_dir": "/etc/no-gitlab-runner-here"},
     "Cannot read the runners of /etc/no-gitlab-runner-here/config.toml: error: there is no config.toml"),
])
def test_bad_input_stops_before_anything_changes(lab, label, extra, message):
    before = _host_snapshot()
    assert before["service"] == ("enabled", "active") and before["system_id"] and before["firstboot"] != 0
    extra_file = lab.workdir / ("bad-%s.yml" % label)
    extra_file.write_text(yaml.safe_dump(extra))
    rc, output = lab.image_prep("bad-" + label, "--limit", HOST, "-e", "@%s" % extra_file)
    assert rc != 0, "image_prep.yml accepted %s" % label
    assert message in output, "the failure does not say %r; see %s" % (message, lab.workdir / ("bad-%s.out" % label))
    assert not find_leaks(output, lab.secrets())
    assert _host_snapshot() == before, "a refused run changed the host"


def test_check_mode_reports_changes_and_makes_none(lab):
    before = _host_snapshot()
    rc, output = lab.image_prep("image-prep-check", "--limit", HOST, "--check", "--diff")
    assert rc == 0, "image_prep.yml --check failed; see %s" % (lab.workdir / "image-prep-check.out")
    assert _recap(output, HOST)["changed"] > 0
    assert not find_leaks(output, lab.secrets())
    assert _host_snapshot() == before, "check mode changed the host"


def test_image_prep_takes_tokens_and_system_id_off_the_host(lab):
    rc, output = lab.image_prep("image-prep", "--limit", HOST, "-vvv", "--diff")
    assert rc == 0, "image_prep.yml failed (rc=%d); see %s" % (rc, lab.workdir / "image-prep.out")
    assert _recap(output, HOST)["changed"] > 0
    hits = find_leaks(output, lab.secrets())
    assert not hits, "a token leaked into image_prep.yml's output:\n" + "\n".join(hits[:20])
    # What audit.yml's config module finds: runners without a token, no system id.
    audit = _audit_module(lab, "audit-module-after")
    assert audit["parsed"] and [r["name"] for r in audit["runners"]] == ["shell-a", "shell-b"], audit
    assert [r["token_hash"] for r in audit["runners"]] == [None, None], audit
    assert audit["system_id_hash"] is None, audit
    # The same, read directly.
    text = in_host(HOST, "cat", CONFIG).stdout
    assert not find_leaks(text, lab.secrets())
    for runner in tomllib.loads(text)["runners"]:
        assert not {k.casefold() for k in runner} & set(TOKEN_FIELDS), runner
        assert runner["executor"] == "shell" and runner["url"] == URL
    assert in_host(HOST, "stat", "-c", "%a %U:%G", CONFIG).stdout.split() == ["600", "root:root"]
    assert in_host(HOST, "stat", "-c", "%a", CONFIG_DIR).stdout.strip() == "700"
    assert in_host(HOST, "test", "-e", SYSTEM_ID, check=False).returncode != 0, "the system id file is still there"
    assert _unit(HOST, "gitlab-runner", "UnitFileState") == "disabled"
    assert _unit(HOST, "gitlab-runner", "ActiveState") == "inactive"
    assert _unit(HOST, FIRSTBOOT, "UnitFileState") == "enabled"
    assert in_host(HOST, "stat", "-c", "%a %U", INSTALLED_SCRIPT).stdout.split() == ["700", "root"]
    # The installed script is the role's file behind an interpreter line.
    installed = in_host(HOST, "cat", INSTALLED_SCRIPT).stdout
    assert installed == "#!/usr/bin/python3 -I\n" + SCRIPT.read_text()
    spec = json.loads(in_host(HOST, "cat", CONFIG_DIR + "/firstboot-runners.json").stdout)
    assert spec["runners"]["shell-a"] == {k: v for k, v in RUNNER_SPECS[0].items() if k != "name"}


def test_image_prep_again_changes_nothing(lab):
    rc, output = lab.image_prep("image-prep-again", "--limit", HOST)
    assert rc == 0, "the second image_prep.yml run failed; see %s" % (lab.workdir / "image-prep-again.out")
    assert _recap(output, HOST)["changed"] == 0, "\n".join(l for l in output.splitlines() if l.startswith("changed:"))


def test_audit_yml_passes_on_the_prepared_host(lab):
    rc, output = lab.playbook("audit-prepared", "--limit", HOST, "-e", "audit_report_dir=%s" % (lab.workdir / "reports"),
                              str(CHECKOUT / "playbooks/audit.yml"))
    assert rc == 0, "audit.yml failed on the prepared host; see %s" % (lab.workdir / "audit-prepared.out")
    assert not find_leaks(output, lab.secrets())


# --- clones ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden(lab):
    """The prepared host committed to an image; returns its name."""
    repository = "hgr-image-prep-golden"
    tag = secrets.token_hex(4)
    lab.images.append("%s:%s" % (repository, tag))
    lab.client.containers.get(HOST).commit(repository=repository, tag=tag)
    return "%s:%s" % (repository, tag)


@pytest.fixture(scope="module")
def fake_gitlab(lab):
    """The fake GitLab API in a container on hgr-test; returns its base URL there."""
    lab.containers.append(FAKE)
    container = lab.client.containers.create(
        "hardened-gitlab-runner/debian:12", name=FAKE, hostname=FAKE, network=NETWORK, labels=LABEL,
        command=["python3", "/srv/fake-gitlab/fake_gitlab_api.py", "--listen", "0.0.0.0", "--port", "8080",
                 "--admin-token", lab.access_token, "--state-file", FAKE_STATE])
    container.put_archive("/", _tar({"srv/fake-gitlab/fake_gitlab_api.py": (FAKE_SCRIPT.read_bytes(), 0o755)},
                                    directories=("srv", "srv/fake-gitlab")))
    container.start()
    deadline = time.monotonic() + 30
    while b"fake GitLab API listening" not in container.logs():
        assert time.monotonic() < deadline, "the fake GitLab API did not start: %s" % container.logs()[-2000:]
        time.sleep(0.3)
    return "http://%s:8080" % FAKE


def fake_state(lab):
    return json.loads(lab.client.containers.get(FAKE).exec_run(["cat", FAKE_STATE]).output)


def _tar(files, directories=()):
    """A tar stream of ``{path: (bytes, mode)}`` owned by root, with ``directories`` (0755) first."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        for path in directories:
            info = tarfile.TarInfo(path)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, 0, 0
            archive.addfile(info)
        for path, (content, mode) in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.uid, info.gid = len(content), mode, 0, 0
            archive.addfile(info, io.BytesIO(content))
    return data.getvalue()


def boot_clone(lab, image, name, credentials):
    """Create a clone of ``image`` named ``name``, drop ``credentials`` in before it boots, boot it."""
    sh("docker", "rm", "-f", name, check=False)
    lab.containers.append(name)
    container = lab.client.containers.create(
        image, name=name, hostname=name, network=NETWORK, labels=LABEL, environment={"container": "docker"},
        cgroupns="host", volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
        tmpfs={"/run": "", "/run/lock": "", "/tmp": ""}, cap_add=SYSTEMD_CAPS)
    container.put_archive(CONFIG_DIR, _tar({"firstboot.env": (credentials.encode(), 0o600)}))
    container.start()
    wait_for_boot(name)
    return container


def wait_for_boot(name):
    deadline, state = time.monotonic() + BOOT_TIMEOUT, ""
    while time.monotonic() < deadline:
        state = in_host(name, "systemctl", "is-system-running", check=False).stdout.strip()
        if state in ("running", "degraded"):
            return state
        time.sleep(1)
    raise AssertionError("%s did not finish booting (state %r)" % (name, state))


def wait_active(name, unit, timeout=30):
    deadline = time.monotonic() + timeout
    while _unit(name, unit, "ActiveState") != "active":
        assert time.monotonic() < deadline, "%s did not become active on %s" % (unit, name)
        time.sleep(0.5)


def _credentials(url, token):
    return "# dropped by the provisioning tool\nGITLAB_URL=%s\nGITLAB_RUNNER_CREATE_TOKEN=%s\nGITLAB_ALLOW_HTTP=true\n" % (
        url, token)


def test_a_clone_registers_runners_of_its_own_at_first_boot(lab, golden, fake_gitlab):
    before = fake_state(lab)["runners"]
    for clone in CLONES:
        boot_clone(lab, golden, clone, _credentials(fake_gitlab, lab.access_token))
    issued = {}
    state = fake_state(lab)["runners"]
    assert len(state) == len(before) + 2 * len(CLONES), state
    for clone in CLONES:
        assert _unit(clone, FIRSTBOOT, "Result") == "success", in_host(clone, "journalctl", "-u", FIRSTBOOT).stdout
        mine = [r for r in state if r["description"].endswith(" on %s" % clone)]
        assert sorted(r["description"] for r in mine) == ["shell-a on %s" % clone, "shell-b on %s" % clone]
        by_name = {r["description"].split(" on ")[0]: r for r in mine}
        assert (by_name["shell-a"]["runner_type"], by_name["shell-a"]["group_id"]) == ("group_type", 42)
        assert by_name["shell-a"]["tag_list"] == ["image-prep", "shell"]
        assert (by_name["shell-b"]["runner_type"], by_name["shell-b"]["project_ids"]) == ("project_type", [7])
        assert by_name["shell-b"]["access_level"] == "ref_protected"
        # config.toml holds exactly the tokens the fake issued, and the runner ids.
        config = tomllib.loads(in_host(clone, "cat", CONFIG).stdout)
        assert [(r["name"], r["token"], r["id"]) for r in config["runners"]] == [
            (name, by_name[name]["token"], by_name[name]["id"]) for name in ("shell-a", "shell-b")]
        assert in_host(clone, "stat", "-c", "%a %U:%G", CONFIG).stdout.split() == ["600", "root:root"]
        assert in_host(clone, "test", "-e", CREDENTIALS, check=False).returncode != 0, "the credentials are still there"
        assert _unit(clone, FIRSTBOOT, "UnitFileState") == "disabled"
        assert _unit(clone, "gitlab-runner", "UnitFileState") == "enabled"
        wait_active(clone, "gitlab-runner")
        status = json.loads(in_host(clone, "cat", "/run/gitlab-runner-standin.status").stdout)
        assert status["runners"] == 2 and status["user"] == "gitlab-runner", status
        issued.update({"%s %s" % (clone, r["description"]): r["token"] for r in mine})
        # No token in the first boot's journal, which does say what it did (the control).
        journal = in_host(clone, "journalctl", "--no-pager", "-o", "cat", "-u", FIRSTBOOT).stdout
        (lab.workdir / ("%s.firstboot.journal" % clone)).write_text(journal)
        assert "created GitLab runner" in journal and "deleted the credentials file" in journal, journal
        named = list(issued.items()) + lab.secrets()
        assert not find_leaks(journal, named), find_leaks(journal, named)[:10]
        # The whole journal too, with what the image brought along from the prepared host.
        whole = in_host(clone, "journalctl", "--no-pager", "-o", "cat").stdout
        hits = find_leaks(whole, named)
        assert not hits, "a token is in %s's journal:\n%s" % (clone, "\n".join(hits[:10]))
        # The access token left no trace on the clone's disk.
        grep = in_host(clone, "grep", "-rlsF", "--", lab.access_token, "/etc", "/var", "/usr/local", "/root", check=False)
        assert grep.returncode != 0 and not grep.stdout.strip(), "the access token is still on %s: %s" % (clone, grep.stdout)
    lab.issued.update(issued)


def test_audit_yml_finds_no_shared_token_or_system_id_between_clones(lab):
    assert lab.issued, "the clones did not boot"
    reports = lab.workdir / "reports-clones"
    rc, output = lab.playbook("audit-clones", "--limit", ",".join(CLONES), "-e", "audit_report_dir=%s" % reports,
                              str(CHECKOUT / "playbooks/audit.yml"))
    assert rc == 0, "audit.yml failed on the clones; see %s" % (lab.workdir / "audit-clones.out")
    report = json.loads((reports / "report.json").read_text())
    text = json.dumps(report)
    assert all(clone in text for clone in CLONES)
    shared = [f for f in _findings(report) if f.get("id") == "GR022"]
    assert not shared, "the clones share a token or a system id: %s" % shared
    ids = {in_host(clone, "cat", SYSTEM_ID).stdout.strip() for clone in CLONES}
    assert len(ids) == len(CLONES) and all(ids), "the clones have no system id of their own: %s" % ids
    assert not find_leaks(output, list(lab.issued.items()) + lab.secrets())


def _findings(value):
    """Every finding (a dict with an id and a severity) anywhere in a report."""
    if isinstance(value, dict):
        if "id" in value and "severity" in value:
            yield value
        for item in value.values():
            yield from _findings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _findings(item)


def test_a_second_boot_registers_nothing(lab):
    clone = CLONES[0]
    runners = fake_state(lab)["runners"]
    config = in_host(clone, "cat", CONFIG).stdout
    lab.client.containers.get(clone).restart()
    wait_for_boot(clone)
    assert fake_state(lab)["runners"] == runners
    assert in_host(clone, "cat", CONFIG).stdout == config
    wait_active(clone, "gitlab-runner")


def test_a_wrong_access_token_fails_clearly_and_keeps_the_credentials(lab, golden, fake_gitlab):
    wrong = "glpat-FAKE-imageprep-wrong-" + secrets.token_hex(16)
    before = fake_state(lab)["runners"]
    boot_clone(lab, golden, BAD_CLONE, _credentials(fake_gitlab, wrong))
    assert _unit(BAD_CLONE, FIRSTBOOT, "Result") == "exit-code"
    journal = in_host(BAD_CLONE, "journalctl", "--no-pager", "-o", "cat", "-u", FIRSTBOOT).stdout
    (lab.workdir / ("%s.firstboot.journal" % BAD_CLONE)).write_text(journal)
    assert "401 Unauthorized" in journal and "GITLAB_RUNNER_CREATE_TOKEN is not a valid access token" in journal, journal
    assert not find_leaks(journal, [("wrong token", wrong)]), journal
    assert in_host(BAD_CLONE, "stat", "-c", "%a %U", CREDENTIALS).stdout.split() == ["600", "root"]
    assert wrong in in_host(BAD_CLONE, "cat", CREDENTIALS).stdout
    assert _unit(BAD_CLONE, FIRSTBOOT, "UnitFileState") == "enabled", "the next boot would not try again"
    assert _unit(BAD_CLONE, "gitlab-runner", "UnitFileState") == "disabled"
    assert _unit(BAD_CLONE, "gitlab-runner", "ActiveState") == "inactive"
    assert "token" not in {k.casefold() for r in tomllib.loads(in_host(BAD_CLONE, "cat", CONFIG).stdout)["runners"] for k in r}
    assert fake_state(lab)["runners"] == before, "a runner was registered with a wrong token"
