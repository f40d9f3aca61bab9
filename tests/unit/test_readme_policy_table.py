"""The README's policy table is generated from the catalog and must not drift."""

import importlib.util
import os

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _generator():
    spec = importlib.util.spec_from_file_location("policy_table", os.path.join(ROOT, "scripts", "policy_table.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_holds_the_generated_policy_table():
    gen = _generator()
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    assert gen.block() in readme, "README.md's policy table is stale: run python3 scripts/policy_table.py --write"


def test_every_catalog_entry_is_in_the_table():
    gen = _generator()
    from ansible_collections.hardened.gitlab_runner.plugins.module_utils.policy import CATALOG
    table = gen.table()
    for policy_id in CATALOG:
        assert "| %s |" % policy_id in table
