#!/usr/bin/env bash
# Run ansible-test (sanity, units) on this checkout, offline-safe.
#
# ansible-test only runs from a path ending in ansible_collections/<ns>/<name>,
# and resolves symlinks, so the checkout's tracked and new (not ignored) files are
# copied to a directory outside the checkout first (inside it, git would report
# the copy as ignored and ansible-test would find no targets).
#
# --local with the pinned virtualenv (.venv): --venv and --docker need downloads
# this machine cannot make (ansible-test's pip bootstrap script, quay.io images).
# Sanity tests still build their own small virtualenvs; their pip bootstrap comes
# from scripts/ansible_test_get_pip.py (see there) and their packages from PyPI.
#
# Usage: scripts/ansible-test.sh sanity|units [extra ansible-test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${TMPDIR:-/tmp}/hgr-ansible-test/ansible_collections/hardened/gitlab_runner
py="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

pip_version="$(PY_VERSION=$py python3 - <<'PY'
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
import os
print(get_venv_packages(NativePythonConfig(version=os.environ["PY_VERSION"]))["pip"])
PY
)"
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
mkdir -p "$(dirname "$cache")"
cmp -s scripts/ansible_test_get_pip.py "$cache" || cp scripts/ansible_test_get_pip.py "$cache"

rm -rf "$dest" && mkdir -p "$dest"
# Files deleted (or moved) but not yet staged are still listed: skip them.
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' file; do if [ -e "$file" ]; then printf '%s\0' "$file"; fi; done \
  | tar --null -cf - -T - | tar -xf - -C "$dest"
cd "$dest"
test="$1"; shift
exec ansible-test "$test" --local --python "$py" --color no "$@"
