"""What users get: the built collection tarball ships what they need and nothing else.

Builds the collection with ``ansible-galaxy collection build`` into a temporary
directory (galaxy.yml's ``build_ignore`` decides what goes in) and checks the
tarball's file list:

- nothing for developing or testing the collection is in it: no tests, Molecule
  scenarios, benchmarks, scripts, Makefile, lint or CI configuration, developer
  requirement pins, and above all not the stand-in gitlab-runner package the
  tests install because GitLab's package servers are unreachable here;
- everything the collection's users run is in it: every tracked file under
  plugins/, roles/, playbooks/, meta/, docs/ and changelogs/, and the top-level
  files the README and the execution environment refer to.

tests/integration/test_built_collection.py installs the same tarball into an empty
collections path and runs site.yml and audit.yml from it against a test host.
"""

import fnmatch
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

CHECKOUT = Path(__file__).resolve().parents[2]

# Top-level entries a user-facing collection may contain.
ALLOWED_TOP = {
    "MANIFEST.json", "FILES.json", "README.md", "LICENSE", "bindep.txt", "requirements.yml",
    "execution-environment.yml", "meta", "plugins", "roles", "playbooks", "docs", "changelogs",
}
# Paths (fnmatch, on the path inside the tarball) that must never ship.
FORBIDDEN = [
    "tests", "tests/*", "molecule", "molecule/*", "benchmarks", "benchmarks/*", "scripts", "scripts/*",
    "Makefile", "ansible.cfg", ".*", "*/.*", "requirements.txt", "requirements-test.txt",
    "audit-reports*", "dist*", "*__pycache__*", "*.pyc", "*standin*", "*stand-in*", "*.tar.gz", "*.deb",
]
# Tracked files under these directories are what users run: all of them must ship.
SHIPPED_DIRS = ("plugins", "roles", "playbooks", "meta", "docs", "changelogs")


def problems(names, tracked):
    """Return what is wrong with a tarball holding ``names``, given the checkout's ``tracked`` files."""
    found = []
    for name in names:
        top = name.split("/", 1)[0]
        if top not in ALLOWED_TOP:
            found.append("unexpected top-level entry: %s" % name)
        for pattern in FORBIDDEN:
            if fnmatch.fnmatch(name, pattern):
                found.append("must not ship: %s (matches %r)" % (name, pattern))
                break
    present = set(names)
    for path in tracked:
        if path.split("/", 1)[0] in SHIPPED_DIRS and path not in present:
            found.append("missing from the tarball: %s" % path)
    return found


def tracked_files():
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=str(CHECKOUT),
                         capture_output=True, text=True, check=True).stdout
    return sorted(line for line in out.splitlines() if (CHECKOUT / line).is_file())


def ansible_galaxy():
    candidate = Path(sys.executable).parent / "ansible-galaxy"
    return str(candidate) if candidate.exists() else shutil.which("ansible-galaxy")


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    proc = subprocess.run([ansible_galaxy(), "collection", "build", "--output-path", str(out), str(CHECKOUT)],
                          capture_output=True, text=True, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    assert proc.returncode == 0, "ansible-galaxy collection build failed:\n%s%s" % (proc.stdout, proc.stderr)
    version = yaml.safe_load((CHECKOUT / "galaxy.yml").read_text())["version"]
    path = out / ("hardened-gitlab_runner-%s.tar.gz" % version)
    assert path.is_file(), "no %s after the build: %s" % (path.name, sorted(os.listdir(out)))
    return path


@pytest.fixture(scope="module")
def names(tarball):
    with tarfile.open(tarball) as archive:
        return sorted(member.name.rstrip("/") for member in archive.getmembers() if member.isfile())


def test_the_check_finds_what_must_not_ship():
    """The checker itself: each kind of leak and a missing file are reported."""
    tracked = ["plugins/modules/a.py", "roles/r/tasks/main.yml", "tests/unit/test_a.py"]
    good = ["MANIFEST.json", "FILES.json", "plugins/modules/a.py", "roles/r/tasks/main.yml"]
    assert problems(good, tracked) == []
    for leak in ("tests/unit/test_a.py", "Makefile", "molecule/default/molecule.yml", "scripts/x.py",
                 "benchmarks/b.py", "tests/fixtures/standin/gitlab-runner", ".ci/run", "requirements-test.txt",
                 "plugins/modules/__pycache__/a.cpython-311.pyc", "roles/r/files/gitlab-runner-standin.deb"):
        assert problems(good + [leak], tracked), leak
    assert problems(["MANIFEST.json", "plugins/modules/a.py"], tracked) == ["missing from the tarball: roles/r/tasks/main.yml"]


def test_tarball_ships_only_what_users_need(names):
    found = problems(names, tracked_files())
    assert not found, "the built collection is wrong:\n" + "\n".join(found)


def test_tarball_has_what_users_run(names):
    for needed in ("MANIFEST.json", "FILES.json", "README.md", "LICENSE", "meta/runtime.yml",
                   "meta/execution-environment.yml", "bindep.txt", "playbooks/site.yml", "playbooks/audit.yml",
                   "docs/architecture.md", "docs/fleet.md"):
        assert needed in names, "%s is not in the tarball" % needed
    for role in sorted(p.name for p in (CHECKOUT / "roles").iterdir() if p.is_dir()):
        for needed in ("tasks/main.yml", "meta/argument_specs.yml", "README.md"):
            assert "roles/%s/%s" % (role, needed) in names, "role %s lacks %s in the tarball" % (role, needed)


def test_manifest_declares_no_test_only_dependency(tarball):
    """Runtime dependencies live in galaxy.yml; test-only collections in tests/requirements.yml."""
    import json
    with tarfile.open(tarball) as archive:
        manifest = json.load(archive.extractfile("MANIFEST.json"))
    declared = manifest["collection_info"]["dependencies"] or {}
    test_only = {c["name"] for c in yaml.safe_load((CHECKOUT / "tests/requirements.yml").read_text())["collections"]}
    assert not set(declared) & test_only, "test-only collections declared as runtime dependencies: %s" % (
        sorted(set(declared) & test_only))
    runtime = yaml.safe_load((CHECKOUT / "requirements.yml").read_text())["collections"] or []
    assert sorted(c["name"] if isinstance(c, dict) else c for c in runtime) == sorted(declared), (
        "requirements.yml and galaxy.yml's dependencies disagree")


def installed_collections():
    """Names (namespace.name) of every collection this Python's ansible package and the checkout provide."""
    import ansible_collections
    names = set()
    for root in list(ansible_collections.__path__) + [str(CHECKOUT / ".collections/ansible_collections")]:
        base = Path(root)
        if base.is_dir():
            names.update("%s.%s" % (ns.name, coll.name) for ns in base.iterdir() if ns.is_dir()
                         for coll in ns.iterdir() if coll.is_dir() and not coll.name.startswith("_"))
    return names


def undeclared_uses(text, allowed, known):
    """Lines of ``text`` naming a plugin of a known collection that is not in ``allowed``."""
    import re
    hits = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        for match in re.finditer(r"(?<![\w.])([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\.[a-z_][a-z0-9_]*", line):
            if match.group(1) in known and match.group(1) not in allowed:
                hits.append((number, line.strip()))
    return hits


def test_runtime_code_uses_no_undeclared_collection():
    """Every collection the roles, playbooks and plugins name is ansible.builtin, this one, or declared."""
    declared = set(yaml.safe_load((CHECKOUT / "galaxy.yml").read_text())["dependencies"] or {})
    allowed = {"ansible.builtin", "ansible.legacy", "hardened.gitlab_runner"} | declared
    known = installed_collections()
    assert {"community.docker", "ansible.posix"} <= known, "the check needs the ansible package's collections"
    # The check itself: a module of an undeclared collection is found.
    assert undeclared_uses("- ansible.posix.authorized_key:\n    user: x", allowed, known) == [
        (1, "- ansible.posix.authorized_key:")]
    offenders = []
    for top in ("roles", "playbooks"):
        for path in sorted((CHECKOUT / top).rglob("*")):
            if path.suffix in (".yml", ".yaml", ".j2") and path.is_file():
                offenders += ["%s:%d: %s" % (path.relative_to(CHECKOUT), number, line)
                              for number, line in undeclared_uses(path.read_text(), allowed, known)]
    # Plugins reach other collections only through imports (their docs may mention some).
    import re
    for path in sorted((CHECKOUT / "plugins").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = re.match(r"\s*(?:from|import)\s+ansible_collections\.(\w+)\.(\w+)", line)
            if match and "%s.%s" % match.groups() not in allowed:
                offenders.append("%s:%d: %s" % (path.relative_to(CHECKOUT), number, line.strip()))
    assert not offenders, "undeclared collections used at run time:\n" + "\n".join(offenders)
