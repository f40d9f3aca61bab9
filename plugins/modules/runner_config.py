# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the runner_config action (plugins/action/runner_config.py)."""

DOCUMENTATION = r"""
---
module: runner_config
short_description: Build, gate and atomically write GitLab Runner's config.toml
version_added: 0.1.0
description:
  - Reads the current config.toml from the host, builds the wanted document on the controller from
    O(runners), O(settings) and the secure O(defaults) (keeping GitLab Runner's own C(id) and
    C(token_*) fields of a runner whose token did not change), and checks it against the
    collection's policy catalog.
  - A refused setting, or input that cannot be built, fails the task with a message that names the
    runner, the setting, the policy and the acknowledgement that unlocks it, and changes nothing.
  - Keys and feature flags GitLab Runner does not know (C(GR015)) are checked against the key list of the
    runner's release line (major.minor), the one of O(runner_version), else of the C(gitlab-runner)
    package installed on the host (read with C(dpkg-query)), else the newest list. A release the collection
    has no list for gets the nearest older list (or the oldest) and a warning. RV(key_list) and the first of
    RV(notices) name the list used. A runner accepts an unknown key by naming it in its
    C(allow_unknown_keys) (see the C(hardened.gitlab_runner.gitlab_runner) role).
  - Unless O(gate_only), writes the document (0600 root:root, through a temporary file and an atomic
    rename) only when its content or mode differs, and the accepted exceptions to
    O(acknowledgements_path).
  - The host keys each C(ssh), C(virtualbox) or C(parallels) runner pins (its C(ssh_known_hosts)) go to a
    known_hosts file of its own in C(known_hosts.d) beside O(path) (0644 root:root, the directory 0700
    root:root), written the same way before config.toml names them; config.toml sets the runner's
    C(known_hosts_file) to it. Files in that directory that no runner pins any more are removed after
    config.toml is written, and the directory goes with the last of them. A host whose config.toml names no
    such file and that has no such runner is not looked at.
  - Runner tokens never appear in the task's result, its messages, a diff or the host's log.
    This is the action behind the gitlab_runner role's config.toml tasks.
options:
  runners:
    description: The role's C(gitlab_runner_runners) list (see the role's argument spec).
    type: list
    elements: raw
    required: true
  settings:
    description: Global keys (C(concurrent), C(check_interval), C(log_level), C(log_format), C(shutdown_timeout),
      C(listen_address), C(session_server), C(connection_max_age)).
    type: dict
    default: {}
  defaults:
    description: Secure defaults merged under each runner (C(docker), C(kubernetes), C(feature_flags), C(runner),
      C(cap_drop_extra)).
    type: dict
    default: {}
  path:
    description: Path of config.toml on the host. Anything there but a regular file is refused.
    type: str
    required: true
  acknowledgements_path:
    description: Where to record the accepted exceptions (JSON, 0600) for the audit; unset records none.
    type: str
  gate_only:
    description: Only look at the current file (it must be a regular file, if any), build and gate; read and
      write nothing. The verdict does not depend on the runner-managed fields the current file contributes.
    type: bool
    default: false
  runner_version:
    description:
      - The GitLab Runner version the configuration is for, as GitLab (V(18.5.0)) or apt (V(18.5.0-1))
        numbers it; its release line picks the key list unknown keys are checked against.
      - Empty reads the version of the C(gitlab-runner) package installed on the host; when none is
        installed, the newest key list is used and a notice says so.
    type: str
    default: ''
  api:
    description:
      - GitLab's REST API, for the runners of O(runners) that have C(create) instead of a C(token)
        (the role's C(gitlab_runner_runners[].create)). Called from the controller, and only once the
        gate has passed (never with O(gate_only)).
      - A present runner is found by its C(description) (the runner's name by default); it is created
        (C(POST /user/runners)) when none has it, kept when the token config.toml holds is still that
        runner's (C(POST /runners/verify)), and its token is reset otherwise. A runner with
        C(state=absent) is deleted in GitLab after config.toml was written without it.
      - Keys C(url) (empty uses each runner's C(url)), C(token) (with the C(create_runner) scope),
        C(validate_certs) (default true), C(ca_path), C(timeout) (seconds, default 30).
      - The tokens GitLab returns go into config.toml only; RV(api) names the runner, what was done and
        its id. API errors are reported with every token removed.
    type: dict
    default: {}
  token_env:
    description:
      - Keep the runner tokens out of config.toml, which then names each as C(${HGR_RUNNER_TOKEN_<hash>})
        (the hash is of the token, so two hosts share a name only when they share a token); the values
        go to O(token_env_file), written (0600 root) before config.toml names them.
      - Refused for GitLab Runner before 18.10.0 (or no known version), which does not expand environment
        variables in C(token), and next to C(shell) or C(custom) runners, whose jobs get the runner
        process's environment.
      - False with O(token_env_file) set removes that file once config.toml holds the tokens again.
    type: bool
    default: false
  token_env_file:
    description:
      - The environment file of O(token_env), read by the service (systemd C(EnvironmentFile=)).
    type: str
    default: ''
attributes:
  check_mode:
    support: full
    description: Reads and gates as usual, reports whether the files would change, writes nothing.
  diff_mode:
    support: none
    description: The file holds runner tokens; no diff is ever shown.
  platform:
    platforms: posix
    support: full
    description: Debian-family hosts, as the role.
author:
  - hardened.gitlab_runner maintainers (@hardened)
"""

EXAMPLES = r"""
- name: Check the wanted config.toml against the policy catalog
  hardened.gitlab_runner.runner_config:
    runners: "{{ gitlab_runner_runners }}"
    path: /etc/gitlab-runner/config.toml
    runner_version: "{{ gitlab_runner_version }}"
    gate_only: true
  register: gate

- name: Write config.toml
  hardened.gitlab_runner.runner_config:
    runners: "{{ gitlab_runner_runners }}"
    path: /etc/gitlab-runner/config.toml
    acknowledgements_path: /etc/gitlab-runner/hardened-acknowledgements.json
  notify: Reload gitlab-runner
"""

RETURN = r"""
refusals:
  description: Refused settings, one text each (the task fails when there is one).
  type: list
  elements: str
  returned: always
notices:
  description:
    - Warnings and accepted exceptions, one text each (the gate filter calls them C(warnings)).
    - The first says which key list unknown keys were checked against, for which runner version and where
      that version came from (C(pinned) or C(installed)); it starts with C(WARNING:) when the list is not
      the one of that version's own release line.
  type: list
  elements: str
  returned: always
key_list:
  description: The key list unknown keys were checked against.
  type: dict
  returned: always
  contains:
    release:
      description: Its GitLab Runner release line.
      type: str
      sample: "19.3"
    tag:
      description: The tag of GitLab Runner's source it was generated from.
      type: str
      sample: v19.3.0
    commit:
      description: The commit of that tag.
      type: str
    name:
      description: How findings and notices name it.
      type: str
      sample: key list of GitLab Runner 19.3 (v19.3.0)
    runner_version:
      description: The runner version it was picked for, or null when none was known.
      type: str
      sample: 19.3.0-1
    exact:
      description: Whether it is the list of that version's own release line.
      type: bool
    text:
      description: The first of RV(notices).
      type: str
acknowledged:
  description: Accepted exceptions with runner, id, setting, evidence, acknowledgement and reason.
  type: list
  elements: dict
  returned: always
findings:
  description: Every finding of the policy catalog for the wanted document.
  type: list
  elements: dict
  returned: always
errors:
  description: Always empty (input errors fail the task); kept for callers of the gate filter's result shape.
  type: list
  elements: str
  returned: always
config_changed:
  description: Whether config.toml was (or in check mode would be) written.
  type: bool
  returned: unless gate_only
acknowledgements_changed:
  description: Whether the acknowledgements file was (or would be) written.
  type: bool
  returned: unless gate_only
known_hosts_changed:
  description: Whether a managed known_hosts file (or the directory holding them) was (or would be) written or removed.
  type: bool
  returned: unless gate_only
token_env_changed:
  description: Whether O(token_env_file) was (or would be) written or removed.
  type: bool
  returned: unless gate_only
api:
  description:
    - What was done in GitLab for each runner with C(create), in order (C(created), C(kept),
      C(token_reset), C(deleted), C(absent)); no token.
  type: list
  elements: dict
  returned: unless gate_only
  sample: [{"runner": "docker-shared", "action": "created", "id": 42, "changed": true}]
"""
