#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: runner_host_audit
short_description: Audit the host around a GitLab Runner (read-only)
version_added: "0.1.0"
description:
  - Checks the parts of a GitLab Runner host that C(config.toml) does not describe, and
    reports findings from the policy catalog of this collection. Nothing is changed.
  - C(GR020) - the configuration directory is not owned by root or open to group/other, or a
    regular file directly in it (C(config.toml), C(.runner_system_id),
    C(hardened-acknowledgements.json), ...) is not owned by root or is readable or writable
    by group/other.
  - C(GR021) - the job user has uid 0, is in a group of O(forbidden_groups) (primary or
    supplementary), or has sudo rights (C(sudo -n -l -U <user>), when C(sudo) is installed).
  - C(GR024) - the job user's home or C(<home>/builds) is open to group/other or not owned by
    the job user.
  - C(GR025) - a private SSH key below O(ssh_key_paths) can be read by the job user.
  - C(GR026) - the runner service's C(ExecStart) has no C(--user), so shell jobs run as root.
  - C(GR027) (info) - the installed GitLab Runner version, or that it is not installed.
author:
  - hardened.gitlab_runner maintainers (@hardened)
options:
  config_dir:
    description:
      - GitLab Runner's configuration directory.
    type: path
    default: /etc/gitlab-runner
  service_name:
    description:
      - Name of the systemd service of the runner (with or without C(.service)).
    type: str
    default: gitlab-runner
  job_user:
    description:
      - The user shell-executor jobs run as.
      - Defaults to the C(--user) of the service's C(ExecStart), read with
        C(systemctl show -p ExecStart) or, without a running systemd, from the unit file
        C(/etc/systemd/system/<service>.service) (or C(/run/systemd/system),
        C(/usr/lib/systemd/system), C(/lib/systemd/system)) and its C(.d/*.conf) drop-ins,
        where the last C(ExecStart) wins; and to C(gitlab-runner) when there is none.
    type: str
  forbidden_groups:
    description:
      - Groups that give their members root-equivalent or otherwise sensitive access; the
        job user must be in none of them.
    type: list
    elements: str
    default: [docker, sudo, wheel, adm, lxd, root, disk, shadow]
  ssh_key_paths:
    description:
      - Directories searched (recursively, without following symbolic links) for private
        SSH keys. A path that is a file is checked itself.
      - A file is taken for a private key when its name starts with C(id_), does not end
        with C(.pub) and either has no other dot in it or is in a C(.ssh) directory, when it is in C(/etc/ssh) and its name ends with C(_key), or when it is
        a regular file of at most 64 KiB whose first 64 bytes contain C(PRIVATE KEY-----).
        Only those first 64 bytes are read, and only of files the job user can read; key
        contents are never returned.
      - Pseudo file systems (C(/proc), C(/sys), C(/dev) and mounts of types such as proc,
        sysfs, devtmpfs, cgroup) are skipped.
    type: list
    elements: path
    default: [/root, /home, /etc/ssh, /srv, /opt, /var/lib/gitlab-runner]
  max_files:
    description:
      - Largest number of files examined by the key search; when reached, the search stops,
        RV(scan_truncated) is true and a warning is given.
    type: int
    default: 20000
  check_service_user:
    description:
      - Whether to report C(GR026) when the service's C(ExecStart) has no C(--user).
    type: bool
    default: true
notes:
  - Readability is computed from owner, group and mode bits as the kernel would apply them
    (owner bits when the job user owns the file, else group bits when one of its groups owns
    it, else other bits), including search permission on every parent directory. POSIX ACLs,
    capabilities and mandatory access control (AppArmor, SELinux) are ignored.
  - The sudo check needs root (or sudo rights to list other users' rights); when C(sudo -l)
    cannot answer, a warning is given and RV(sudo_rights) is null.
  - When the job user does not exist, C(GR021), C(GR024) and C(GR025) are not checked and
    RV(job_user.exists) is false.
  - Missing tools (C(systemctl), C(sudo), C(dpkg-query), C(gitlab-runner)) are not errors;
    the checks that need them are skipped or use a fallback.
  - Supports check mode; the module never changes anything.
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the target.
    support: full
    details: The module only reads; it does the same in check mode and always reports
      C(changed=false).
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
    details: The module changes nothing, so there is no difference to show.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
seealso:
  - module: hardened.gitlab_runner.runner_config_audit
"""

EXAMPLES = r"""
- name: Audit the runner host
  hardened.gitlab_runner.runner_host_audit:
  register: runner_host

- name: Show what is wrong
  ansible.builtin.debug:
    msg: "{{ item.id }} {{ item.setting }}: {{ item.evidence }}"
  loop: "{{ runner_host.findings | rejectattr('severity', 'eq', 'info') | list }}"

- name: Audit a runner whose jobs run as ci, searching only a few places for keys
  hardened.gitlab_runner.runner_host_audit:
    job_user: ci
    service_name: gitlab-runner-ci
    ssh_key_paths:
      - /home
      - /etc/ssh
    max_files: 5000
    forbidden_groups: [docker, sudo, adm, lxd, root, disk, shadow, systemd-journal]
"""

RETURN = r"""
findings:
  description: Findings from the policy catalog (C(GR020), C(GR021), C(GR024) to C(GR027)).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Catalog id.
      type: str
      sample: GR025
    severity:
      description: One of C(info), C(low), C(medium), C(high), C(critical).
      type: str
    title:
      description: What the policy is about.
      type: str
    guidance:
      description: Where the reasoning is documented.
      type: str
    runner:
      description: Always null (host findings concern no single runner).
      type: str
    setting:
      description: The file, user or service concerned.
      type: str
      sample: /root/.ssh/id_ed25519
    evidence:
      description: What was found.
      type: str
      sample: mode 0644 owner root:root, readable by gitlab-runner via other
    ack:
      description: Always null for host findings.
      type: str
    enforcement:
      description: C(audit).
      type: str
job_user:
  description: The job user as found on the host.
  returned: always
  type: dict
  contains:
    name:
      description: User name.
      type: str
      sample: gitlab-runner
    exists:
      description: Whether the user exists.
      type: bool
    uid:
      description: User id, or null.
      type: int
    gid:
      description: Primary group id, or null.
      type: int
    groups:
      description: Names of all groups of the user (primary first), or an empty list.
      type: list
      elements: str
    shell:
      description: Login shell, or null.
      type: str
    home:
      description: Home directory, or null.
      type: str
    home_mode:
      description: Mode of the home directory as an octal string, or null when it does not exist.
      type: str
      sample: "0700"
job_user_source:
  description: Where the job user name came from, C(option), C(service) or C(default).
  returned: always
  type: str
service_exec_start:
  description: The service's effective C(ExecStart) command line, or null when none was found.
  returned: always
  type: str
service_exec_start_user:
  description: The C(--user) of the service's C(ExecStart), or null.
  returned: always
  type: str
sudo_rights:
  description: Whether the job user may run commands with sudo; null when unknown or not checked.
  returned: always
  type: bool
runner_version:
  description: Installed GitLab Runner version (package version, else the binary's), or null.
  returned: always
  type: str
  sample: 18.2.1-1
files_scanned:
  description: Number of files examined by the key search.
  returned: always
  type: int
scan_truncated:
  description: Whether the key search stopped at O(max_files).
  returned: always
  type: bool
"""

import os
import pwd
import re
import shlex
import stat

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.gitlab_runner.plugins.module_utils.host_text import (
    clip as _clip,
    group_name as _group_name,
    user_name as _user_name,
)
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.files import read_head
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.installed_version import runner_version
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.policy import finding

KEY_SNIFF_BYTES = 64
KEY_SNIFF_MAX_SIZE = 64 * 1024
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
PSEUDO_FS = frozenset((
    "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs",
    "pstore", "bpf", "fusectl", "configfs", "mqueue", "hugetlbfs", "autofs", "binfmt_misc", "efivarfs",
    "selinuxfs", "rpc_pipefs", "nsfs",
))
PSEUDO_PREFIXES = ("/proc", "/sys", "/dev")
LOCALE_C = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}


def _mode(st):
    return "%04o" % stat.S_IMODE(st.st_mode)


# --- service -----------------------------------------------------------------

def user_from_argv(argv):
    """The value of ``--user``/``-u`` in a ``gitlab-runner run`` command line, or None."""
    user = None
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg in ("--user", "-user", "-u"):
            if index + 1 < len(argv):
                user = argv[index + 1]
        elif arg.startswith(("--user=", "-user=", "-u=")):
            user = arg.split("=", 1)[1]
    return user or None


def _split(command):
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def exec_start_from_systemctl(text):
    """The argv of the last ExecStart in ``systemctl show -p ExecStart`` output, or None."""
    argv = None
    for line in text.splitlines():
        if not line.startswith("ExecStart="):
            continue
        commands = re.findall(r"argv\[\]=(.*?)(?: ;|$)", line[len("ExecStart="):].strip())
        if commands:
            argv = _split(commands[-1])
    return argv


def _unit_files(service):
    unit = service if service.endswith(".service") else service + ".service"
    main = None
    for directory in UNIT_DIRS:
        candidate = os.path.join(directory, unit)
        if os.path.isfile(candidate):
            main = candidate
            break
    dropins = {}
    for directory in reversed(UNIT_DIRS):  # higher-priority directories override same names
        dropin_dir = os.path.join(directory, unit + ".d")
        try:
            names = os.listdir(dropin_dir)
        except OSError:
            continue
        for name in names:
            path = os.path.join(dropin_dir, name)
            if name.endswith(".conf") and os.path.isfile(path):
                dropins[name] = path
    return main, [dropins[name] for name in sorted(dropins)]


def _unit_lines(path):
    """(section, key, value) of a systemd unit file, with continuation lines joined."""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            raw = handle.read(1024 * 1024)
    except OSError:
        return
    section = None
    pending = ""
    for line in raw.splitlines():
        if pending:
            line = pending + " " + line.strip()
            pending = ""
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.endswith("\\"):
            pending = stripped[:-1].rstrip()
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
            continue
        if "=" in stripped:
            key, value = stripped.split("=", 1)
            yield section, key.strip(), value.strip()


def exec_start_from_unit_files(service):
    """(argv or None, found a unit file) from the unit file and its drop-ins."""
    main, dropins = _unit_files(service)
    if main is None and not dropins:
        return None, False
    command = None
    for path in ([main] if main else []) + dropins:
        for section, key, value in _unit_lines(path):
            if section == "Service" and key == "ExecStart":
                # An empty assignment resets the list; for the simple
                # service type GitLab Runner uses, the last one is what runs.
                command = value or None
    if command is None:
        return None, True
    # Strip systemd's prefixes (@, -, :, +, !, !!).
    command = re.sub(r"^[@\-:+!]+", "", command)
    return _split(command), True


def service_argv(module, service):
    """(argv or None, source) of the service's ExecStart."""
    systemctl = module.get_bin_path("systemctl")
    if systemctl:
        unit = service if service.endswith(".service") else service + ".service"
        rc, out, dummy = module.run_command([systemctl, "show", "-p", "ExecStart", "--", unit],
                                            check_rc=False, environ_update=LOCALE_C)
        if rc == 0:
            argv = exec_start_from_systemctl(out)
            if argv:
                return argv, "systemctl"
    argv, found = exec_start_from_unit_files(service)
    if argv:
        return argv, "unit file"
    return None, "unit file" if found else None


# --- users and permissions ---------------------------------------------------

class UserInfo(object):
    def __init__(self, name):
        self.name = name
        self.exists = False
        self.uid = self.gid = self.shell = self.home = None
        self.gids = []
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return
        self.exists = True
        self.uid, self.gid = entry.pw_uid, entry.pw_gid
        self.shell, self.home = entry.pw_shell, entry.pw_dir
        try:
            gids = os.getgrouplist(name, entry.pw_gid)
        except OSError:
            gids = [entry.pw_gid]
        self.gids = [entry.pw_gid] + [gid for gid in dict.fromkeys(gids) if gid != entry.pw_gid]

    def allowed(self, st, read_bit, group_bit, other_bit):
        """Whether the kernel grants the permission to this user (no ACLs)."""
        if self.uid == 0:
            # root may read anything and search any directory.
            return True
        if st.st_uid == self.uid:
            return bool(st.st_mode & read_bit)
        if st.st_gid in self.gids:
            return bool(st.st_mode & group_bit)
        return bool(st.st_mode & other_bit)

    def can_read(self, st):
        return self.allowed(st, stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH)

    def can_search(self, st):
        return self.allowed(st, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)

    def read_via(self, st):
        if self.uid == 0:
            return "root"
        if st.st_uid == self.uid:
            return "owner"
        if st.st_gid in self.gids:
            return "group %s" % _group_name(st.st_gid)
        return "other"


def _describe(st):
    return "mode %s owner %s:%s" % (_mode(st), _user_name(st.st_uid), _group_name(st.st_gid))


# --- checks ------------------------------------------------------------------

def check_config_dir(config_dir):
    out = []
    try:
        st = os.stat(config_dir)
    except OSError:
        return out
    if not stat.S_ISDIR(st.st_mode):
        return out
    if st.st_uid != 0 or st.st_mode & 0o077:
        out.append(finding("GR020", None, config_dir, "%s %s" % (config_dir, _describe(st))))
    try:
        names = sorted(os.listdir(config_dir))
    except OSError:
        return out
    for name in names:
        path = os.path.join(config_dir, name)
        try:
            lst = os.lstat(path)
            st = os.stat(path) if stat.S_ISLNK(lst.st_mode) else lst
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        if st.st_uid != 0 or st.st_mode & 0o066:
            via = " (symlink target)" if stat.S_ISLNK(lst.st_mode) else ""
            out.append(finding("GR020", None, path, "%s %s%s" % (path, _describe(st), via)))
    return out


def check_user(module, user, forbidden):
    """GR021 findings and the sudo answer (True, False or None)."""
    out = []
    if user.uid == 0:
        out.append(finding("GR021", None, "job user %s" % user.name, "%s has uid 0 (root)" % user.name))
    forbidden = set(forbidden)
    for gid in user.gids:
        name = _group_name(gid)
        if name in forbidden or (gid == 0 and "root" in forbidden):
            kind = "primary" if gid == user.gid else "supplementary"
            out.append(finding("GR021", None, "group %s" % name,
                               "%s is in group %s (%s)" % (user.name, name, kind)))
    sudo_rights = None
    sudo = module.get_bin_path("sudo")
    if sudo:
        rc, out_text, err_text = module.run_command([sudo, "-n", "-l", "-U", user.name],
                                                    check_rc=False, environ_update=LOCALE_C)
        text = (out_text or "") + "\n" + (err_text or "")
        if "may run the following commands" in text:
            sudo_rights = True
            lines = text.splitlines()
            start = next(i for i, line in enumerate(lines) if "may run the following commands" in line)
            commands = [line.strip() for line in lines[start + 1:] if line.strip()]
            out.append(finding("GR021", None, "sudo rights of %s" % user.name,
                               _clip("sudo -l: %s" % "; ".join(commands) if commands else "sudo -l lists commands")))
        elif "is not allowed to run sudo" in text:
            sudo_rights = False
        else:
            module.warn("Could not determine the sudo rights of %s (sudo -n -l -U exited %d: %s)"
                        % (user.name, rc, _clip(err_text or out_text, 200)))
    return out, sudo_rights


def check_home(user):
    out = []
    if not user.home:
        return out, None
    home_mode = None
    for path in (user.home, os.path.join(user.home, "builds")):
        try:
            st = os.stat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            continue
        if path == user.home:
            home_mode = _mode(st)
        if st.st_mode & 0o077 or st.st_uid != user.uid:
            out.append(finding("GR024", None, path, "%s %s" % (path, _describe(st))))
    return out, home_mode


def _pseudo_mounts():
    mounts = set()
    try:
        with open("/proc/self/mounts", "r", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) >= 3 and fields[2] in PSEUDO_FS:
                    # Mount points escape space, tab, newline and backslash in octal.
                    mounts.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1]))
    except OSError:
        pass
    return mounts


def _is_pseudo(path, pseudo_mounts):
    for prefix in PSEUDO_PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return True
    return path in pseudo_mounts


class KeyScanner(object):
    def __init__(self, user, max_files):
        self.user = user
        self.max_files = max_files
        self.files_scanned = 0
        self.truncated = False
        self.findings = []
        self._searchable = {}
        self._seen = set()
        self._pseudo = _pseudo_mounts()

    def _dir_searchable(self, path):
        """Whether the user can reach entries of ``path`` (search on it and all parents)."""
        if path in self._searchable:
            return self._searchable[path]
        parent = os.path.dirname(path)
        ok = True
        if parent != path:
            ok = self._dir_searchable(parent)
        if ok:
            try:
                ok = self.user.can_search(os.stat(path))
            except OSError:
                ok = False
        self._searchable[path] = ok
        return ok

    def scan(self, roots):
        for root in roots:
            if self.truncated:
                break
            root = os.path.realpath(root)
            if _is_pseudo(root, self._pseudo):
                continue
            try:
                st = os.lstat(root)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                self._check_file(os.path.dirname(root), os.path.basename(root))
                continue
            if not stat.S_ISDIR(st.st_mode):
                continue
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
                keep = []
                for name in sorted(dirnames):
                    sub = os.path.join(dirpath, name)
                    if _is_pseudo(sub, self._pseudo):
                        continue
                    try:
                        sub_st = os.lstat(sub)
                    except OSError:
                        continue
                    ident = ("dir", sub_st.st_dev, sub_st.st_ino)
                    if ident in self._seen:
                        continue
                    self._seen.add(ident)
                    keep.append(name)
                dirnames[:] = keep
                for name in sorted(filenames):
                    if self.files_scanned >= self.max_files:
                        self.truncated = True
                        return
                    self._check_file(dirpath, name)
                if self.truncated:
                    return

    def _check_file(self, dirpath, name):
        path = os.path.join(dirpath, name)
        try:
            st = os.lstat(path)
        except OSError:
            return
        if not stat.S_ISREG(st.st_mode):
            return  # symlinks, sockets, fifos, devices
        ident = (st.st_dev, st.st_ino)
        if ident in self._seen:
            return
        self._seen.add(ident)
        self.files_scanned += 1
        if not self.user.can_read(st) or not self._dir_searchable(dirpath):
            return
        if not self._looks_like_key(dirpath, name, st, path):
            return
        self.findings.append(finding(
            "GR025", None, path,
            "%s %s, readable by %s via %s" % (path, _describe(st), self.user.name, self.user.read_via(st))))

    @staticmethod
    def _looks_like_key(dirpath, name, st, path):
        # id_rsa, id_ed25519, id_deploy, ... but not id_map.py: a name with an
        # extension counts only inside a .ssh directory (the content check
        # below still catches id_rsa.bak and the like).
        if name.startswith("id_") and not name.endswith(".pub") \
                and ("." not in name or os.path.basename(dirpath) == ".ssh"):
            return True
        if name.endswith("_key") and (dirpath == "/etc/ssh" or dirpath.startswith("/etc/ssh/")):
            return True
        if st.st_size > KEY_SNIFF_MAX_SIZE or st.st_size == 0:
            return False
        head = read_head(path, KEY_SNIFF_BYTES, follow_symlinks=False)
        if head is None:
            return False
        return b"PRIVATE KEY-----" in head


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            config_dir=dict(type="path", default="/etc/gitlab-runner"),
            service_name=dict(type="str", default="gitlab-runner"),
            job_user=dict(type="str"),
            forbidden_groups=dict(type="list", elements="str",
                                  default=["docker", "sudo", "wheel", "adm", "lxd", "root", "disk", "shadow"]),
            # Directories searched for keys, not a secret ("key" in the name is what the sanity test flags).
            ssh_key_paths=dict(type="list", elements="path", no_log=False,
                               default=["/root", "/home", "/etc/ssh", "/srv", "/opt", "/var/lib/gitlab-runner"]),
            max_files=dict(type="int", default=20000),
            check_service_user=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["max_files"] < 0:
        module.fail_json(msg="max_files must not be negative, got %d" % params["max_files"])
    try:
        result = audit(module, params)
    except Exception as exc:
        module.fail_json(msg="runner_host_audit failed: %s: %s" % (type(exc).__name__, _clip(exc, 300)))
    module.exit_json(**result)


def audit(module, params):
    findings = []
    service = params["service_name"]

    findings.extend(check_config_dir(params["config_dir"]))

    argv, argv_source = service_argv(module, service)
    exec_start_user = user_from_argv(argv) if argv else None
    if params["job_user"]:
        name, source = params["job_user"], "option"
    elif exec_start_user:
        name, source = exec_start_user, "service"
    else:
        name, source = "gitlab-runner", "default"
    user = UserInfo(name)

    home_mode = None
    sudo_rights = None
    scanner = KeyScanner(user, params["max_files"])
    if user.exists:
        user_findings, sudo_rights = check_user(module, user, params["forbidden_groups"])
        findings.extend(user_findings)
        home_findings, home_mode = check_home(user)
        findings.extend(home_findings)
        scanner.scan(params["ssh_key_paths"])
        findings.extend(scanner.findings)
        if scanner.truncated:
            module.warn("The SSH key search stopped after max_files=%d files; raise max_files or narrow "
                        "ssh_key_paths to search everything" % params["max_files"])

    if params["check_service_user"] and argv and not exec_start_user:
        findings.append(finding(
            "GR026", None, "%s ExecStart" % service,
            _clip("ExecStart has no --user (from %s): %s" % (argv_source, " ".join(argv)))))

    version, version_evidence = runner_version(module)
    findings.append(finding("GR027", None, "gitlab-runner", version_evidence))

    return dict(
        changed=False,
        findings=findings,
        job_user=dict(
            name=user.name,
            exists=user.exists,
            uid=user.uid,
            gid=user.gid,
            groups=[_group_name(gid) for gid in user.gids],
            shell=user.shell,
            home=user.home,
            home_mode=home_mode,
        ),
        job_user_source=source,
        service_exec_start=_clip(" ".join(argv), 1000) if argv else None,
        service_exec_start_user=exec_start_user,
        sudo_rights=sudo_rights,
        runner_version=version,
        files_scanned=scanner.files_scanned,
        scan_truncated=scanner.truncated,
    )


def main():
    run_module()


if __name__ == "__main__":
    main()
