"""What users read: every plugin and role has documentation that ansible-doc can show.

- roles/*/README.md are generated from meta/argument_specs.yml by
  scripts/role_docs.py and must not drift from it (and the drift check must be
  able to fail);
- ansible-doc shows every filter the filter plugins provide (found by asking
  each plugin's FilterModule, not from a list kept here), every module and
  every role, and the JSON of every filter and module has documentation and
  examples.

The collection is found through ANSIBLE_COLLECTIONS_PATH (the Makefile exports
it; ``make link`` makes the checkout resolvable there as hardened.gitlab_runner).
"""

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CHECKOUT = Path(__file__).resolve().parents[2]
ROLE_DOCS = CHECKOUT / "scripts" / "role_docs.py"
COLLECTIONS_PATH = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")
PACKAGE = "ansible_collections.hardened.gitlab_runner"
FQCN = "hardened.gitlab_runner"


def _collections_dirs():
    return [entry for entry in COLLECTIONS_PATH.split(os.pathsep) if entry]


for _entry in reversed(_collections_dirs()):
    if _entry not in sys.path:
        sys.path.insert(0, _entry)


def _filter_names():
    """Every filter the plugins in plugins/filter/ provide, by their FilterModule."""
    if not COLLECTIONS_PATH:
        return []
    names = set()
    for path in sorted((CHECKOUT / "plugins" / "filter").glob("*.py")):
        if path.name == "__init__.py":
            continue
        module = importlib.import_module("%s.plugins.filter.%s" % (PACKAGE, path.stem))
        names.update(module.FilterModule().filters())
    return sorted(names)


MODULES = sorted(path.stem for path in (CHECKOUT / "plugins" / "modules").glob("*.py") if path.name != "__init__.py")
ROLES = sorted(path.name for path in (CHECKOUT / "roles").iterdir() if path.is_dir() and not path.name.startswith("."))
FILTERS = _filter_names()


def _run(args, cwd=CHECKOUT):
    return subprocess.run(args, cwd=str(cwd), capture_output=True, text=True, timeout=300, check=False)


def _role_docs(*args):
    return _run([sys.executable, str(ROLE_DOCS)] + [str(arg) for arg in args])


def _ansible_doc():
    """The ansible-doc next to the running Python (the virtualenv's), else the one on PATH."""
    local = Path(sys.executable).parent / "ansible-doc"
    if local.exists():
        return str(local)
    found = shutil.which("ansible-doc")
    assert found, "ansible-doc is not installed"
    return found


def _inside_checkout(path):
    resolved = Path(os.path.realpath(path))
    return resolved == CHECKOUT or CHECKOUT in resolved.parents


# --- role READMEs ------------------------------------------------------------


def test_role_readmes_match_their_argument_specs():
    result = _role_docs("--check")
    assert result.returncode == 0, (
        "roles/*/README.md drifted from meta/argument_specs.yml; run python scripts/role_docs.py\n"
        + result.stdout + result.stderr)


def test_every_role_has_a_generated_readme():
    for role in ROLES:
        text = (CHECKOUT / "roles" / role / "README.md").read_text(encoding="utf-8")
        first = text.splitlines()[0]
        assert "meta/argument_specs.yml" in first and "scripts/role_docs.py" in first, role
        assert "## Entry point `main`" in text, role


@pytest.fixture()
def roles_copy(tmp_path):
    """A copy of the checkout's roles directory whose READMEs are up to date."""
    roles = tmp_path / "roles"
    shutil.copytree(CHECKOUT / "roles", roles)
    result = _role_docs(roles)
    assert result.returncode == 0, result.stdout + result.stderr
    return roles


def test_check_fails_when_an_argument_spec_changes(roles_copy):
    assert _role_docs("--check", roles_copy).returncode == 0

    spec_path = roles_copy / "gitlab_runner" / "meta" / "argument_specs.yml"
    spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    options = spec["argument_specs"]["main"]["options"]
    first = next(iter(options))
    options[first]["description"] = "A description changed after the README was generated."
    options["gitlab_runner_added_for_the_test"] = {"type": "int", "default": 7, "description": "Added."}
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    readme = roles_copy / "gitlab_runner" / "README.md"
    before = readme.read_text(encoding="utf-8")

    result = _role_docs("--check", roles_copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "gitlab_runner/README.md" in result.stdout
    assert "+| `%s` |" % first in result.stdout
    assert "A description changed after the README was generated." in result.stdout
    assert "+| `gitlab_runner_added_for_the_test` | int | no | `7` |" in result.stdout
    assert "docker_engine/README.md" not in result.stdout
    assert readme.read_text(encoding="utf-8") == before, "--check must not write"

    assert _role_docs(roles_copy).returncode == 0
    assert "gitlab_runner_added_for_the_test" in readme.read_text(encoding="utf-8")
    assert _role_docs("--check", roles_copy).returncode == 0


def test_check_fails_when_a_readme_is_edited_or_missing(roles_copy):
    readme = roles_copy / "runner_firewall" / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8") + "\nEdited by hand.\n", encoding="utf-8")
    (roles_copy / "docker_engine" / "README.md").unlink()

    result = _role_docs("--check", roles_copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "-Edited by hand." in result.stdout
    assert "runner_firewall/README.md" in result.stdout and "docker_engine/README.md" in result.stdout


def test_generated_readme_is_deterministic(roles_copy):
    first = {path: path.read_text(encoding="utf-8") for path in roles_copy.glob("*/README.md")}
    assert _role_docs(roles_copy).returncode == 0
    assert {path: path.read_text(encoding="utf-8") for path in roles_copy.glob("*/README.md")} == first


# --- ansible-doc -------------------------------------------------------------


def test_collections_path_resolves_to_this_checkout():
    assert COLLECTIONS_PATH, "ANSIBLE_COLLECTIONS_PATH is not set (the Makefile exports it; run make link)"
    found = [Path(entry) / "ansible_collections" / "hardened" / "gitlab_runner" for entry in _collections_dirs()]
    found = [path for path in found if path.exists()]
    assert found, "hardened.gitlab_runner is not under ANSIBLE_COLLECTIONS_PATH=%s (run make link)" % COLLECTIONS_PATH
    assert Path(os.path.realpath(found[0])) == CHECKOUT, "%s is not this checkout" % found[0]


def test_plugins_and_roles_were_found():
    assert FILTERS and MODULES and ROLES


def _doc(plugin_type, name):
    """ansible-doc's text and JSON for one plugin; both must succeed."""
    fqcn = "%s.%s" % (FQCN, name)
    text = _run([_ansible_doc(), "-t", plugin_type, fqcn])
    assert text.returncode == 0, "ansible-doc -t %s %s failed:\n%s%s" % (plugin_type, fqcn, text.stdout, text.stderr)
    assert "[ERROR]" not in text.stderr, text.stderr
    result = _run([_ansible_doc(), "-t", plugin_type, "--json", fqcn])
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert fqcn in data, "ansible-doc --json returned %s" % sorted(data)
    return data[fqcn]


@pytest.mark.parametrize("name", FILTERS)
def test_filter_is_documented(name):
    data = _doc("filter", name)
    doc = data.get("doc")
    assert doc, "no DOCUMENTATION"
    assert doc.get("name") == name and doc.get("short_description") and doc.get("description")
    assert data.get("examples", "").strip(), "no EXAMPLES"
    assert data.get("return"), "no RETURN"
    assert _inside_checkout(doc["filename"]), doc["filename"]


@pytest.mark.parametrize("name", MODULES)
def test_module_is_documented(name):
    data = _doc("module", name)
    doc = data.get("doc")
    assert doc, "no DOCUMENTATION"
    assert doc.get("module") == name and doc.get("short_description") and doc.get("description")
    assert data.get("examples", "").strip(), "no EXAMPLES"
    assert _inside_checkout(doc["filename"]), doc["filename"]


@pytest.mark.parametrize("name", ROLES)
def test_role_is_documented(name):
    data = _doc("role", name)
    assert "main" in data.get("entry_points", {}), "no main entry point"
    assert _inside_checkout(data["path"]), data["path"]
