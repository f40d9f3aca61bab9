"""Helpers of the independent host baseline (not a test module): shell commands through testinfra."""

import shlex
import tomllib

# Executors whose jobs run in Docker containers (config.toml [runners.docker]).
DOCKER_EXECUTORS = ("docker", "docker-windows", "docker+machine", "docker-autoscaler")


def q(value):
    """Quote one shell word."""
    return shlex.quote(str(value))


def run(host, command):
    """Run a shell command; return (rc, stdout, stderr), the outputs stripped."""
    result = host.run(command)
    return result.rc, result.stdout.strip(), result.stderr.strip()


def stat(host, path):
    """(mode as int, owner, group) of ``path``, or None when it does not exist."""
    rc, out, _err = run(host, "stat -c '%%a %%U %%G' -- %s" % q(path))
    if rc != 0:
        return None
    mode, owner, group = out.split()
    return int(mode, 8), owner, group


def describe(seen):
    """A stat() result for a message."""
    return "missing" if seen is None else "%04o %s:%s" % seen


def as_user(user, command):
    """``command`` (for /bin/sh) run as ``user`` by root."""
    return "runuser -u %s -- /bin/sh -c %s" % (q(user), q(command))


def read_config(host, expected):
    """(text, None) of config.toml, or (None, why) when it cannot be read."""
    handle = host.file(expected.config_file)
    if not handle.exists:
        return None, "%s does not exist" % expected.config_file
    try:
        return handle.content_string, None
    except (AssertionError, RuntimeError, UnicodeDecodeError) as err:
        return None, "%s cannot be read: %s" % (expected.config_file, err)


def parse_config(text):
    """(document, None), or (None, why) when ``text`` is not TOML."""
    try:
        return tomllib.loads(text), None
    except tomllib.TOMLDecodeError as err:
        return None, "config.toml is not valid TOML: %s" % err


def docker_runners(document):
    """The [[runners]] of a docker-type executor, as (name, runner) pairs."""
    runners = document.get("runners", [])
    if not isinstance(runners, list):
        return []
    return [(str(runner.get("name", "#%d" % index)), runner) for index, runner in enumerate(runners)
            if isinstance(runner, dict) and runner.get("executor") in DOCKER_EXECUTORS]


def uses_local_engine(runner):
    """A docker-executor runner whose jobs run on this host's own Docker engine."""
    if runner.get("executor") != "docker":
        return False
    docker = runner.get("docker", {})
    engine = docker.get("host", "") if isinstance(docker, dict) else ""
    return not engine or str(engine).startswith("unix://")
