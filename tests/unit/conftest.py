"""Make the checkout importable as ``ansible_collections.hardened.gitlab_runner``.

`make collection-link` (run by every Makefile target) creates
``.collections/ansible_collections/hardened/gitlab_runner`` pointing at the
checkout; putting ``.collections`` first on ``sys.path`` lets plain pytest import
plugins the same way ansible-core does.
"""

import os
import sys

_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
_LINK_PARENT = os.path.join(_ROOT, ".collections")
_LINK = os.path.join(_LINK_PARENT, "ansible_collections", "hardened", "gitlab_runner")

if not os.path.exists(_LINK):
    os.makedirs(os.path.dirname(_LINK), exist_ok=True)
    os.symlink(os.path.relpath(_ROOT, os.path.dirname(_LINK)), _LINK)

if _LINK_PARENT not in sys.path:
    sys.path.insert(0, _LINK_PARENT)
