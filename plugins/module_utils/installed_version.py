"""The GitLab Runner version installed on a host, for the audit modules.

The package's version as dpkg knows it (installed or held), else the first
line of ``gitlab-runner --version``. Plain Python; the caller passes its
AnsibleModule for ``get_bin_path`` and ``run_command``.
"""

from __future__ import annotations

import re

from ansible_collections.hardened.gitlab_runner.plugins.module_utils.host_text import clip as _clip

LOCALE_C = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}


def runner_version(module):
    """(version or None, evidence text naming where it was read)."""
    package = binary = None
    dpkg_query = module.get_bin_path("dpkg-query")
    if dpkg_query:
        rc, out, dummy = module.run_command(
            [dpkg_query, "-W", "-f", "${db:Status-Abbrev}|${Version}", "gitlab-runner"],
            check_rc=False, environ_update=LOCALE_C)
        if rc == 0 and "|" in out:
            status, version = out.strip().split("|", 1)
            if status.startswith(("ii", "hi")) and version.strip():
                package = version.strip()
    runner = module.get_bin_path("gitlab-runner")
    if runner:
        rc, out, dummy = module.run_command([runner, "--version"], check_rc=False, environ_update=LOCALE_C)
        lines = [line.strip() for line in (out or "").splitlines() if line.strip()]
        if rc == 0 and lines:
            binary = _clip(lines[0], 120)
    if package is None and binary is None:
        tried = [tool for tool, path in (("dpkg-query", dpkg_query), ("gitlab-runner --version", runner)) if path]
        return None, "GitLab Runner is not installed (checked: %s)" % (", ".join(tried) or "no dpkg-query, no gitlab-runner in PATH")
    parts = []
    if package is not None:
        parts.append("package gitlab-runner %s" % package)
    if binary is not None:
        parts.append("gitlab-runner --version: %s" % binary)
    version = package
    if version is None:
        match = re.search(r"Version:\s*(\S+)", binary)
        version = match.group(1) if match else binary
    return version, "; ".join(parts)
