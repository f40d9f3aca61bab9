"""The program ``runner_job_probe`` runs inside its job and service containers.

``SCRIPT`` is passed to the image's ``python3`` on the command line
(``python3 -I -c SCRIPT OPTIONS_JSON``), so nothing is copied into the
container and any image with Python 3.6+ can serve as the probe image. It
only *observes*: it reads ``/proc``, tries operations that a hardened
container must refuse (creating a raw socket, ``mknod`` in a private
temporary directory, running a setuid-root helper as an unprivileged uid),
connects to the Unix sockets it finds without sending a byte, and undoes
whatever succeeded. It sends no network packet; the workload check's only
network step is a ping of the loopback address.

It prints one JSON object on stdout; the module interprets it
(``runner_job_probe.findings_from_probe``), so the interpretation is unit
tested on the controller and the script stays a plain fact gatherer.
"""

SCRIPT = r'''
import errno, json, os, socket, stat, subprocess, sys, tempfile, time

SETUID_HELPER = "/usr/local/libexec/hgr-probe/suid-id"
NOBODY = 65534
MAX_WALK = 20000
MAX_DEPTH = 8
MAX_LIST = 40
VIRTUAL_FS = ("proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "securityfs", "debugfs", "tracefs",
              "pstore", "bpf", "configfs", "fusectl", "hugetlbfs", "binfmt_misc", "autofs", "efivarfs")
SOCKET_NAMES = ("docker", "containerd", "private", "system_bus_socket", "podman", "buildkitd", "crio")
RUNTIME_PROCESSES = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "kubelet",
                     "gitlab-runner", "sshd", "systemd-journal", "crio", "podman")
# Device nodes every Docker container has.
DEFAULT_DEVICES = ("console", "full", "null", "ptmx", "random", "tty", "urandom", "zero")


def clip(text, limit=200):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def oserror(exc):
    if isinstance(exc, OSError) and exc.errno:
        text = "%s (%s)" % (errno.errorcode.get(exc.errno, exc.errno), clip(exc.strerror or "", 80))
        return "%s: %s" % (exc.filename, text) if isinstance(exc.filename, str) else text
    return clip("%s: %s" % (type(exc).__name__, exc))


def read(path, limit=65536):
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except (OSError, ValueError):
        return None


def status():
    out = {}
    for line in (read("/proc/self/status") or "").splitlines():
        key, _, value = line.partition(":")
        if key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Uid", "Gid"):
            out[key] = value.strip()
    return out


def unescape(path):
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = "", 0
    while i < len(path):
        if path[i] == "\\" and path[i + 1:i + 4].isdigit():
            out += chr(int(path[i + 1:i + 4], 8))
            i += 4
        else:
            out += path[i]
            i += 1
    return out


def mounts():
    out = []
    for line in (read("/proc/self/mountinfo", 1048576) or "").splitlines():
        left, _, right = line.partition(" - ")
        fields, extra = left.split(), right.split()
        if len(fields) < 6 or not extra:
            continue
        out.append({"root": unescape(fields[3]), "point": unescape(fields[4]),
                    "options": fields[5].split(","), "fstype": extra[0]})
    return out


def probe_setuid():
    result = {"helper": SETUID_HELPER, "ran_as": None, "euid": None, "error": None,
              "needs_unprivileged_user": False}
    try:
        st = os.stat(SETUID_HELPER)
    except OSError as exc:
        result["error"] = "helper missing: %s" % oserror(exc)
        return result
    if st.st_uid != 0 or not st.st_mode & stat.S_ISUID:
        result["error"] = "helper is not setuid root (mode %o, owner %d)" % (stat.S_IMODE(st.st_mode), st.st_uid)
        return result
    kwargs = {}
    if os.geteuid() == 0:
        failure = try_drop()
        if failure:
            # root without CAP_SETUID/CAP_SETGID cannot become another user:
            # the module repeats this probe in a container started as 65534.
            result["needs_unprivileged_user"] = True
            result["error"] = "cannot become uid 65534 here: " + failure
            return result
        kwargs = {"preexec_fn": drop_to_nobody}
    try:
        proc = subprocess.run([SETUID_HELPER, "-u"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=10, **kwargs)
    except (OSError, subprocess.SubprocessError) as exc:
        result["error"] = oserror(exc)
        return result
    result["ran_as"] = NOBODY if os.geteuid() == 0 else os.getuid()
    text = proc.stdout.decode("ascii", "replace").strip()
    if proc.returncode == 0 and text.isdigit():
        result["euid"] = int(text)
    else:
        result["error"] = clip("exit %d: %s" % (proc.returncode, proc.stderr.decode("utf-8", "replace")))
    return result


def drop_to_nobody():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def try_drop():
    """None when a child can become uid/gid 65534, else which call failed and why."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        message = b""
        for name, call in (("setgroups([])", lambda: os.setgroups([])), ("setgid(65534)", lambda: os.setgid(NOBODY)),
                           ("setuid(65534)", lambda: os.setuid(NOBODY))):
            try:
                call()
            except OSError as exc:
                message = ("%s: %s" % (name, oserror(exc))).encode()
                break
        os.write(write_end, message)
        os._exit(0)
    os.close(write_end)
    data = b""
    while True:
        chunk = os.read(read_end, 4096)
        if not chunk:
            break
        data += chunk
    os.close(read_end)
    os.waitpid(pid, 0)
    return data.decode("utf-8", "replace") or None


def probe_raw_socket():
    # Only created and closed: nothing is sent anywhere.
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    except OSError as exc:
        return {"ok": False, "error": oserror(exc)}
    sock.close()
    return {"ok": True, "error": None}


def probe_mknod():
    directory = tempfile.mkdtemp(prefix="hgr-probe-")
    path = os.path.join(directory, "null")
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except OSError as exc:
        return {"ok": False, "error": oserror(exc)}
    finally:
        for leftover in (path, directory):
            try:
                (os.unlink if leftover == path else os.rmdir)(leftover)
            except OSError:
                pass
    return {"ok": True, "error": None}


def is_candidate(name):
    return name.endswith(".sock") or name.endswith(".socket") or name in SOCKET_NAMES


def try_connect(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(1.0)
    try:
        sock.connect(path)
        return True, None
    except OSError as exc:
        return False, oserror(exc)
    finally:
        sock.close()


def probe_sockets(mount_list):
    roots = ["/run", "/var/run", "/tmp", "/var/tmp", "/var/lib", "/home", "/root", "/builds", "/cache",
             "/srv", "/mnt", "/opt"]
    for mount in mount_list:
        if mount["fstype"] not in VIRTUAL_FS and mount["point"] != "/" \
                and not mount["point"].startswith(("/proc", "/sys", "/dev")):
            roots.append(mount["point"])
    seen_dirs, found, entries, truncated = set(), [], 0, False
    walked = []
    for root in dict.fromkeys(roots):
        try:
            st = os.lstat(root)
        except OSError:
            continue
        if stat.S_ISSOCK(st.st_mode):  # a socket mounted as a file
            found.append(root)
            continue
        if not stat.S_ISDIR(st.st_mode):
            continue
        walked.append(root)
        stack = [(root, 0)]
        while stack:
            directory, depth = stack.pop()
            try:
                dst = os.lstat(directory)
            except OSError:
                continue
            key = (dst.st_dev, dst.st_ino)
            if key in seen_dirs:
                continue
            seen_dirs.add(key)
            try:
                names = os.listdir(directory)
            except OSError:
                continue
            for name in names:
                entries += 1
                if entries > MAX_WALK:
                    truncated = True
                    break
                path = os.path.join(directory, name)
                try:
                    est = os.lstat(path)
                except OSError:
                    continue
                if stat.S_ISSOCK(est.st_mode):
                    if is_candidate(name):
                        found.append(path)
                elif stat.S_ISDIR(est.st_mode) and depth < MAX_DEPTH \
                        and not path.startswith(("/proc/", "/sys/", "/dev/")):
                    stack.append((path, depth + 1))
            if truncated:
                break
        if truncated:
            break
    out = []
    for path in list(dict.fromkeys(found))[:MAX_LIST]:
        connected, error = try_connect(path)
        out.append({"path": path, "connect": connected, "error": error})
    return {"found": out, "entries": entries, "truncated": truncated, "roots": walked[:MAX_LIST]}


def probe_devices():
    block, extra = [], []
    for directory in ("/dev", "/dev/block", "/dev/mapper", "/dev/dri", "/dev/snd", "/dev/net", "/dev/input",
                      "/dev/bus/usb", "/dev/disk/by-id"):
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not (stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode)):
                continue
            if directory == "/dev" and name in DEFAULT_DEVICES:
                continue
            if stat.S_ISBLK(st.st_mode):
                block.append(path)
            extra.append(path)
    return {"block": block[:MAX_LIST], "block_count": len(block), "extra": extra[:MAX_LIST],
            "extra_count": len(extra)}


def probe_processes():
    seen, count = set(), 0
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        pids = []
    for pid in pids[:4096]:
        count += 1
        comm = (read("/proc/%s/comm" % pid, 64) or "").strip()
        if comm in RUNTIME_PROCESSES:
            seen.add(comm)
    return {"count": count, "runtime": sorted(seen)}


def run(cmd, cwd=None, timeout=60, env=None):
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                          env=env)
    text = proc.stdout.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        lines = [line for line in text.splitlines() if line.strip()]
        raise RuntimeError("%s: exit %d: %s" % (cmd[0], proc.returncode, " | ".join(lines[-3:]) or "no output"))
    return text


def writable_dir(candidates):
    for path in candidates:
        if os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK):
            return tempfile.mkdtemp(prefix="hgr-probe-", dir=path)
    return tempfile.mkdtemp(prefix="hgr-probe-")


def workload():
    steps = []
    base = writable_dir(["/builds"])
    cache = writable_dir(["/cache"]) if os.path.isdir("/cache") else base
    env = dict(os.environ, HOME=base, GIT_CONFIG_NOSYSTEM="1", LC_ALL="C")

    def step(name, function):
        start = time.time()
        try:
            detail = function()
            steps.append({"step": name, "ok": True, "detail": clip(detail or "ok"), "error": None})
        except Exception as exc:  # every failure is a result, never a crash
            steps.append({"step": name, "ok": False, "detail": None,
                          "error": oserror(exc) if isinstance(exc, OSError) else clip(exc, 300)})
        steps[-1]["seconds"] = round(time.time() - start, 2)

    def git():
        src, dst = os.path.join(base, "src"), os.path.join(base, "clone")
        run(["git", "init", "-q", src], env=env)
        with open(os.path.join(src, "README"), "w") as handle:
            handle.write("probe\n")
        run(["git", "-C", src, "add", "README"], env=env)
        run(["git", "-C", src, "-c", "user.name=probe", "-c", "user.email=probe@example.invalid",
             "commit", "-q", "-m", "probe"], env=env)
        run(["git", "clone", "-q", "--no-local", src, dst], env=env)
        return "cloned %s" % run(["git", "-C", dst, "rev-parse", "--short", "HEAD"], env=env)

    def interpreter():
        return "python3 printed " + run([sys.executable, "-c", "print(sum(range(10)))"])

    def build_dir():
        path = os.path.join(base, "artifact.bin")
        data = os.urandom(1 << 20)
        with open(path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        with open(path, "rb") as handle:
            if handle.read() != data:
                raise RuntimeError("read back different data")
        return "1 MiB written and read back in %s" % base

    def cache_archive():
        archive = os.path.join(cache, "cache.tar.gz")
        out = os.path.join(base, "extracted")
        os.mkdir(out)
        run(["tar", "czf", archive, "-C", base, "artifact.bin"])
        run(["tar", "xzf", archive, "-C", out])
        return "%s created and extracted" % archive

    def chown():
        path = os.path.join(base, "owned")
        open(path, "w").close()
        os.chown(path, 1000, 1000)
        return "chown 1000:1000 ok"

    def apt_sandbox():
        repo, lists = os.path.join(base, "repo"), os.path.join(base, "lists")
        os.mkdir(repo)
        os.mkdir(lists)
        open(os.path.join(repo, "Packages"), "w").close()
        import hashlib
        with open(os.path.join(repo, "Release"), "w") as handle:
            handle.write("Date: %s\nSHA256:\n %s 0 Packages\n" % (
                time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime()), hashlib.sha256(b"").hexdigest()))
        sources = os.path.join(base, "sources.list")
        with open(sources, "w") as handle:
            handle.write("deb [trusted=yes] file:%s ./\n" % repo)
        text = run(["apt-get", "update", "-o", "Dir::Etc::sourcelist=" + sources,
                    "-o", "Dir::Etc::sourceparts=/nonexistent", "-o", "Dir::State::Lists=" + lists,
                    "-o", "Dir::Cache=" + os.path.join(base, "apt-cache"), "-o", "Debug::NoLocking=1"],
                   env=env, timeout=60)
        errors = [line for line in text.splitlines() if line.startswith("E:")]
        if errors:
            raise RuntimeError(" | ".join(errors[:3]))
        return "apt-get update of a local file: repository ok"

    def drop_syscalls():
        failure = try_drop()
        if failure:
            raise RuntimeError(failure)
        return "setgroups([]), setgid(65534), setuid(65534) ok"

    def su():
        return "su nobody: id -u = " + run(["su", "-s", "/bin/sh", "nobody", "-c", "id -u"], env=env)

    def setcap():
        path = os.path.join(base, "tool")
        with open("/bin/true", "rb") as source, open(path, "wb") as target:
            target.write(source.read())
        os.chmod(path, 0o755)
        run(["setcap", "cap_net_bind_service+ep", path])
        return "setcap cap_net_bind_service+ep ok"

    def chroot():
        run(["chroot", "/", "/bin/true"])
        return "chroot / ok"

    def mknod():
        os.mknod(os.path.join(base, "null"), stat.S_IFCHR | 0o600, os.makedev(1, 3))
        return "mknod c 1 3 ok"

    def ping():
        # loopback only, one packet
        return run(["ping", "-c", "1", "-W", "2", "127.0.0.1"], timeout=15).splitlines()[-1]

    step("git init, commit and clone from a local repository", git)
    step("run an interpreter (python3 -c)", interpreter)
    step("write files in the build directory", build_dir)
    step("create and extract a cache archive (tar czf, tar xzf)", cache_archive)
    step("chown a file to another uid", chown)
    step("apt-get update (apt drops to its _apt sandbox user)", apt_sandbox)
    step("drop to another uid (setgroups, setgid, setuid)", drop_syscalls)
    step("su to another user", su)
    step("set file capabilities (setcap)", setcap)
    step("chroot", chroot)
    step("create a device node (mknod)", mknod)
    step("ping the loopback address (ping -c1 127.0.0.1)", ping)
    return steps


def main():
    options = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    out = {"version": 1, "kind": options.get("kind"), "uid": os.getuid(), "euid": os.geteuid(),
           "gid": os.getgid(), "groups": os.getgroups()[:MAX_LIST]}
    out["setuid"] = probe_setuid()
    if options.get("kind") != "setuid":
        mount_list = mounts()
        out["status"] = status()
        out["cap_last_cap"] = None
        text = read("/proc/sys/kernel/cap_last_cap")
        if text and text.strip().isdigit():
            out["cap_last_cap"] = int(text.strip())
        out["raw_socket"] = probe_raw_socket()
        out["mknod"] = probe_mknod()
        out["sockets"] = probe_sockets(mount_list)
        sysfs = [m for m in mount_list if m["point"] == "/sys"]
        proc_sys = [m for m in mount_list if m["point"] == "/proc/sys"]
        out["sysfs"] = {"mounted": bool(sysfs), "rw": bool(sysfs) and "rw" in sysfs[-1]["options"]}
        out["proc_sys"] = {"separate_ro_mount": bool(proc_sys) and "ro" in proc_sys[-1]["options"]}
        out["devices"] = probe_devices()
        out["processes"] = probe_processes()
        if options.get("workload"):
            out["workload"] = workload()
    sys.stdout.write("\n" + json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
'''
