"""Action plugin: build the audit report and write its files in one step, on the controller.

Replaces a set_fact over the audit_report filter, a directory task and two copy
loops (one module run per file) in playbooks/audit.yml. It runs on the
controller only (no connection to any host): the per-host module results come
in as ``results``, and the files are written with Python's own atomic
rename, 0600 in a 0700 directory. Written by hand rather than by calling the
copy action per file because each of those calls is a module run with its own
temporary files; here the content is known and local.
"""

import json
import os
import re
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.hardened.gitlab_runner.plugins.filter.audit_report import (
    audit_fleet_findings,
    audit_junit,
    audit_markdown,
    audit_report,
)

ARGUMENT_SPEC = {
    "results": {"type": "dict", "required": True},
    "dest": {"type": "path", "required": True},
    "threshold": {"type": "str", "default": "high", "choices": ["info", "low", "medium", "high", "critical", "none"]},
    "fail_on_error": {"type": "bool", "default": True},
}

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def _write(path, content):
    """Write ``content`` to ``path`` atomically (0600); return True when the file changed."""
    data = content.encode("utf-8")
    try:
        with open(path, "rb") as current:
            if current.read() == data and (os.stat(path).st_mode & 0o777) == 0o600:
                return False
    except FileNotFoundError:
        pass
    handle, temp = tempfile.mkstemp(prefix=".audit-", dir=os.path.dirname(path))
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    return True


def _totals_text(totals):
    return ", ".join("%s %s" % (severity, count) for severity, count in reversed(list(totals.items())))


class ActionModule(ActionBase):
    """Build the report with the collection's audit filters and write its files."""

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        results = args["results"]
        fleet = audit_fleet_findings({host: (value or {}).get("config", {}) for host, value in results.items()
                                      if isinstance(value, dict)})
        report = audit_report(results, fleet, args["threshold"], args["fail_on_error"])

        dest = os.path.abspath(os.path.expanduser(args["dest"]))
        try:
            os.makedirs(dest, mode=0o700, exist_ok=True)
            files = {"%s.json" % _UNSAFE_NAME.sub("_", host): json.dumps(entry, indent=4, sort_keys=True) + "\n"
                     for host, entry in report["hosts"].items()}
            files["report.json"] = json.dumps(report, indent=4, sort_keys=True) + "\n"
            files["summary.md"] = audit_markdown(report)
            files["junit.xml"] = audit_junit(report)
            changed = False
            for name, content in sorted(files.items()):
                changed = _write(os.path.join(dest, name), content) or changed
        except OSError as exc:
            raise AnsibleActionFail("audit_report: cannot write the reports in %s: %s" % (dest, exc))

        summary = []
        for host, entry in report["hosts"].items():
            line = "%s: %s" % (host, _totals_text(entry["totals"]))
            if entry.get("error"):
                line += "; AUDIT ERROR: %s" % entry["error"]
            summary.append(line)
        result.update(
            changed=changed,
            files=[os.path.join(dest, name) for name in sorted(files)],
            summary=summary,
            report={key: value for key, value in report.items() if key != "hosts"},
            dest=dest,
        )
        result["report"]["hosts"] = {host: {"totals": entry["totals"], "error": entry.get("error")}
                                     for host, entry in report["hosts"].items()}
        return result
