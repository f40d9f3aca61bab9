"""The program ``network_isolation_probe`` runs in each job context.

``SCRIPT`` is passed to a ``python3`` on the command line
(``python3 -I -c SCRIPT OPTIONS_JSON``): in a throwaway container on the job
network, and on the host for the shell job user. Nothing is copied anywhere,
so any image with Python 3.6+ can serve.

Given ``{"user": ..., "timeout": ..., "targets": [...], "dns": [...]}`` it
drops to ``user`` when asked (supplementary groups of the user, then gid, then
uid, as a login shell of that user would have them, and checks the drop
held), resolves each target's host in that context, tries a TCP connect, or a
UDP datagram and waits for an answer, to each address with the timeout, and
resolves each DNS name. It only *records*: the outcome of each attempt is the
raw errno name (or a timeout, or success) and the time it took. The module
classifies them (``network_isolation_probe.classify``), so the interpretation
is unit tested on the controller and the script stays a plain fact gatherer.

It sends nothing but a TCP SYN (closed again at once, no byte of payload) or
one UDP datagram (a DNS query for the root zone's NS records to port 53, a
single zero byte elsewhere) to the addresses it is given.

It prints one JSON object on stdout, then exits without waiting for a
resolver that still hangs.
"""

SCRIPT = r'''
import errno, json, os, socket, sys, threading, time
# Loaded before the drop to the job user, who may not be able to read this Python's library.
import encodings.idna, pwd  # noqa: F401

MAX_ADDRESSES = 4
# DNS query: id 0x4867, recursion desired, one question: ". IN NS".
DNS_QUERY = b"\x48\x67\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x01"


def err(exc):
    out = {"errno": None, "error": "%s: %s" % (type(exc).__name__, exc)}
    if isinstance(exc, socket.timeout):
        out["timeout"] = True
    elif isinstance(exc, socket.gaierror):
        out["gai"] = {socket.EAI_NONAME: "EAI_NONAME", socket.EAI_AGAIN: "EAI_AGAIN",
                      socket.EAI_FAIL: "EAI_FAIL"}.get(exc.args[0], str(exc.args[0]))
    elif isinstance(exc, OSError) and exc.errno:
        out["errno"] = errno.errorcode.get(exc.errno, str(exc.errno))
    return out


def drop(user):
    entry = pwd.getpwuid(int(user)) if str(user).isdigit() else pwd.getpwnam(user)
    if os.getuid() != entry.pw_uid or os.geteuid() != entry.pw_uid:
        groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
        os.setgroups(groups)
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
    if os.getuid() != entry.pw_uid or os.geteuid() != entry.pw_uid or os.getegid() != entry.pw_gid:
        raise RuntimeError("could not become %s" % user)
    os.environ.update(HOME=entry.pw_dir, USER=entry.pw_name, LOGNAME=entry.pw_name)
    try:
        os.chdir("/")
    except OSError:
        pass


def identity():
    try:
        name = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        name = None
    return {"uid": os.geteuid(), "gid": os.getegid(), "groups": sorted(os.getgroups()), "user": name}


def attempt(family, sockaddr, proto, port, timeout):
    out = {"address": sockaddr[0], "ok": False, "timeout": False, "errno": None, "error": None}
    start = time.monotonic()
    sock = None
    try:
        sock = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
        sock.settimeout(timeout)
        sock.connect(sockaddr)
        if proto == "udp":
            sock.send(DNS_QUERY if port == 53 else b"\x00")
            data = sock.recv(4096)
            out["answer_bytes"] = len(data)
        out["ok"] = True
    except Exception as exc:
        out.update(err(exc))
    finally:
        out["elapsed"] = round(time.monotonic() - start, 4)
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
    return out


def probe_target(target, timeout):
    host, port, proto = target["host"], int(target["port"]), target.get("proto", "tcp")
    out = {"index": target["index"], "addresses": [], "attempts": [], "resolve": None}
    start = time.monotonic()
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    except Exception as exc:
        out["resolve"] = dict(err(exc), elapsed=round(time.monotonic() - start, 4))
        return out
    seen = []
    for family, _, _, _, sockaddr in infos:
        if sockaddr[0] not in [s[1][0] for s in seen]:
            seen.append((family, sockaddr))
    out["addresses"] = [s[1][0] for s in seen]
    for family, sockaddr in seen[:MAX_ADDRESSES]:
        out["attempts"].append(attempt(family, sockaddr, proto, port, timeout))
    return out


def resolve(name):
    start = time.monotonic()
    try:
        infos = socket.getaddrinfo(name, None, 0, socket.SOCK_STREAM)
        out = {"name": name, "ok": True, "addresses": sorted(set(i[4][0] for i in infos))}
    except Exception as exc:
        out = dict(err(exc), name=name, ok=False)
    out["elapsed"] = round(time.monotonic() - start, 4)
    return out


def run_all(jobs, limit):
    """Run every job in its own thread; a job still running after ``limit`` seconds is reported."""
    results = [None] * len(jobs)

    def work(i, job):
        try:
            results[i] = job()
        except Exception as exc:
            results[i] = {"crashed": "%s: %s" % (type(exc).__name__, exc)}

    threads = [threading.Thread(target=work, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.daemon = True
        thread.start()
    deadline = time.monotonic() + limit
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return results


def main():
    opts = json.loads(sys.argv[1])
    out = {"version": 1, "user": opts.get("user")}
    if opts.get("user") is not None:
        try:
            drop(opts["user"])
        except Exception as exc:
            out["drop_error"] = "%s: %s" % (type(exc).__name__, exc)
            print(json.dumps(out))
            return
    out["identity"] = identity()
    timeout = float(opts.get("timeout", 3))
    targets = opts.get("targets") or []
    names = opts.get("dns") or []
    # Name resolution has no timeout of its own (resolv.conf's), so bound each whole job.
    limit = float(opts.get("limit", timeout * (MAX_ADDRESSES + 1) + 15))
    jobs = [(lambda t=t: probe_target(t, timeout)) for t in targets] + [(lambda n=n: resolve(n)) for n in names]
    results = run_all(jobs, limit)
    out["targets"] = [r if r is not None else {"index": t["index"], "hung": True}
                      for t, r in zip(targets, results[:len(targets)])]
    out["dns"] = [r if r is not None else {"name": n, "ok": False, "hung": True, "errno": None}
                  for n, r in zip(names, results[len(targets):])]
    print(json.dumps(out))


main()
sys.stdout.flush()
os._exit(0)
'''
