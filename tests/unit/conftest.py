"""Make the checkout importable as ``ansible_collections.hardened.gitlab_runner``.

Plain ``pytest tests/unit``: `make link` (run by the Makefile's test targets)
creates ``.collections/ansible_collections/hardened/gitlab_runner`` pointing at
the checkout (this file creates it when missing); putting ``.collections`` first on
``sys.path`` lets plain pytest import plugins, and the shared test helpers under
``ansible_collections.hardened.gitlab_runner.tests``, the same way ansible-core does.

``ansible-test units`` (scripts/ansible-test.sh) runs from a copy that already sits
at ``.../ansible_collections/hardened/gitlab_runner`` and installs ansible-core's
collection loader itself: nothing to do then.
"""

import os
import sys

import pytest

_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
_IN_PLACE = _ROOT.split(os.sep)[-3:] == ["ansible_collections", "hardened", "gitlab_runner"]

if _IN_PLACE:
    _COLLECTIONS_PATH = os.path.dirname(os.path.dirname(os.path.dirname(_ROOT)))
else:
    _COLLECTIONS_PATH = os.path.join(_ROOT, ".collections")
    _LINK = os.path.join(_COLLECTIONS_PATH, "ansible_collections", "hardened", "gitlab_runner")

    if not os.path.exists(_LINK):
        os.makedirs(os.path.dirname(_LINK), exist_ok=True)
        os.symlink(os.path.relpath(_ROOT, os.path.dirname(_LINK)), _LINK)

    if _COLLECTIONS_PATH not in sys.path:
        sys.path.insert(0, _COLLECTIONS_PATH)


@pytest.fixture
def collections_path():
    """An ANSIBLE_COLLECTIONS_PATH holding this checkout as hardened.gitlab_runner, for ansible subprocesses."""
    return _COLLECTIONS_PATH
