"""Tests for the GitLab Runner ``config.toml`` key lists and their checker."""

import copy
import re
import tomllib

import pytest

from ansible_collections.hardened.gitlab_runner.plugins.module_utils import (
    runner_config_schema as schema,
)
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config_schema import (
    ARRAY_SECTIONS,
    FEATURE_FLAG_PATTERN,
    FEATURE_FLAGS_SECTION,
    KNOWN_FEATURE_FLAGS,
    OPEN_SECTIONS,
    SECTIONS,
    format_key_path,
    unknown_keys,
)

FULL_CONFIG = r'''
concurrent = 8
check_interval = 3
log_level = "info"
log_format = "json"
shutdown_timeout = 30
connection_max_age = "15m"
listen_address = "127.0.0.1:9252"

[labels]
team = "platform"

[session_server]
  listen_address = "[::]:8093"
  advertise_address = "runner.example.com:8093"
  session_timeout = 1800

[[runners]]
  name = "docker-1"
  url = "https://gitlab.example.com/"
  id = 42
  token = "glrt-REDACTED"
  token_obtained_at = 2024-01-01T00:00:00Z
  token_expires_at = 0001-01-01T00:00:00Z
  tls-ca-file = "/etc/gitlab-runner/certs/ca.crt"
  executor = "docker"
  limit = 4
  request_concurrency = 2
  output_limit = 8192
  environment = ["GIT_DEPTH=10"]
  builds_dir = "/builds"
  cache_dir = "/cache"
  pre_get_sources_script = "echo pre"
  debug_trace_disabled = true
  unhealthy_requests_limit = 5
  unhealthy_interval = "1h"
  job_status_final_update_retry_limit = 3
  [runners.labels]
    "Any Label.Here" = "x"
  [runners.feature_flags]
    FF_NETWORK_PER_BUILD = true
    FF_USE_FASTZIP = true
    FF_SCRIPT_SECTIONS = false
    FF_ENABLE_JOB_CLEANUP = true
  [runners.custom_build_dir]
    enabled = false
  [runners.cache]
    Type = "s3"
    Path = "runner"
    Shared = false
    MaxUploadedArchiveSize = 0
    [runners.cache.s3]
      ServerAddress = "s3.example.com"
      BucketName = "runner-cache"
      BucketLocation = "eu-west-1"
      AuthenticationType = "iam"
      Insecure = false
      ServerSideEncryption = "S3"
    [runners.cache.gcs]
    [runners.cache.azure]
  [runners.docker]
    host = "unix:///run/docker.sock"
    tls_verify = false
    image = "debian:12"
    privileged = false
    services_privileged = false
    disable_entrypoint_overwrite = true
    oom_kill_disable = false
    disable_cache = false
    user = "1000:1000"
    allowed_users = ["1000:1000"]
    cap_add = []
    cap_drop = ["ALL"]
    security_opt = ["no-new-privileges:true"]
    userns_mode = "host"
    pid_mode = ""
    ipcmode = "private"
    pull_policy = ["always"]
    allowed_pull_policies = ["always", "if-not-present"]
    allowed_images = ["debian:*", "registry.example.com/**/*"]
    allowed_services = ["postgres:*"]
    allowed_privileged_images = []
    allowed_privileged_services = []
    volumes = ["/cache"]
    network_mode = "bridge"
    dns = ["192.0.2.53"]
    extra_hosts = ["gitlab.example.com:192.0.2.10"]
    shm_size = 67108864
    memory = "4g"
    memory_swap = "4g"
    cpus = "2"
    wait_for_services_timeout = 30
    services_limit = 2
    helper_image_flavor = "ubuntu"
    enable_ipv6 = false
    network_mtu = 1450
    [runners.docker.sysctls]
      "net.ipv4.ip_forward" = "0"
    [runners.docker.tmpfs]
      "/tmp" = "rw,noexec,nosuid"
    [runners.docker.ulimit]
      nofile = "1024:2048"
    [runners.docker.container_labels]
      "com.example.owner" = "ci"
    [[runners.docker.services]]
      name = "postgres:16"
      alias = "db"
      environment = ["POSTGRES_PASSWORD=x"]
    [[runners.docker.services]]
      name = "redis:7"
      command = ["redis-server", "--save", ""]
      entrypoint = ["docker-entrypoint.sh"]

[[runners]]
  name = "ssh-1"
  url = "https://gitlab.example.com/"
  token = "glrt-REDACTED-2"
  executor = "ssh"
  shell = "bash"
  [runners.ssh]
    host = "build.example.com"
    port = "22"
    user = "ci"
    identity_file = "/etc/gitlab-runner/id_ed25519"
    disable_strict_host_key_checking = false
    known_hosts_file = "/etc/gitlab-runner/known_hosts"
'''


def load_full():
    """Return the realistic configuration, freshly parsed."""
    return tomllib.loads(FULL_CONFIG)


def test_full_config_has_no_unknown_keys():
    assert unknown_keys(load_full()) == []
    assert unknown_keys(load_full(), strict_case=False) == []


def test_empty_document():
    assert unknown_keys({}) == []


# Each case: (where to put the key, the misspelt key, the expected path).
TYPOS = [
    ((), "concurent", ("concurent",)),
    (("session_server",), "session_timout",
     ("session_server", "session_timout")),
    (("runners", 0), "excutor", ("runners", "0", "excutor")),
    (("runners", 0, "docker"), "privilegd",
     ("runners", "0", "docker", "privilegd")),
    (("runners", 0, "docker"), "cap_drops",
     ("runners", "0", "docker", "cap_drops")),
    (("runners", 0, "docker"), "pull_polcy",
     ("runners", "0", "docker", "pull_polcy")),
    (("runners", 0, "docker"), "helper_image_autoset_arch_and_os",
     ("runners", "0", "docker", "helper_image_autoset_arch_and_os")),
    (("runners", 0, "feature_flags"), "FF_NETWORK_PER_BUILDS",
     ("runners", "0", "feature_flags", "FF_NETWORK_PER_BUILDS")),
    (("runners", 0, "feature_flags"), "ff_network_per_build",
     ("runners", "0", "feature_flags", "ff_network_per_build")),
    (("runners", 0, "feature_flags"), "FF_USE_NEW_BASH_EVAL_STRATEGY",
     ("runners", "0", "feature_flags", "FF_USE_NEW_BASH_EVAL_STRATEGY")),
    (("runners", 0, "cache", "s3"), "BucketNmae",
     ("runners", "0", "cache", "s3", "BucketNmae")),
    (("runners", 0, "cache"), "ServerAddress",
     ("runners", "0", "cache", "ServerAddress")),
    (("runners", 0, "docker", "services", 1), "entrypiont",
     ("runners", "0", "docker", "services", "1", "entrypiont")),
    (("runners", 1), "tls_ca_file", ("runners", "1", "tls_ca_file")),
    (("runners", 1, "ssh"), "identityfile",
     ("runners", "1", "ssh", "identityfile")),
    (("runners", 1, "ssh"), "connect_timeout",
     ("runners", "1", "ssh", "connect_timeout")),
]


def _put(document, where, key, value=True):
    """Set ``key`` in the table ``where`` points to; return the document."""
    node = document
    for step in where:
        node = node[step]
    node[key] = value
    return document


@pytest.mark.parametrize(("where", "key", "path"), TYPOS,
                         ids=[typo[1] for typo in TYPOS])
def test_typo_is_reported_with_its_path(where, key, path):
    document = _put(load_full(), where, key)
    assert unknown_keys(document) == [path]
    assert unknown_keys(document, strict_case=False) == [path]


def test_typos_in_toml_text_are_all_reported_in_order():
    text = FULL_CONFIG.replace("\n    privileged = false",
                               "\n    privilegd = false")
    text = text.replace("cap_drop =", "cap_drops =")
    text = text.replace("pull_policy =", "pull_polcy =")
    text = text.replace("FF_NETWORK_PER_BUILD =", "FF_NETWORK_PER_BUILDS =")
    text = text.replace("BucketName =", "Bucketname_ =")
    text = text.replace('alias = "db"', 'alais = "db"')
    text = text.replace("concurrent = 8", "concurent = 8")
    assert unknown_keys(tomllib.loads(text)) == [
        ("concurent",),
        ("runners", "0", "feature_flags", "FF_NETWORK_PER_BUILDS"),
        ("runners", "0", "cache", "s3", "Bucketname_"),
        ("runners", "0", "docker", "privilegd"),
        ("runners", "0", "docker", "cap_drops"),
        ("runners", "0", "docker", "pull_polcy"),
        ("runners", "0", "docker", "services", "0", "alais"),
    ]


def test_whole_unknown_section_is_reported_once():
    document = _put(load_full(), ("runners", 0), "dokcer",
                    {"privileged": True, "image": "x"})
    assert unknown_keys(document) == [("runners", "0", "dokcer")]


@pytest.mark.parametrize(
    "where",
    [
        ("labels",),
        ("runners", 0, "labels"),
        ("runners", 0, "docker", "sysctls"),
        ("runners", 0, "docker", "tmpfs"),
        ("runners", 0, "docker", "container_labels"),
        ("runners", 0, "docker", "ulimit"),
    ],
)
def test_free_form_sections_accept_anything(where):
    document = load_full()
    for key in ("anything", "Privileged", "a.b", "", "FF_NOT_A_FLAG",
                "with space"):
        _put(document, where, key, {"nested": {"deeper": 1}})
    assert unknown_keys(document) == []


def test_open_plugin_config_and_kubernetes_sub_tables():
    document = tomllib.loads(r'''
        [[runners]]
          name = "k8s"
          executor = "kubernetes"
          [runners.kubernetes]
            namespace = "ci"
            privileged = false
            [runners.kubernetes.node_selector]
              "kubernetes.io/os" = "linux"
            [runners.kubernetes.pod_security_context]
              run_as_non_root = true
              whatever_new_field = 1
            [[runners.kubernetes.volumes.empty_dir]]
              name = "x"
              mount_path = "/x"
          [runners.kubernetes.affinity.node_affinity]
            anything = true
        [[runners]]
          name = "fleet"
          executor = "docker-autoscaler"
          [runners.autoscaler]
            plugin = "aws"
            capacity_per_instance = 1
            max_instances = 10
            [runners.autoscaler.plugin_config]
              name = "asg"
              region = "eu-west-1"
              any_plugin_key = ["free", "form"]
            [runners.autoscaler.connector_config]
              username = "ec2-user"
              use_external_addr = true
            [[runners.autoscaler.policy]]
              idle_count = 2
              idle_time = "20m"
            [[runners.autoscaler.policy]]
              periods = ["* * 9-17 * * mon-fri *"]
              idle_count = 5
              idel_time = "1h"
            [runners.autoscaler.vm_isolation]
              enabled = true
              [runners.autoscaler.vm_isolation.nesting_config]
                free = "form"
              [runners.autoscaler.vm_isolation.connector_config]
                os = "linux"
                protocl = "ssh"
          [runners.kubernetes]
            namespce = "ci"
    ''')
    assert unknown_keys(document) == [
        ("runners", "1", "autoscaler", "policy", "1", "idel_time"),
        ("runners", "1", "autoscaler", "vm_isolation", "connector_config",
         "protocl"),
        ("runners", "1", "kubernetes", "namespce"),
    ]


def test_docker_machine_keys_and_autoscaling_array():
    document = tomllib.loads(r'''
        [[runners]]
          executor = "docker+machine"
          [runners.machine]
            IdleCount = 1
            IdleTime = 600
            MaxBuilds = 10
            MachineDriver = "amazonec2"
            MachineName = "ci-%s"
            MachineOptions = ["amazonec2-region=eu-west-1"]
            [[runners.machine.autoscaling]]
              Periods = ["* * 9-17 * * mon-fri *"]
              IdleCount = 10
              IdleTime = 3600
              Timezone = "UTC"
            [[runners.machine.autoscaling]]
              Periods = ["* * * * * sat,sun *"]
              IdleCont = 0
          [runners.machine.extra]
            x = 1
    ''')
    assert unknown_keys(document) == [
        ("runners", "0", "machine", "autoscaling", "1", "IdleCont"),
        ("runners", "0", "machine", "extra"),
    ]


def test_monitoring_job_queuing_durations_are_checked_per_entry():
    document = {"runners": [{"monitoring": {"job_queuing_durations": [
        {"periods": ["* * * * * * *"], "threshold": "1m"},
        {"treshold": "1m"},
    ]}}]}
    assert unknown_keys(document) == [
        ("runners", "0", "monitoring", "job_queuing_durations", "1",
         "treshold"),
    ]


def test_case_variants():
    document = load_full()
    _put(document, ("runners", 0, "docker"), "Privileged", True)
    _put(document, ("runners", 0, "cache", "s3"), "bucketlocation", "x")
    _put(document, ("runners", 0, "docker"), "\u017fecurity_opt", [])
    _put(document, ("runners", 0, "docker"), "\u212aey", "x")
    document["runners"][1]["SSH"] = {"HOST": "x", "prot": 1}
    assert unknown_keys(document) == [
        ("runners", "0", "cache", "s3", "bucketlocation"),
        ("runners", "0", "docker", "Privileged"),
        ("runners", "0", "docker", "\u017fecurity_opt"),
        ("runners", "0", "docker", "\u212aey"),
        ("runners", "1", "SSH"),
    ]
    # GitLab Runner honours case-insensitive matches; so does the lenient
    # mode, which still walks the non-canonically spelt section.
    assert unknown_keys(document, strict_case=False) == [
        ("runners", "0", "docker", "\u212aey"),
        ("runners", "1", "SSH", "prot"),
    ]


def test_feature_flags_are_case_sensitive_even_when_lenient():
    document = {"runners": [{"Feature_Flags": {
        "FF_USE_FASTZIP": True, "ff_use_fastzip": True,
    }}]}
    assert unknown_keys(document, strict_case=False) == [
        ("runners", "0", "Feature_Flags", "ff_use_fastzip"),
    ]


def test_single_runners_table_is_walked_too():
    # [runners] instead of [[runners]] is a load error in GitLab Runner,
    # but the keys are still checked.
    assert unknown_keys({"runners": {"nmae": "x"}}) == [("runners", "nmae")]


def test_format_key_path():
    document = load_full()
    _put(document, ("runners", 0, "docker"), "privilegd")
    _put(document, ("runners", 0, "docker", "services", 1), "a.b")
    document["runners"][1]["name"] = 'ssh "1"'
    _put(document, ("runners", 1), "bad\nkey")
    paths = unknown_keys(document)
    assert [format_key_path(path, document) for path in paths] == [
        'runners[0] (name "docker-1").docker.services[1]."a.b"',
        'runners[0] (name "docker-1").docker.privilegd',
        'runners[1] (name "ssh \\"1\\"")."bad\\u000akey"',
    ]


def test_format_key_path_without_runner_name():
    document = {"runners": [{"x": 1}], "labels": {"0": "y"}}
    assert format_key_path(("runners", "0", "x"), document) == "runners[0].x"
    assert format_key_path(("labels", "0"), document) == "labels.0"


# --- consistency of the data -----------------------------------------------

def test_every_section_hangs_off_a_known_key():
    paths = set(SECTIONS) | set(OPEN_SECTIONS) | set(ARRAY_SECTIONS)
    paths.add(FEATURE_FLAGS_SECTION)
    for path in paths - {()}:
        parent, name = path[:-1], path[-1]
        assert parent in SECTIONS, path
        assert name in SECTIONS[parent], path


def test_open_and_checked_sections_do_not_overlap():
    assert not set(SECTIONS) & set(OPEN_SECTIONS)
    assert FEATURE_FLAGS_SECTION not in SECTIONS
    assert FEATURE_FLAGS_SECTION not in OPEN_SECTIONS
    assert ARRAY_SECTIONS <= set(SECTIONS)


def test_key_sets_are_frozen_and_well_formed():
    for path, names in SECTIONS.items():
        assert isinstance(names, frozenset), path
        for name in names:
            assert re.fullmatch(r"[A-Za-z0-9_-]+", name), (path, name)
        folded = [name.lower() for name in names]
        assert len(folded) == len(set(folded)), path


def test_known_feature_flags():
    assert len(KNOWN_FEATURE_FLAGS) >= 50
    for name in KNOWN_FEATURE_FLAGS:
        assert FEATURE_FLAG_PATTERN.fullmatch(name), name
    for name in ("FF_NETWORK_PER_BUILD", "FF_ENABLE_JOB_CLEANUP",
                 "FF_USE_FASTZIP", "FF_SCRIPT_SECTIONS",
                 "FF_USE_POWERSHELL_PATH_RESOLVER"):
        assert name in KNOWN_FEATURE_FLAGS


def test_documented_security_keys_are_present():
    docker = SECTIONS[("runners", "docker")]
    for name in ("privileged", "services_privileged", "cap_add", "cap_drop",
                 "security_opt", "pull_policy", "allowed_pull_policies",
                 "allowed_images", "allowed_services",
                 "allowed_privileged_images", "allowed_privileged_services",
                 "allowed_users", "userns_mode", "pid_mode", "ipcmode",
                 "devices", "volumes", "network_mode", "tls_verify"):
        assert name in docker, name
    assert "helper_image_autoset_arch_and_os" not in docker


def test_module_does_not_import_ansible():
    # The collection's own data modules only: the audit runs it on managed hosts.
    with open(schema.__file__, encoding="utf-8") as handle:
        source = handle.read()
    assert not re.search(r"^\s*(from|import)\s+ansible(\.|\s)", source, re.M)
    imported = re.findall(r"^\s*from\s+(ansible_collections\S*)\s+import", source, re.M)
    assert imported == ["ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_keys"]


def test_input_is_not_modified():
    document = load_full()
    before = copy.deepcopy(document)
    _put(document, ("runners", 0, "docker"), "privilegd")
    before["runners"][0]["docker"]["privilegd"] = True
    unknown_keys(document, strict_case=False)
    unknown_keys(document)
    assert document == before
