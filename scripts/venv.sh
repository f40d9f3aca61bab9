#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv at .venv from the pinned
# requirements. A stamp with the requirements' hash makes a second run instant.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
stamp="$venv/.requirements.sha256"
want="$(cat requirements.txt requirements-test.txt | sha256sum | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
echo "$want" > "$stamp"
echo "venv: $venv ready ($("$venv/bin/ansible" --version | head -n1))"
