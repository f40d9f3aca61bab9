# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the audit_report action (plugins/action/audit_report.py), which runs on the controller."""

DOCUMENTATION = r"""
---
module: audit_report
short_description: Build the audit report of runner hosts and write it on the controller
version_added: 0.1.0
description:
  - Takes the results of the audit modules for every audited host, compares runner tokens and
    system ids across hosts (M(hardened.gitlab_runner.runner_config_audit) results), and writes
    one JSON report per host, C(report.json), C(summary.md) and C(junit.xml) into O(dest) on the
    controller, each 0600 in a 0700 directory, replaced atomically and only when its content changed.
  - Token hashes in the results are used for the comparison and dropped from every report.
  - Runs on the controller only; use it with C(run_once) (and C(delegate_to) C(localhost)).
options:
  results:
    description:
      - Host name to that host's module results, as a mapping of labels (C(config), C(host), C(docker))
        to registered results. Missing, failed or skipped results become the host's C(error).
    type: dict
    required: true
  dest:
    description: Report directory on the controller; created 0700 when missing.
    type: path
    required: true
  threshold:
    description: Lowest severity that makes the report fail (V(none) never fails).
    type: str
    default: high
    choices: [info, low, medium, high, critical, none]
  fail_on_error:
    description: Also mark the report failed when a host could not be audited completely.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: The reports are written in check mode too; they describe the hosts, not changes to them.
  diff_mode:
    support: none
    description: No diff is shown; the reports are in the files.
  platform:
    platforms: posix
    support: full
    description: The controller's file system.
author:
  - hardened.gitlab_runner maintainers (@hardened)
"""

EXAMPLES = r"""
- name: Write the audit reports
  hardened.gitlab_runner.audit_report:
    results: "{{ my_results }}"
    dest: ./audit-reports
    threshold: high
  run_once: true
  delegate_to: localhost
  register: audit
"""

RETURN = r"""
report:
  description: The report without the per-host findings (threshold, totals, errors, failing, failed, hosts' totals).
  type: dict
  returned: always
summary:
  description: One line per host with its totals by severity and its audit error, if any.
  type: list
  elements: str
  returned: always
files:
  description: The files written (absolute paths).
  type: list
  elements: str
  returned: always
"""
