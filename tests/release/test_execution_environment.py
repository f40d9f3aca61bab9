"""The execution environment's build context, as ``ansible-builder create`` writes it.

Builds the collection tarball with ``ansible-galaxy collection build`` into a
temporary directory laid out like the checkout (execution-environment.yml, the
files it names, and the tarball where its ``additional_build_files`` glob looks),
runs ``ansible-builder create`` there with a temporary context directory, and
checks the generated context:

- the Containerfile installs the ansible-core that requirements.txt pins and the
  pinned ansible-runner of execution-environment.yml;
- the galaxy requirements install this collection from the tarball of galaxy.yml's
  version, the tarball is in the context, and a COPY in the galaxy stage puts it
  where that requirement looks for it;
- bindep names GnuPG (``gpg``, which the openpgp filters run on the controller);
- every runtime dependency the repository declares (execution-environment.yml and
  bindep.txt, read here, not listed here) is in the context;
- the tarball carries meta/execution-environment.yml and the files it names, and
  ``ansible-builder introspect`` finds the collection's system dependencies in it.

``ansible-builder build`` is not run: it needs a container runtime and pulls the
base image from a container registry, and no registry is reachable from the test
machines. Whether the image builds is therefore not proven here, only that the
build context says the right things.

Nothing is written into the checkout: everything happens under pytest's tmp paths.
"""

import fnmatch
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

CHECKOUT = Path(__file__).resolve().parents[2]
EE_FILE = "execution-environment.yml"
COLLECTION = ("hardened", "gitlab_runner")
TARBALL = "%s-%s-{version}.tar.gz" % COLLECTION
GNUPG = re.compile(r"^(gnupg2?|gpg)\b")


def tool(name):
    """The executable ``name`` next to this Python (the venv), else on PATH."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    assert found, "%s is not installed (requirements-test.txt pins it)" % name
    return found


def run(args, cwd):
    proc = subprocess.run(args, cwd=str(cwd), capture_output=True, text=True, check=False,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    assert proc.returncode == 0, "%s failed (rc %d):\n%s%s" % (" ".join(args), proc.returncode, proc.stdout,
                                                               proc.stderr)
    return proc.stdout


def lines_of(text):
    """Requirement lines of a pip or bindep file: no blank lines, no comments, spaces collapsed."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            out.append(" ".join(line.split()))
    return out


def file_reference(value):
    """A dependency given as a file name (not inline), or None."""
    return value if isinstance(value, str) and "\n" not in value else None


def galaxy_collections(value, base):
    """The collections of a galaxy requirement given inline or as a file relative to ``base``."""
    if file_reference(value):
        value = yaml.safe_load((base / value).read_text())
    elif isinstance(value, str):
        value = yaml.safe_load(value)
    return list((value or {}).get("collections") or [])


def galaxy_version():
    return str(yaml.safe_load((CHECKOUT / "galaxy.yml").read_text())["version"])


def pinned_core():
    """ansible-core's pin in requirements.txt."""
    for line in lines_of((CHECKOUT / "requirements.txt").read_text()):
        if re.match(r"^ansible-core\s*==", line):
            return line.replace(" ", "")
    raise AssertionError("requirements.txt does not pin ansible-core")


def declared():
    """What the repository declares for the execution environment, read from its files."""
    ee = yaml.safe_load((CHECKOUT / EE_FILE).read_text())
    deps = ee.get("dependencies") or {}
    out = {"ee": ee, "python": [], "system": [], "galaxy": galaxy_collections(deps.get("galaxy"), CHECKOUT)}
    for kind in ("python", "system"):
        value = deps.get(kind)
        if file_reference(value):
            out[kind] = lines_of((CHECKOUT / value).read_text())
        elif isinstance(value, list):
            out[kind] = [" ".join(str(v).split()) for v in value]
        elif isinstance(value, str):
            out[kind] = lines_of(value)
    # bindep.txt is the collection's own list, whatever the EE file points at.
    out["system"] += [line for line in lines_of((CHECKOUT / "bindep.txt").read_text()) if line not in out["system"]]
    out["core"] = ((deps.get("ansible_core") or {}).get("package_pip") or "").replace(" ", "")
    out["runner"] = ((deps.get("ansible_runner") or {}).get("package_pip") or "").replace(" ", "")
    return out


def tarball_entry(ee, version):
    """The additional_build_files entry whose glob picks up the tarball of ``version``."""
    name = TARBALL.format(version=version)
    for entry in ee.get("additional_build_files") or []:
        if fnmatch.fnmatch(name, posixpath.basename(entry["src"])) and not posixpath.isabs(entry["src"]):
            return entry
    raise AssertionError("no additional_build_files entry of %s picks up %s" % (EE_FILE, name))


def galaxy_stage(containerfile):
    """(steps of the galaxy stage up to its collection install, the install step) as lists of strings."""
    steps = [line.strip() for line in containerfile.splitlines()]
    try:
        start = next(i for i, s in enumerate(steps) if re.match(r"^FROM\s+\S+\s+AS\s+galaxy$", s, re.I))
    except StopIteration:
        return [], None
    for step in steps[start + 1:]:
        if step.upper().startswith("FROM "):
            break
        if "ansible-galaxy collection install" in step:
            return steps[start + 1:steps.index(step, start)], step
    return steps[start + 1:], None


def image_paths(stage, context_path):
    """Where COPY/ADD steps of ``stage`` put the context file ``context_path`` (e.g. _build/x/y.tar.gz)."""
    found = []
    for step in stage:
        parts = step.split()
        if len(parts) != 3 or parts[0].upper() not in ("COPY", "ADD") or parts[1].startswith("--"):
            continue
        src, dst = parts[1].rstrip("/"), parts[2]
        if context_path == src:
            found.append(posixpath.join(dst, posixpath.basename(src)) if dst.endswith("/") else dst)
        elif context_path.startswith(src + "/"):
            found.append(posixpath.join(dst, context_path[len(src) + 1:]))
    return [posixpath.normpath(p) for p in found]


def workdir_at_install(stage):
    workdir = "/"
    for step in stage:
        if step.upper().startswith("WORKDIR "):
            workdir = posixpath.join(workdir, step.split(None, 1)[1])
    return workdir


def context_problems(context, want, tarball_bytes):
    """Everything wrong with the build context in ``context`` ([] when it is right)."""
    problems = []
    containerfile_path = context / "Containerfile"
    if not containerfile_path.is_file():
        return ["no Containerfile in the context"]
    containerfile = containerfile_path.read_text()
    build = context / "_build"

    # ansible-core and ansible-runner, pinned.
    if want["core"] != want["pinned_core"]:
        problems.append("%s installs %r, requirements.txt pins %r" % (EE_FILE, want["core"], want["pinned_core"]))
    if not re.match(r"^ansible-runner==\S+$", want["runner"]):
        problems.append("%s does not pin ansible-runner exactly (%r)" % (EE_FILE, want["runner"]))
    for pin in (want["pinned_core"], want["runner"]):
        if not re.search(r"(^|[\s\"'])%s([\s\"']|$)" % re.escape(pin), containerfile, re.M):
            problems.append("the Containerfile does not install %s" % pin)

    # The collection, from its tarball, of galaxy.yml's version.
    name = TARBALL.format(version=want["version"])
    requirements = build / "requirements.yml"
    collections = galaxy_collections("requirements.yml", build) if requirements.is_file() else []
    if not requirements.is_file():
        problems.append("no galaxy requirements (_build/requirements.yml) in the context")
    ours = [c for c in collections if isinstance(c, dict) and posixpath.basename(str(c.get("name", ""))) == name]
    if not ours:
        problems.append("the galaxy requirements do not install %s (galaxy.yml's version %s): %s"
                        % (name, want["version"], [c.get("name") if isinstance(c, dict) else c for c in collections]))
    elif ours[0].get("type") != "file":
        problems.append("the galaxy requirement for %s is not of type file" % name)
    for other in collections:
        other_name = str(other.get("name", "") if isinstance(other, dict) else other)
        if re.search(r"%s-%s-[^/]*\.tar\.gz$" % COLLECTION, other_name) and posixpath.basename(other_name) != name:
            problems.append("the galaxy requirements install another version of the collection: %s" % other_name)
    context_tarball = build / want["tarball_dest"] / name
    if not context_tarball.is_file():
        problems.append("the tarball %s is not in the context (_build/%s)" % (name, want["tarball_dest"]))
    else:
        if context_tarball.read_bytes() != tarball_bytes:
            problems.append("the tarball in the context is not the one just built")
        with tarfile.open(context_tarball) as archive:
            info = json.load(archive.extractfile("MANIFEST.json"))["collection_info"]
        if (info["namespace"], info["name"], info["version"]) != COLLECTION + (want["version"],):
            problems.append("the tarball in the context holds %s.%s %s"
                            % (info["namespace"], info["name"], info["version"]))
    stage, install = galaxy_stage(containerfile)
    if install is None:
        problems.append("the Containerfile has no galaxy stage that installs collections")
    elif ours:
        wanted = posixpath.normpath(posixpath.join(workdir_at_install(stage), str(ours[0]["name"])))
        where = image_paths(stage, posixpath.join("_build", want["tarball_dest"], name))
        if wanted not in where:
            problems.append("no COPY in the galaxy stage puts the tarball at %s, where the galaxy requirement "
                            "looks for it (it lands at: %s)" % (wanted, where or "nowhere"))

    # System and Python dependencies.
    bindep = lines_of((build / "bindep.txt").read_text()) if (build / "bindep.txt").is_file() else []
    if not any(GNUPG.match(line) for line in bindep):
        problems.append("bindep in the context names no gpg/gnupg package: %s" % bindep)
    for line in want["system"]:
        if line not in bindep:
            problems.append("system dependency %r is not in the context's bindep.txt" % line)
    pip = lines_of((build / "requirements.txt").read_text()) if (build / "requirements.txt").is_file() else []
    for line in want["python"]:
        if line not in pip:
            problems.append("Python dependency %r is not in the context's requirements.txt" % line)
    for collection in want["galaxy"]:
        if collection not in collections:
            problems.append("galaxy requirement %r is not in the context's requirements.yml" % (collection,))
    return problems


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Build the tarball and the EE context in a temporary copy of the EE's inputs."""
    want = declared()
    want["version"] = galaxy_version()
    want["pinned_core"] = pinned_core()
    ee = want["ee"]
    entry = tarball_entry(ee, want["version"])
    want["tarball_dest"] = entry["dest"].strip("/")

    work = tmp_path_factory.mktemp("ee")
    tree = work / "tree"
    (tree / posixpath.dirname(entry["src"])).mkdir(parents=True)
    shutil.copy2(CHECKOUT / EE_FILE, tree / EE_FILE)
    deps = ee.get("dependencies") or {}
    for kind in ("python", "system", "galaxy"):
        ref = file_reference(deps.get(kind))
        if ref:
            (tree / ref).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(CHECKOUT / ref, tree / ref)
    for other in ee.get("additional_build_files") or []:
        if other is not entry and not posixpath.isabs(other["src"]):
            for path in CHECKOUT.glob(other["src"]):
                (tree / path.relative_to(CHECKOUT)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, tree / path.relative_to(CHECKOUT))

    run([tool("ansible-galaxy"), "collection", "build", "--output-path", str(tree / posixpath.dirname(entry["src"])),
         str(CHECKOUT)], cwd=work)
    tarball = tree / posixpath.dirname(entry["src"]) / TARBALL.format(version=want["version"])
    assert tarball.is_file(), "ansible-galaxy collection build made no %s" % tarball.name

    context = work / "context"
    run([tool("ansible-builder"), "create", "--file", str(tree / EE_FILE), "--context", str(context),
         "--output-filename", "Containerfile"], cwd=work)
    return {"want": want, "context": context, "tarball": tarball, "work": work}


def test_build_context_is_right(built):
    problems = context_problems(built["context"], built["want"], built["tarball"].read_bytes())
    assert not problems, "the execution environment's build context is wrong:\n" + "\n".join(problems)


@pytest.mark.parametrize("breakage", [
    "remove the tarball", "another version in the requirements", "no gnupg", "other ansible-core",
    "no copy into the galaxy stage", "a dependency missing",
])
def test_the_check_finds_a_broken_context(built, tmp_path, breakage):
    """The checker itself: each kind of breakage of a good context is reported."""
    context = tmp_path / "context"
    shutil.copytree(built["context"], context, symlinks=True)
    want = dict(built["want"])
    build = context / "_build"
    name = TARBALL.format(version=want["version"])
    if breakage == "remove the tarball":
        (build / want["tarball_dest"] / name).unlink()
    elif breakage == "another version in the requirements":
        text = (build / "requirements.yml").read_text()
        (build / "requirements.yml").write_text(text.replace(name, TARBALL.format(version="0.0.0-old")))
    elif breakage == "no gnupg":
        kept = [line for line in (build / "bindep.txt").read_text().splitlines() if not GNUPG.match(line.strip())]
        (build / "bindep.txt").write_text("\n".join(kept) + "\n")
    elif breakage == "other ansible-core":
        text = (context / "Containerfile").read_text()
        (context / "Containerfile").write_text(text.replace(want["pinned_core"], "ansible-core==2.0.0"))
    elif breakage == "no copy into the galaxy stage":
        text = (context / "Containerfile").read_text()
        kept = [line for line in text.splitlines()
                if not (line.startswith("COPY _build/%s" % want["tarball_dest"]) or line.strip() == "COPY _build /build")]
        (context / "Containerfile").write_text("\n".join(kept) + "\n")
    elif breakage == "a dependency missing":
        want["system"] = want["system"] + ["hgr-not-a-package [platform:rpm]"]
    assert context_problems(context, want, built["tarball"].read_bytes()), breakage


def test_the_collection_declares_its_own_ee_dependencies(built):
    """ansible-builder introspects meta/execution-environment.yml of every collection in an EE."""
    with tarfile.open(built["tarball"]) as archive:
        names = set(archive.getnames())
        meta = yaml.safe_load(archive.extractfile("meta/execution-environment.yml").read())
        deps = meta.get("dependencies") or {}
        assert meta.get("version") == 1, "meta/execution-environment.yml must be version 1"
        for kind in ("python", "system"):
            ref = deps.get(kind)
            assert ref and ref in names, "meta/execution-environment.yml %s: %r is not in the tarball" % (kind, ref)
        assert posixpath.basename(deps["python"]) != "requirements.txt", (
            "the collection's Python dependencies must not be the developers' requirements.txt")
        meta_pip = lines_of(archive.extractfile(deps["python"]).read().decode())
        meta_bindep = lines_of(archive.extractfile(deps["system"]).read().decode())
        assert not [line for line in meta_pip if re.match(r"^ansible(-core)?\b", line)], meta_pip
        assert meta_bindep == lines_of((CHECKOUT / "bindep.txt").read_text())
        collections = built["work"] / "collections"
        target = collections.joinpath("ansible_collections", *COLLECTION)
        target.mkdir(parents=True)
        try:
            archive.extractall(target, filter="data")
        except TypeError:  # Python without extraction filters
            archive.extractall(target)
    out = run([tool("ansible-builder"), "introspect", str(collections)], cwd=built["work"])
    data = yaml.safe_load(out[out.index("---"):])
    origin = "# from collection %s.%s" % COLLECTION
    for kind, wanted in (("python", meta_pip), ("system", meta_bindep)):
        found = [" ".join(line.split(origin)[0].split()) for line in data.get(kind) or [] if origin in line]
        assert sorted(found) == sorted(wanted), "introspect finds %s %s, the collection declares %s" % (
            kind, found, wanted)
    assert any(GNUPG.match(line) for line in meta_bindep), "the collection's bindep names no gpg/gnupg"
