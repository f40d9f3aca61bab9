#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_state
short_description: Read what a role needs to know of a host, and set its files, in one round trip
version_added: "0.2.0"
description:
  - Each task of a play costs a round trip to every host, and a re-run of a converged host
    is almost only such tasks (a stat, a slurp, a directory, a template each). This module
    does the reading part of several of them in one call (files, packages, users, groups,
    names, environment) and, in another call, puts any number of directories and small
    files in place with their owner and mode.
  - It is written for the roles of this collection, which read its results; it is not a
    general replacement for M(ansible.builtin.file), M(ansible.builtin.copy) or
    M(ansible.builtin.package_facts).
  - Reading never changes anything. O(files) is applied in the order given.
author:
  - hardened.gitlab_runner maintainers (@hardened)
options:
  read:
    description:
      - Paths to look at, without following a final symbolic link.
      - Each is a path, or a mapping with O(read[].path) and O(read[].content).
    type: list
    elements: raw
    default: []
    suboptions:
      path:
        description: The path.
        type: path
        required: true
      content:
        description: Also return the content (base64) of a regular file of at most 1 MiB.
        type: bool
        default: false
  packages:
    description:
      - Debian package names whose installed version and selection (C(hold)) to report,
        read with one C(dpkg-query).
    type: list
    elements: str
    default: []
  users:
    description: User names to look up in the passwd database.
    type: list
    elements: str
    default: []
  passwd:
    description: Also return every passwd entry (RV(passwd)).
    type: bool
    default: false
  groups:
    description:
      - Group names to look up, with their supplementary members and the users whose
        primary group they are (every passwd entry is read for that).
    type: list
    elements: str
    default: []
  resolve:
    description: Host names to resolve on the host (its resolver, like C(getent ahosts)).
    type: list
    elements: str
    default: []
  units:
    description:
      - systemd units whose C(UnitFileState) (C(enabled), C(disabled), ...) and C(ActiveState)
        (C(active), C(inactive), ...) to report, read with one C(systemctl show).
    type: list
    elements: str
    default: []
  environment:
    description: Names of environment variables of the module's process to report.
    type: list
    elements: str
    default: []
  files:
    description:
      - Directories and files to put in place, in order. A missing directory is made with its
        missing parents (those as root 0755); a file is written atomically (a temporary file
        in the same directory, then a rename) only when its content differs.
      - Owner, group and mode are set when they differ.
      - An existing path of another type (a directory where a file is wanted, a symbolic
        link, a device) is refused, not replaced.
      - Contents are shown in diff mode, so this is not for secrets.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      state:
        description: C(directory), C(file) (O(files[].content) required) or C(absent).
        type: str
        choices: [directory, file, absent]
        default: file
      content:
        description: The file's content.
        type: str
      owner:
        description: Owner.
        type: str
        default: root
      group:
        description: Group.
        type: str
        default: root
      mode:
        description: Mode, in octal as a string.
        type: str
        required: false
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: debian
notes:
  - Hand-written because the builtin modules need one round trip per path (a template two),
    which is most of what a re-run of the roles costs.
"""

EXAMPLES = r"""
- name: Read the keyring, the installed packages and the job user in one go
  hardened.gitlab_runner.host_state:
    read:
      - {path: /etc/apt/keyrings/gitlab-runner.asc, content: true}
      - /etc/gitlab-runner
    packages: [gitlab-runner, gitlab-runner-helper-images]
    users: [gitlab-runner]
  register: state

- name: Put the drop-in directory and its file in place
  hardened.gitlab_runner.host_state:
    files:
      - {path: /etc/systemd/system/gitlab-runner.service.d, state: directory, mode: "0755"}
      - path: /etc/systemd/system/gitlab-runner.service.d/hardened.conf
        content: "{{ lookup('ansible.builtin.template', 'service-override.conf.j2') }}"
        mode: "0644"
"""

RETURN = r"""
files:
  description:
    - Per path of O(read), what is there. Its C(type) is C(missing), C(file), C(directory),
      C(link), C(socket) or C(other); mode, uid, gid, owner, group and size are given when it exists.
  returned: always
  type: dict
  sample: {"/etc/gitlab-runner": {"type": "directory", "mode": "0700", "uid": 0, "gid": 0, "owner": "root", "group": "root", "size": 4096}}
packages:
  description:
    - Installed packages among O(packages), shaped like M(ansible.builtin.package_facts)' C(packages)
      (a list with one entry per installed architecture). A package that is not installed is left out.
  returned: always
  type: dict
  sample: {"gitlab-runner": [{"name": "gitlab-runner", "version": "19.3.0-1", "arch": "amd64", "source": "apt"}]}
held:
  description: Which of O(packages) are selected C(hold).
  returned: always
  type: list
  elements: str
users:
  description: Per user of O(users) that exists, its passwd entry.
  returned: always
  type: dict
  sample: {"gitlab-runner": {"uid": 999, "gid": 999, "home": "/home/gitlab-runner", "shell": "/bin/bash"}}
passwd:
  description: With O(passwd), every passwd entry by user name (uid, gid, home, shell).
  returned: when O(passwd) is true
  type: dict
groups:
  description: Per group of O(groups) that exists, its gid, supplementary C(members) and C(primary_members).
  returned: always
  type: dict
  sample: {"docker": {"gid": 998, "members": [], "primary_members": []}}
addresses:
  description: Per name of O(resolve), its addresses (empty when it does not resolve), in the resolver's order, each once.
  returned: always
  type: dict
units:
  description:
    - Per unit of O(units), its C(enabled) (C(UnitFileState)) and C(active) (C(ActiveState)) state;
      empty when C(systemctl) is missing or fails (no systemd).
  returned: always
  type: dict
  sample: {"docker.service": {"enabled": "enabled", "active": "active"}}
environment:
  description: Per name of O(environment), its value, or null when unset.
  returned: always
  type: dict
changed_paths:
  description: The paths of O(files) that were (or, in check mode, would be) changed.
  returned: always
  type: list
  elements: str
"""

import base64
import grp
import os
import pwd
import socket
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text

MAX_CONTENT = 1024 * 1024


def _type(mode):
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "other"


def _name(lookup, ident):
    try:
        return lookup(ident)[0]
    except KeyError:
        return None


def describe(path, content=False):
    """What is at ``path`` (lstat), with its content as base64 when asked and small enough."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return {"type": "missing"}
    except NotADirectoryError:
        return {"type": "missing"}
    out = {
        "type": _type(st.st_mode),
        "mode": "%04o" % stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "owner": _name(pwd.getpwuid, st.st_uid),
        "group": _name(grp.getgrgid, st.st_gid),
        "size": st.st_size,
    }
    if content and out["type"] == "file" and st.st_size <= MAX_CONTENT:
        # O_NOFOLLOW: the path was a regular file a moment ago; do not follow a link swapped in since.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            out["content"] = to_text(base64.b64encode(handle.read(MAX_CONTENT)))
    return out


def read_packages(module, names):
    """(packages in package_facts' shape, held names) of ``names``, from one dpkg-query."""
    if not names:
        return {}, []
    dpkg_query = module.get_bin_path("dpkg-query", required=True)
    # rc 1 only says some name is unknown to dpkg; the known ones are printed all the same.
    rc, out, err = module.run_command(
        [dpkg_query, "-W", "-f", "${Package}\t${Version}\t${Architecture}\t${db:Status-Abbrev}\n", "--"] + list(names))
    if rc not in (0, 1):
        module.fail_json(msg="dpkg-query failed (rc %s): %s" % (rc, err.strip()))
    packages, held = {}, []
    for line in out.splitlines():
        fields = line.split("\t")
        if len(fields) != 4:
            continue
        name, version, arch, abbrev = fields
        name = name.split(":")[0]
        # Abbrev: want (u, i, h, r, p), then status (n, i, c, U, F, h, W, t), then error flag.
        if abbrev[:1] == "h" and name not in held:
            held.append(name)
        if abbrev[1:2] == "i":
            packages.setdefault(name, []).append({"name": name, "version": version, "arch": arch, "source": "apt"})
    return packages, held


def _user(entry):
    return {"uid": entry.pw_uid, "gid": entry.pw_gid, "home": entry.pw_dir, "shell": entry.pw_shell}


def read_units(module, names):
    """{unit: {enabled, active}} from one systemctl show; empty without a working systemctl."""
    systemctl = module.get_bin_path("systemctl") if names else None
    if not systemctl:
        return {}
    rc, out, dummy = module.run_command([systemctl, "show", "--property=Id,UnitFileState,ActiveState", "--"] + list(names))
    if rc != 0:
        return {}
    # One block of properties per unit, in the order asked, separated by blank lines.
    blocks = [block for block in out.strip().split("\n\n") if block.strip()]
    result = {}
    for name, block in zip(names, blocks):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        result[name] = {"enabled": props.get("UnitFileState", ""), "active": props.get("ActiveState", "")}
    return result


def read_users(names):
    out = {}
    for name in names:
        try:
            out[name] = _user(pwd.getpwnam(name))
        except KeyError:
            continue
    return out


def read_groups(names):
    if not names:
        return {}
    out = {}
    everyone = pwd.getpwall()
    for name in names:
        try:
            entry = grp.getgrnam(name)
        except KeyError:
            continue
        out[name] = {
            "gid": entry.gr_gid,
            "members": list(entry.gr_mem),
            "primary_members": sorted(user.pw_name for user in everyone if user.pw_gid == entry.gr_gid),
        }
    return out


def resolve(names):
    out = {}
    for name in names:
        addresses = []
        try:
            infos = socket.getaddrinfo(name, None)
        except (socket.gaierror, UnicodeError):
            infos = []
        for info in infos:
            address = info[4][0]
            if address not in addresses:
                addresses.append(address)
        out[name] = addresses
    return out


class Files:
    """Puts directories and files in place; collects changed paths and diffs."""

    def __init__(self, module):
        self.module = module
        self.changed_paths = []
        self.diffs = []

    def _changed(self, path):
        if path not in self.changed_paths:
            self.changed_paths.append(path)

    def _attributes(self, spec, path):
        """Owner, group and mode, set when they differ (the file may not exist yet in check mode)."""
        if self.module.check_mode and not os.path.lexists(path):
            return
        args = self.module.load_file_common_arguments(
            {"path": path, "owner": spec["owner"], "group": spec["group"], "mode": spec["mode"]}, path=path)
        diff = {"before": {"path": path}, "after": {"path": path}}
        if self.module.set_fs_attributes_if_different(args, False, diff=diff, expand=False):
            self._changed(path)
            self.diffs.append(diff)

    def _refuse_other_type(self, path, want):
        found = describe(path)["type"]
        if found not in ("missing", want):
            self.module.fail_json(
                msg="%s is a %s, not a %s: refused to replace it (remove it by hand if it is not needed)"
                    % (path, found, "regular file" if want == "file" else want),
                changed_paths=self.changed_paths)
        return found

    def _make_directory(self, path):
        missing = []
        current = path
        while not os.path.lexists(current):
            missing.append(current)
            current = os.path.dirname(current)
        for directory in reversed(missing):
            # The wanted mode is set afterwards: 0700 until then, so it is never wider than asked.
            os.mkdir(directory, 0o700 if directory == path else 0o755)
            os.chmod(directory, 0o700 if directory == path else 0o755)

    def directory(self, spec):
        path = spec["path"]
        if self._refuse_other_type(path, "directory") == "missing":
            self._changed(path)
            self.diffs.append({"before": {"path": path, "state": "absent"}, "after": {"path": path, "state": "directory"},
                               "before_header": path, "after_header": path})
            if not self.module.check_mode:
                self._make_directory(path)
        self._attributes(spec, path)

    def file(self, spec):
        path = spec["path"]
        if spec.get("content") is None:
            self.module.fail_json(msg="files: %s has state file but no content" % path)
        wanted = to_bytes(spec["content"], errors="surrogate_or_strict")
        found = self._refuse_other_type(path, "file")
        current = None
        if found == "file":
            with open(path, "rb") as handle:
                current = handle.read()
        if current != wanted:
            self._changed(path)
            self.diffs.append({"before": to_text(current or b"", errors="surrogate_or_replace"),
                               "after": spec["content"], "before_header": path, "after_header": path})
            if not self.module.check_mode:
                self._write(path, wanted)
        self._attributes(spec, path)

    def _write(self, path, data):
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            self.module.fail_json(msg="%s: its directory %s does not exist (list the directory first)" % (path, directory),
                                  changed_paths=self.changed_paths)
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            # Private until the wanted mode is set after the move.
            os.chmod(tmp, 0o600)
            self.module.atomic_move(tmp, path)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)

    def absent(self, spec):
        path = spec["path"]
        found = describe(path)["type"]
        if found == "missing":
            return
        if found == "directory":
            self.module.fail_json(msg="%s is a directory: this module only removes files" % path,
                                  changed_paths=self.changed_paths)
        self._changed(path)
        self.diffs.append({"before": {"path": path, "state": found}, "after": {"path": path, "state": "absent"},
                           "before_header": path, "after_header": path})
        if not self.module.check_mode:
            os.unlink(path)


def main():
    module = AnsibleModule(
        argument_spec={
            "read": {"type": "list", "elements": "raw", "default": []},
            "packages": {"type": "list", "elements": "str", "default": []},
            "users": {"type": "list", "elements": "str", "default": []},
            "passwd": {"type": "bool", "default": False},
            "groups": {"type": "list", "elements": "str", "default": []},
            "resolve": {"type": "list", "elements": "str", "default": []},
            "units": {"type": "list", "elements": "str", "default": []},
            "environment": {"type": "list", "elements": "str", "default": []},
            "files": {
                "type": "list", "elements": "dict", "default": [],
                "options": {
                    "path": {"type": "path", "required": True},
                    "state": {"type": "str", "choices": ["directory", "file", "absent"], "default": "file"},
                    "content": {"type": "str"},
                    "owner": {"type": "str", "default": "root"},
                    "group": {"type": "str", "default": "root"},
                    "mode": {"type": "str", "required": False},
                },
            },
        },
        supports_check_mode=True,
    )
    params = module.params
    files_read = {}
    for item in params["read"]:
        if isinstance(item, dict):
            path, content = item.get("path"), bool(item.get("content", False))
        else:
            path, content = item, False
        if not isinstance(path, str) or not os.path.isabs(path):
            module.fail_json(msg="read: %r is not an absolute path" % (path,))
        files_read[path] = describe(path, content)
    packages, held = read_packages(module, params["packages"])

    files = Files(module)
    for spec in params["files"]:
        if not os.path.isabs(spec["path"]):
            module.fail_json(msg="files: %r is not an absolute path" % spec["path"])
        try:
            getattr(files, spec["state"])(spec)
        except OSError as exc:
            module.fail_json(msg="files: %s: %s" % (spec["path"], to_native(exc)), changed_paths=files.changed_paths)

    result = {
        "changed": bool(files.changed_paths),
        "changed_paths": files.changed_paths,
        "files": files_read,
        "packages": packages,
        "held": held,
        "users": read_users(params["users"]),
        "groups": read_groups(params["groups"]),
        "addresses": resolve(params["resolve"]),
        "units": read_units(module, params["units"]),
        "environment": {name: os.environ.get(name) for name in params["environment"]},
    }
    if params["passwd"]:
        result["passwd"] = {entry.pw_name: _user(entry) for entry in pwd.getpwall()}
    if module._diff and files.diffs:
        result["diff"] = files.diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
