"""Pinned SSH host keys for the ssh, virtualbox and parallels executors.

Each ``ssh_known_hosts`` line is checked on the controller the way GitLab
Runner's known_hosts reader (golang.org/x/crypto/ssh/knownhosts) will read it,
and stricter: the key type the line states must be the one inside the key,
which that reader never compares. A single line it cannot parse makes it
refuse the whole file, so every job of the runner would fail.
"""

import base64
import os
import shutil
import struct
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.hardened.gitlab_runner.plugins.filter.runner_config import runner_policy_gate
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.policy import CATALOG, evaluate_document
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config import (
    DEFAULT_KNOWN_HOSTS_DIR,
    ConfigError,
    build_document,
    known_hosts_files,
    known_hosts_path,
    known_hosts_problem,
)

from ansible_collections.hardened.gitlab_runner.tests.unit.plugins.filter.test_policy_gate import DEFAULTS, SETTINGS, TOKEN


def _string(data):
    return struct.pack(">I", len(data)) + data


def blob(*fields):
    return base64.b64encode(b"".join(_string(f) for f in fields)).decode("ascii")


def _mpint(number):
    data = number.to_bytes((number.bit_length() + 8) // 8, "big")
    return data


def _point(curve, scalar):
    """The public point of a fixed private scalar on a NIST curve, uncompressed (as SSH carries it)."""
    key = ec.derive_private_key(scalar, curve).public_key()
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


ED25519 = blob(b"ssh-ed25519", bytes(range(32)))
RSA = blob(b"ssh-rsa", _mpint(65537), _mpint((1 << 2047) + 12345))
ECDSA = blob(b"ecdsa-sha2-nistp256", b"nistp256", _point(ec.SECP256R1(), 12345))
ECDSA_384 = blob(b"ecdsa-sha2-nistp384", b"nistp384", _point(ec.SECP384R1(), 54321))
SK_ED25519 = blob(b"sk-ssh-ed25519@openssh.com", bytes(32), b"ssh:")
SK_ECDSA = blob(b"sk-ecdsa-sha2-nistp256@openssh.com", b"nistp256", _point(ec.SECP256R1(), 777), b"ssh:")
DSA = blob(b"ssh-dss", b"\x01", b"\x02", b"\x03", b"\x04")
OFF_CURVE = blob(b"ecdsa-sha2-nistp256", b"nistp256", b"\x04" + bytes(range(64)))
EVEN_EXPONENT = blob(b"ssh-rsa", _mpint(65536), _mpint((1 << 2047) + 12345))
HASHED = "|1|%s|%s" % (base64.b64encode(bytes(20)).decode(), base64.b64encode(bytes(range(20))).decode())

GOOD = [
    ("plain_name", "vm ssh-ed25519 " + ED25519),
    ("bracketed_port_22", "[10.0.0.5]:22 ssh-ed25519 " + ED25519),
    ("several_patterns_and_comment", "[10.0.0.5]:2222,10.0.0.6,vm.ci.example.test ssh-rsa %s root@template" % RSA),
    ("wildcard_network", "10.211.55.* ecdsa-sha2-nistp256 " + ECDSA),
    ("question_mark", "ci-vm-? ecdsa-sha2-nistp384 " + ECDSA_384),
    ("negation_next_to_a_match", "*.ci.example.test,!evil.ci.example.test ssh-ed25519 " + ED25519),
    ("hashed_host", HASHED + " ssh-ed25519 " + ED25519),
    ("ipv6", "fe80::1 ssh-ed25519 " + ED25519),
    ("ipv6_with_port", "[fe80::1]:2222 ssh-ed25519 " + ED25519),
    ("localhost_forwarded_port", "[localhost]:2222 ssh-ed25519 " + ED25519),
    ("cert_authority", "@cert-authority *.ci.example.test ssh-ed25519 " + ED25519),
    ("revoked", "@revoked * ssh-rsa " + RSA),
    ("security_key_ed25519", "vm sk-ssh-ed25519@openssh.com " + SK_ED25519),
    ("security_key_ecdsa", "vm sk-ecdsa-sha2-nistp256@openssh.com " + SK_ECDSA),
    ("tabs", "vm\tssh-ed25519\t" + ED25519),
    ("surrounding_spaces", "  vm ssh-ed25519 %s  " % ED25519),
]

# (case, line, words the reason must contain)
BAD = [
    ("empty", "", "empty"),
    ("comment", "# vm ssh-ed25519 " + ED25519, "comment"),
    ("no_key", "vm ssh-ed25519", "host pattern, a key type and a key"),
    ("unknown_type", "vm ssh-foo " + ED25519, "unknown key type ssh-foo"),
    ("dsa", "vm ssh-dss " + DSA, "DSA"),
    ("certificate_type", "vm ssh-ed25519-cert-v01@openssh.com " + ED25519, "unknown key type"),
    ("not_base64", "vm ssh-ed25519 AAAA$$$", "base64"),
    ("base64_bad_padding", "vm ssh-ed25519 " + ED25519.rstrip("=") + "A", "base64"),
    ("type_mismatch", "vm ssh-ed25519 " + RSA, "holds a ssh-rsa key"),
    ("off_curve", "vm ecdsa-sha2-nistp256 " + OFF_CURVE, "not a valid ecdsa-sha2-nistp256 public key"),
    ("even_rsa_exponent", "vm ssh-rsa " + EVEN_EXPONENT, "not a valid ssh-rsa public key"),
    ("curve_mismatch", "vm ecdsa-sha2-nistp256 " + blob(b"ecdsa-sha2-nistp256", b"nistp384", b"\x04"), "curve"),
    ("short_ed25519", "vm ssh-ed25519 " + blob(b"ssh-ed25519", bytes(31)), "32 bytes"),
    ("trailing_bytes", "vm ssh-ed25519 " + blob(b"ssh-ed25519", bytes(32), b"x"), "not a ssh-ed25519 public key"),
    ("truncated", "vm ssh-ed25519 " + base64.b64encode(_string(b"ssh-ed25519") + b"\x00\x00\x00\x20abc").decode(),
     "not a ssh-ed25519 public key"),
    ("newline", "vm ssh-ed25519 %s\nevil ssh-ed25519 %s" % (ED25519, ED25519), "one line"),
    ("nul", "vm ssh-ed25519 %s\x00" % ED25519, "one line"),
    ("unbracketed_port", "vm:2222 ssh-ed25519 " + ED25519, "[host]:port"),
    ("bracket_without_port", "[vm] ssh-ed25519 " + ED25519, "[host]:port"),
    ("port_out_of_range", "[vm]:99999 ssh-ed25519 " + ED25519, "port"),
    ("only_negated", "!vm ssh-ed25519 " + ED25519, "not negated"),
    ("empty_pattern", ", ssh-ed25519 " + ED25519, "host pattern"),
    ("odd_characters", "vm;rm ssh-ed25519 " + ED25519, "host pattern"),
    ("bad_hash", "|1|nope|x ssh-ed25519 " + ED25519, "hashed host"),
    ("hash_type_2", "|2|%s ssh-ed25519 %s" % (HASHED[3:], ED25519), "hashed host"),
    ("unknown_marker", "@trusted vm ssh-ed25519 " + ED25519, "marker"),
    ("not_a_string", 42, "text"),
]


@pytest.mark.parametrize("case,line", GOOD, ids=[c[0] for c in GOOD])
def test_good_lines_are_accepted(case, line):
    assert known_hosts_problem(line) is None, case


@pytest.mark.parametrize("case,line,words", BAD, ids=[c[0] for c in BAD])
def test_bad_lines_are_refused_with_a_reason(case, line, words):
    reason = known_hosts_problem(line)
    assert reason is not None, case
    assert words in reason, reason


_KEYGEN_TYPES = [("ed25519", None), ("rsa", "3072"), ("ecdsa", "256"), ("ecdsa", "384"), ("ecdsa", "521")]


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed")
@pytest.mark.parametrize("kind,bits", _KEYGEN_TYPES, ids=["%s-%s" % k for k in _KEYGEN_TYPES])
def test_keys_made_by_ssh_keygen_are_accepted(tmp_path, kind, bits):
    key = str(tmp_path / "key")
    command = ["ssh-keygen", "-q", "-t", kind] + (["-b", bits] if bits else []) + [
        "-N", "", "-C", "host@template", "-f", key]
    subprocess.run(command, check=True)
    with open(key + ".pub", encoding="ascii") as handle:
        public = handle.read().strip()
    assert known_hosts_problem("[192.0.2.7]:22 " + public) is None
    keytype, data = public.split()[:2]
    other = "ssh-ed25519" if keytype != "ssh-ed25519" else "ssh-rsa"
    assert "holds a %s key" % keytype in known_hosts_problem("vm %s %s" % (other, data))


def runner(name="vm1", executor="ssh", pins=("vm ssh-ed25519 " + ED25519,), **extra):
    base = {"name": name, "url": "https://gitlab.example.test", "token": TOKEN + name, "executor": executor}
    if pins is not None:
        base["ssh_known_hosts"] = list(pins)
    if executor == "ssh":
        base.setdefault("ssh", {"host": "vm", "user": "ci"})
    elif executor in ("virtualbox", "parallels"):
        base.setdefault(executor, {"base_name": "ci-template"})
        base.setdefault("ssh", {"user": "ci"})
    base.update(extra)
    return base


def build(runners, defaults=None, directory=None):
    return build_document(SETTINGS, runners, defaults or DEFAULTS, None, known_hosts_dir=directory)


def test_a_bad_line_names_the_runner_and_the_line_but_no_key_material():
    with pytest.raises(ConfigError) as error:
        build([runner(pins=["vm ssh-ed25519 " + ED25519, "vm ssh-ed25519 " + RSA])])
    message = str(error.value)
    assert message.startswith('runner "vm1": ssh_known_hosts[1] ')
    assert "holds a ssh-rsa key" in message
    assert RSA[:12] not in message and ED25519[:12] not in message and TOKEN not in message


@pytest.mark.parametrize("pins,words", [
    ("vm ssh-ed25519 " + ED25519, "a list of known_hosts lines"),
    ([["vm"]], "text"),
])
def test_ssh_known_hosts_must_be_a_list_of_lines(pins, words):
    with pytest.raises(ConfigError) as error:
        build([runner(pins=None, ssh_known_hosts=pins)])
    assert words in str(error.value)


@pytest.mark.parametrize("executor", ["ssh", "virtualbox", "parallels"])
def test_the_managed_file_is_set_and_strict_checking_stays_on(executor):
    doc = build([runner(executor=executor)])
    ssh = doc["runners"][0]["ssh"]
    assert ssh["known_hosts_file"] == known_hosts_path(DEFAULT_KNOWN_HOSTS_DIR, "vm1")
    assert ssh["disable_strict_host_key_checking"] is False
    assert evaluate_document(doc) == []


def test_the_managed_directory_follows_the_config_directory():
    doc = build([runner()], directory="/srv/runner/known_hosts.d")
    assert doc["runners"][0]["ssh"]["known_hosts_file"].startswith("/srv/runner/known_hosts.d/")


@pytest.mark.parametrize("given", [
    {"runner": {"ssh": {"host": "vm", "known_hosts_file": "/root/.ssh/known_hosts"}}},
    {"runner": {"ssh": {"host": "vm", "Known_Hosts_File": "/etc/ssh/ssh_known_hosts"}}},
    {"defaults": {"ssh": {"known_hosts_file": "/home/ci/.ssh/known_hosts"}}},
])
def test_a_known_hosts_file_of_the_users_own_is_refused(given):
    defaults = dict(DEFAULTS, runner=dict(DEFAULTS["runner"], **given.get("defaults", {})))
    with pytest.raises(ConfigError) as error:
        build([runner(**given.get("runner", {}))], defaults=defaults)
    message = str(error.value)
    assert 'runner "vm1"' in message and "known_hosts_file" in message and "ssh_known_hosts" in message


def test_the_managed_path_itself_may_be_given():
    path = known_hosts_path(DEFAULT_KNOWN_HOSTS_DIR, "vm1")
    doc = build([runner(ssh={"host": "vm", "known_hosts_file": path})])
    assert doc["runners"][0]["ssh"]["known_hosts_file"] == path


def test_pins_on_an_executor_that_does_not_use_ssh_are_refused():
    with pytest.raises(ConfigError) as error:
        build([runner(executor="docker")])
    assert "ssh_known_hosts" in str(error.value) and "ssh, virtualbox and parallels" in str(error.value)


@pytest.mark.parametrize("executor", ["ssh", "virtualbox", "parallels"])
def test_a_runner_without_pins_is_refused_and_nothing_unlocks_it(executor):
    given = runner(executor=executor, pins=None, trusted=True)
    result = runner_policy_gate([given], SETTINGS, DEFAULTS, None)
    assert result["errors"] == []
    refusals = [r for r in result["refusals"] if " - GR046 " in r]
    assert refusals, result["refusals"]
    assert 'runner "vm1"' in refusals[0] and "No acknowledgement unlocks it" in refusals[0]
    assert "ssh_known_hosts" in refusals[0]
    assert CATALOG["GR046"].guidance.endswith("Usage of SSH executor")
    assert CATALOG["GR046"].severity == "high" and CATALOG["GR046"].ack is None
    assert CATALOG["GR046"].enforcement == "refuse"


@pytest.mark.parametrize("executor", ["ssh", "virtualbox", "parallels"])
def test_a_pinned_runner_passes_the_gate_clean(executor):
    result = runner_policy_gate([runner(executor=executor)], SETTINGS, DEFAULTS, None)
    assert result["errors"] == [] and result["refusals"] == [] and result["warnings"] == []


def test_without_pins_the_managed_path_alone_does_not_count():
    """The file is written from the pins: naming the managed path without any pins leaves nothing to check against."""
    path = known_hosts_path(DEFAULT_KNOWN_HOSTS_DIR, "vm1")
    result = runner_policy_gate([runner(pins=None, ssh={"host": "vm", "known_hosts_file": path})],
                                SETTINGS, DEFAULTS, None)
    assert any(" - GR046 " in r for r in result["refusals"])
    result = runner_policy_gate([runner(pins=[])], SETTINGS, DEFAULTS, None)
    assert any(" - GR046 " in r for r in result["refusals"])


@pytest.mark.parametrize("ssh,expected", [
    ({"host": "vm"}, ["GR046"]),
    ({"host": "vm", "disable_strict_host_key_checking": False}, ["GR046"]),
    ({"host": "vm", "known_hosts_file": ""}, ["GR046"]),
    ({"host": "vm", "disable_strict_host_key_checking": True}, ["GR013"]),
    # GitLab Runner reads a key in any case; the odd spelling is refused on its own (GR015).
    ({"host": "vm", "KNOWN_HOSTS_FILE": "/etc/gitlab-runner/known_hosts.d/vm"}, ["GR015"]),
    ({"host": "vm", "known_hosts_file": "/etc/gitlab-runner/known_hosts.d/vm"}, []),
])
def test_the_audit_judges_a_hand_written_ssh_section(ssh, expected):
    table = {"name": "hand", "url": "https://gitlab.example.test", "token": TOKEN, "executor": "ssh", "ssh": ssh,
             "feature_flags": {"FF_ENABLE_JOB_CLEANUP": True}}
    assert [f["id"] for f in evaluate_document({"runners": [table]})] == expected


def test_without_an_ssh_section_the_audit_reports_unpinned_keys():
    for executor in ("virtualbox", "parallels"):
        table = {"name": "hand", "executor": executor, executor: {"base_name": "t"},
                 "feature_flags": {"FF_ENABLE_JOB_CLEANUP": True}}
        assert [f["id"] for f in evaluate_document({"runners": [table]})] == ["GR046"]


def test_file_names_are_safe_and_never_shared():
    names = ["vm1", "a/b", "a_b", "../../etc/passwd", ".hidden", 'x"\n[[runners]]', "é", "a" * 300, ""]
    paths = [known_hosts_path("/etc/gitlab-runner/known_hosts.d", name) for name in names]
    assert len(set(paths)) == len(names)
    for path in paths:
        directory, base = os.path.split(path)
        assert directory == "/etc/gitlab-runner/known_hosts.d"
        assert base and not base.startswith(".") and len(base) <= 100
        assert all(c.isalnum() and c.isascii() or c in "-_" for c in base), base
    assert known_hosts_path("/d", "vm1") == known_hosts_path("/d/", "vm1")
    assert os.path.basename(known_hosts_path("/d", "vm1")).startswith("vm1-")


def test_the_files_hold_the_pins_of_present_ssh_type_runners_only():
    lines = ["  vm ssh-ed25519 %s  " % ED25519, "[localhost]:2222 ssh-rsa " + RSA]
    runners = [runner("a", pins=lines), runner("b", executor="parallels"), runner("c", executor="docker", pins=None),
               {"name": "gone", "state": "absent", "ssh_known_hosts": ["vm ssh-ed25519 " + ED25519]}]
    files = known_hosts_files(runners, "/etc/gitlab-runner/known_hosts.d")
    assert sorted(files) == sorted([known_hosts_path("/etc/gitlab-runner/known_hosts.d", "a"),
                                    known_hosts_path("/etc/gitlab-runner/known_hosts.d", "b")])
    text = files[known_hosts_path("/etc/gitlab-runner/known_hosts.d", "a")]
    assert text.startswith("#") and text.endswith("\n")
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert body == [line.strip() for line in lines]
    assert TOKEN not in text
