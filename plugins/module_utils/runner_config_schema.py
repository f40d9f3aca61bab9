"""Keys that GitLab Runner recognizes in ``config.toml``, section by section.

GitLab Runner decodes ``config.toml`` into Go structs and silently ignores
any key that matches no struct field, so a misspelt security setting
(``privilegd = false``, ``cap_drops = ["ALL"]``) is simply not applied.  This
module lists the recognized keys so such a file can be rejected before it is
installed; ``unknown_keys()`` does the check on a parsed document.

Source
------
The lists were taken from GitLab Runner **v19.3.0** (tag ``v19.3.0`` of
https://gitlab.com/gitlab-org/gitlab-runner, read through its GitHub mirror
``gitlabhq/gitlab-runner``): the ``toml`` struct tags in
``common/config.go``, ``cache/cacheconfig/cacheconfig.go``,
``helpers/docker/credentials.go`` (embedded in ``[runners.docker]``),
``referees/metrics.go`` and ``common/config/runner/monitoring*.go``, and the
feature flag names in ``helpers/featureflags/flags.go``.  They were checked
against the documentation of the same release:

* https://docs.gitlab.com/runner/configuration/advanced-configuration/
* https://docs.gitlab.com/runner/configuration/feature-flags/

The struct tags are authoritative where the two disagree.  Known
differences: the documentation lists ``helper_image_autoset_arch_and_os``
under ``[runners.docker]``, but only ``[runners.kubernetes]`` has that
field, so it is *not* accepted for Docker; and the structs have keys the
advanced-configuration page does not mention (for example
``services_security_opt``, ``volume_driver_ops``, ``step_runner_image``),
which are accepted.  Keys added after v19.3.0 (such as
``[[runners.docker.services]] suspend_data_path`` on the main branch) are
reported as unknown until this module is updated.

How GitLab Runner matches keys
------------------------------
The TOML decoder it uses (BurntSushi/toml) first looks for a field whose
name is exactly the key and otherwise takes a field whose name matches
case-insensitively (Go ``strings.EqualFold``).  ``Privileged = true`` in
``[runners.docker]`` is therefore honoured, and if both ``privileged`` and
``Privileged`` are present, which one wins is unspecified.  A spelling that
differs from the canonical one also slips past any check that looks the key
up by its canonical name, so ``unknown_keys()`` reports such keys by default
(``strict_case=True``); ``strict_case=False`` follows GitLab Runner exactly.
Keys of free-form tables (``[runners.feature_flags]``, ``sysctls``, ...) are
Go map keys and always case-sensitive.

This module is plain data plus one function with no Ansible imports, so it
also runs on a managed host (Python 3.9 and later).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = [
    "RUNNER_VERSION",
    "SECTIONS",
    "OPEN_SECTIONS",
    "ARRAY_SECTIONS",
    "FEATURE_FLAGS_SECTION",
    "FEATURE_FLAG_PATTERN",
    "KNOWN_FEATURE_FLAGS",
    "unknown_keys",
    "format_key_path",
]

#: GitLab Runner release the key lists describe.
RUNNER_VERSION = "19.3.0"

# Keys of [runners.autoscaler.connector_config] and of
# [runners.autoscaler.vm_isolation.connector_config] (same Go struct).
_CONNECTOR_CONFIG = frozenset({
    "os", "arch", "protocol", "protocol_port", "username", "password",
    "key_path", "use_static_credentials", "keepalive", "timeout",
    "use_external_addr",
})

#: Recognized keys per section.  A section path is the tuple of table names
#: as written in TOML; ``"runners"`` stands for every ``[[runners]]`` entry
#: (and likewise for the other arrays of tables in ``ARRAY_SECTIONS``).
#: A key that names a sub-table appears both in its parent's set and as a
#: section path of its own (or in ``OPEN_SECTIONS``).
SECTIONS = {
    (): frozenset({
        "concurrent", "check_interval", "log_level", "log_format", "user",
        "sentry_dsn", "connection_max_age", "listen_address",
        "shutdown_timeout", "labels", "session_server", "machine",
        "experimental", "runners",
    }),
    ("session_server",): frozenset({
        "listen_address", "advertise_address", "session_timeout",
    }),
    ("machine",): frozenset({"shutdown_drain"}),
    ("machine", "shutdown_drain"): frozenset({
        "enabled", "concurrency", "max_retries", "retry_backoff",
    }),
    ("experimental",): frozenset({"usage_logger"}),
    ("experimental", "usage_logger"): frozenset({
        "enabled", "writers", "logrotate", "snowplow_billing",
        # deprecated aliases of the [logrotate] keys, still decoded
        "log_dir", "max_backup_files", "max_rotation_age", "labels",
    }),
    ("experimental", "usage_logger", "logrotate"): frozenset({
        "log_dir", "max_backup_files", "max_rotation_age", "labels",
    }),
    ("experimental", "usage_logger", "snowplow_billing"): frozenset({
        "collector_uri", "app_id", "category", "realm", "deployment_type",
        "metadata", "enable_oidc", "batch_delivery_duration_buckets",
        "skip_oidc_if_unsupported_cloud", "skip_runner_system_failure",
    }),
    ("runners",): frozenset({
        # identity and credentials
        "name", "url", "id", "token", "token_obtained_at",
        "token_expires_at", "tls-ca-file", "tls-cert-file", "tls-key-file",
        # scheduling and limits
        "limit", "output_limit", "request_concurrency",
        "strict_check_interval", "unhealthy_requests_limit",
        "unhealthy_interval", "job_status_final_update_retry_limit",
        # job environment
        "executor", "shell", "builds_dir", "cache_dir", "clone_url",
        "environment", "labels", "proxy_exec", "pre_get_sources_script",
        "post_get_sources_script", "pre_build_script", "post_build_script",
        "prepare_timeout", "get_sources_timeout", "debug_trace_disabled",
        "safe_directory_checkout", "clean_git_config", "use_slot_cgroups",
        "slot_cgroup_template", "step_runner_image",
        # sub-tables
        "experimental", "custom_build_dir", "referees", "cache", "artifact",
        "feature_flags", "monitoring", "instance", "ssh", "docker",
        "parallels", "virtualbox", "machine", "kubernetes", "custom",
        "autoscaler",
    }),
    ("runners", "experimental"): frozenset({"boot_verify"}),
    ("runners", "experimental", "boot_verify"): frozenset({
        "enabled", "timeout", "acquire_min_backoff", "acquire_max_backoff",
    }),
    ("runners", "custom_build_dir"): frozenset({"enabled"}),
    ("runners", "referees"): frozenset({"metrics"}),
    ("runners", "referees", "metrics"): frozenset({
        "prometheus_address", "query_interval", "queries",
    }),
    ("runners", "cache"): frozenset({
        "Type", "Path", "Shared", "MaxUploadedArchiveSize",
        "s3", "gcs", "azure",
    }),
    ("runners", "cache", "s3"): frozenset({
        "ServerAddress", "AccessKey", "SecretKey", "SessionToken",
        "BucketName", "BucketLocation", "Insecure", "AuthenticationType",
        "ServerSideEncryption", "ServerSideEncryptionKeyID", "DualStack",
        "PathStyle", "Accelerate", "RoleARN", "UploadRoleARN",
        "AssumeRoleMaxConcurrency", "DisableAssumeRoleCredentialsCaching",
    }),
    ("runners", "cache", "gcs"): frozenset({
        "AccessID", "PrivateKey", "CredentialsFile", "BucketName",
        "UniverseDomain",
    }),
    ("runners", "cache", "azure"): frozenset({
        "AccountName", "AccountKey", "ContainerName", "StorageDomain",
    }),
    ("runners", "artifact"): frozenset({
        "upload_timeout", "response_header_timeout",
    }),
    ("runners", "monitoring"): frozenset({"job_queuing_durations"}),
    ("runners", "monitoring", "job_queuing_durations"): frozenset({
        "periods", "timezone", "threshold", "jobs_running_for_project",
    }),
    ("runners", "instance"): frozenset({
        "allowed_images", "use_common_build_dir",
    }),
    ("runners", "ssh"): frozenset({
        "user", "password", "host", "port", "identity_file",
        "disable_strict_host_key_checking", "known_hosts_file",
    }),
    ("runners", "docker"): frozenset({
        # Docker daemon connection (embedded docker.Credentials)
        "host", "tls_cert_path", "tls_verify",
        # image, user and privileges
        "image", "hostname", "runtime", "isolation", "user", "allowed_users",
        "group_add", "userns_mode", "privileged", "services_privileged",
        "cap_add", "cap_drop", "security_opt", "services_security_opt",
        "devices", "services_devices", "device_cgroup_rules", "gpus",
        "disable_entrypoint_overwrite", "oom_kill_disable",
        "oom_score_adjust",
        # allow lists and pulling
        "allowed_images", "allowed_privileged_images", "allowed_services",
        "allowed_privileged_services", "allowed_pull_policies",
        "pull_policy", "helper_image", "helper_image_flavor",
        # resources
        "memory", "memory_swap", "memory_reservation", "cgroup_parent",
        "cpuset_cpus", "cpuset_mems", "cpus", "cpu_shares", "shm_size",
        "ulimit", "sysctls", "tmpfs", "services_tmpfs",
        # namespaces and networking
        "network_mode", "pid_mode", "ipcmode", "mac_address", "dns",
        "dns_search", "extra_hosts", "links", "enable_ipv6", "network_mtu",
        # volumes and caching
        "volumes", "volumes_from", "volume_driver", "volume_driver_ops",
        "volume_keep", "cache_dir", "disable_cache",
        # services
        "services", "services_limit", "wait_for_services_timeout",
        "service_memory", "service_memory_swap",
        "service_memory_reservation", "service_cgroup_parent",
        "service_slot_cgroup_template", "service_cpuset_cpus",
        "service_cpus", "service_cpu_shares", "service_gpus",
        # labels and logging
        "container_labels", "log_options",
    }),
    ("runners", "docker", "services"): frozenset({
        "name", "alias", "command", "entrypoint", "environment",
    }),
    ("runners", "parallels"): frozenset({
        "base_name", "template_name", "disable_snapshots", "time_server",
        "allowed_images",
    }),
    ("runners", "virtualbox"): frozenset({
        "base_name", "base_snapshot", "base_folder", "disable_snapshots",
        "allowed_images", "start_type",
    }),
    ("runners", "machine"): frozenset({
        "MaxGrowthRate", "IdleCount", "IdleScaleFactor", "IdleCountMin",
        "IdleTime", "MaxBuilds", "MachineDriver", "MachineName",
        "MachineOptions", "MachineOptionsWithName", "MaxRemovalAttempts",
        # deprecated, still decoded
        "OffPeakPeriods", "OffPeakTimezone", "OffPeakIdleCount",
        "OffPeakIdleTime",
        "autoscaling",
    }),
    ("runners", "machine", "autoscaling"): frozenset({
        "Periods", "Timezone", "IdleCount", "IdleScaleFactor",
        "IdleCountMin", "IdleTime",
    }),
    ("runners", "autoscaler"): frozenset({
        "capacity_per_instance", "max_use_count", "max_instances", "plugin",
        "plugin_config", "connector_config", "policy",
        "instance_ready_command", "instance_acquire_timeout",
        "update_interval", "update_interval_when_expecting",
        "deletion_retry_interval", "shutdown_deletion_interval",
        "shutdown_deletion_retries", "failure_threshold", "scale_throttle",
        "reservation_throttling", "log_internal_ip", "log_external_ip",
        "delete_instances_on_shutdown", "vm_isolation", "state_storage",
        "instance_operation_time_buckets", "instance_creation_time_buckets",
        "instance_is_running_time_buckets",
        "instance_deletion_time_buckets", "instance_readiness_time_buckets",
        "instance_life_duration_buckets",
    }),
    ("runners", "autoscaler", "connector_config"): _CONNECTOR_CONFIG,
    ("runners", "autoscaler", "policy"): frozenset({
        "periods", "timezone", "idle_count", "idle_time", "scale_factor",
        "scale_factor_limit", "preemptive_mode",
    }),
    ("runners", "autoscaler", "scale_throttle"): frozenset({
        "limit", "burst",
    }),
    ("runners", "autoscaler", "state_storage"): frozenset({
        "enabled", "dir", "keep_instance_with_acquisitions",
    }),
    ("runners", "autoscaler", "vm_isolation"): frozenset({
        "enabled", "nesting_host", "nesting_config", "image",
        "connector_config",
    }),
    ("runners", "autoscaler", "vm_isolation", "connector_config"):
        _CONNECTOR_CONFIG,
    ("runners", "custom"): frozenset({
        "config_exec", "config_args", "config_exec_timeout",
        "prepare_exec", "prepare_args", "prepare_exec_timeout",
        "run_exec", "run_args",
        "cleanup_exec", "cleanup_args", "cleanup_exec_timeout",
        "graceful_kill_timeout", "force_kill_timeout",
    }),
    # Top-level keys only: its sub-tables are listed in OPEN_SECTIONS.
    ("runners", "kubernetes"): frozenset({
        # API access
        "host", "context", "cert_file", "key_file", "ca_file",
        "bearer_token", "bearer_token_overwrite_allowed",
        # namespace, images and pulling
        "namespace", "namespace_overwrite_allowed", "namespace_per_job",
        "image", "allowed_images", "allowed_services", "allowed_users",
        "allowed_groups", "allowed_pull_policies", "pull_policy",
        "image_pull_secrets", "use_service_account_image_pull_secrets",
        "helper_image", "helper_image_flavor",
        "helper_image_autoset_arch_and_os",
        # privileges
        "privileged", "allow_privilege_escalation", "runtime_class_name",
        "cap_add", "cap_drop", "service_account",
        "service_account_overwrite_allowed",
        "automount_service_account_token",
        # build container resources
        "cpu_limit", "cpu_limit_overwrite_max_allowed",
        "cpu_request", "cpu_request_overwrite_max_allowed",
        "memory_limit", "memory_limit_overwrite_max_allowed",
        "memory_request", "memory_request_overwrite_max_allowed",
        "ephemeral_storage_limit",
        "ephemeral_storage_limit_overwrite_max_allowed",
        "ephemeral_storage_request",
        "ephemeral_storage_request_overwrite_max_allowed",
        # service container resources
        "service_cpu_limit", "service_cpu_limit_overwrite_max_allowed",
        "service_cpu_request", "service_cpu_request_overwrite_max_allowed",
        "service_memory_limit", "service_memory_limit_overwrite_max_allowed",
        "service_memory_request",
        "service_memory_request_overwrite_max_allowed",
        "service_ephemeral_storage_limit",
        "service_ephemeral_storage_limit_overwrite_max_allowed",
        "service_ephemeral_storage_request",
        "service_ephemeral_storage_request_overwrite_max_allowed",
        # helper container resources
        "helper_cpu_limit", "helper_cpu_limit_overwrite_max_allowed",
        "helper_cpu_request", "helper_cpu_request_overwrite_max_allowed",
        "helper_memory_limit", "helper_memory_limit_overwrite_max_allowed",
        "helper_memory_request",
        "helper_memory_request_overwrite_max_allowed",
        "helper_ephemeral_storage_limit",
        "helper_ephemeral_storage_limit_overwrite_max_allowed",
        "helper_ephemeral_storage_request",
        "helper_ephemeral_storage_request_overwrite_max_allowed",
        # pod resources
        "pod_cpu_limit", "pod_cpu_limit_overwrite_max_allowed",
        "pod_cpu_request", "pod_cpu_request_overwrite_max_allowed",
        "pod_memory_limit", "pod_memory_limit_overwrite_max_allowed",
        "pod_memory_request", "pod_memory_request_overwrite_max_allowed",
        # scheduling and pod metadata
        "node_selector", "node_selector_overwrite_allowed",
        "node_tolerations", "node_tolerations_overwrite_allowed",
        "affinity", "scheduler_name", "priority_class_name", "pod_labels",
        "pod_labels_overwrite_allowed", "pod_annotations",
        "pod_annotations_overwrite_allowed", "pod_disruption_budget",
        # pod and container specs
        "pod_security_context", "init_permissions_container_security_context",
        "build_container_security_context",
        "helper_container_security_context",
        "service_container_security_context", "volumes", "host_aliases",
        "services", "dns_policy", "dns_config", "container_lifecycle",
        "pod_spec", "logs_base_dir", "scripts_base_dir",
        # timing, retries and events
        "pod_termination_grace_period_seconds",
        "cleanup_grace_period_seconds", "cleanup_resources_timeout",
        "poll_interval", "poll_timeout",
        "resource_availability_check_max_attempts", "retry_limit",
        "retry_backoff_max", "retry_limits", "print_pod_warning_events",
        "autoscaler",
    }),
}

#: Sections whose content is not checked: free-form maps (labels, sysctls,
#: plugin settings, ...) and the sub-tables of ``[runners.kubernetes]``.
#: Nothing below an open section is checked either.
OPEN_SECTIONS = frozenset({
    ("labels",),
    ("experimental", "usage_logger", "labels"),
    ("experimental", "usage_logger", "logrotate", "labels"),
    ("experimental", "usage_logger", "snowplow_billing", "metadata"),
    ("runners", "labels"),
    ("runners", "docker", "container_labels"),
    ("runners", "docker", "log_options"),
    ("runners", "docker", "services_devices"),
    ("runners", "docker", "services_tmpfs"),
    ("runners", "docker", "sysctls"),
    ("runners", "docker", "tmpfs"),
    ("runners", "docker", "ulimit"),
    ("runners", "docker", "volume_driver_ops"),
    ("runners", "autoscaler", "plugin_config"),
    ("runners", "autoscaler", "vm_isolation", "nesting_config"),
    ("runners", "kubernetes", "affinity"),
    ("runners", "kubernetes", "autoscaler"),
    ("runners", "kubernetes", "build_container_security_context"),
    ("runners", "kubernetes", "container_lifecycle"),
    ("runners", "kubernetes", "dns_config"),
    ("runners", "kubernetes", "helper_container_security_context"),
    ("runners", "kubernetes", "host_aliases"),
    ("runners", "kubernetes", "init_permissions_container_security_context"),
    ("runners", "kubernetes", "node_selector"),
    ("runners", "kubernetes", "node_tolerations"),
    ("runners", "kubernetes", "pod_annotations"),
    ("runners", "kubernetes", "pod_labels"),
    ("runners", "kubernetes", "pod_security_context"),
    ("runners", "kubernetes", "pod_spec"),
    ("runners", "kubernetes", "retry_limits"),
    ("runners", "kubernetes", "service_container_security_context"),
    ("runners", "kubernetes", "services"),
    ("runners", "kubernetes", "volumes"),
})

#: Sections that are arrays of tables (``[[...]]``); each entry is checked
#: and reported under its index.
ARRAY_SECTIONS = frozenset({
    ("runners",),
    ("runners", "docker", "services"),
    ("runners", "machine", "autoscaling"),
    ("runners", "autoscaler", "policy"),
    ("runners", "monitoring", "job_queuing_durations"),
})

#: ``[runners.feature_flags]``: a map of flag name to bool, checked against
#: ``KNOWN_FEATURE_FLAGS`` (exact case; GitLab Runner looks flags up by their
#: exact name and ignores any other).
FEATURE_FLAGS_SECTION = ("runners", "feature_flags")

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_INDEX = re.compile(r"[0-9]+")

#: Shape of every feature flag name.
FEATURE_FLAG_PATTERN = re.compile(r"FF_[A-Z0-9_]+")

#: Feature flags of GitLab Runner 19.3.0 (the documented list; the internal
#: test flag FF_TEST_FEATURE is left out).  Flags removed in earlier
#: releases, such as FF_USE_NEW_BASH_EVAL_STRATEGY, are no longer read.
KNOWN_FEATURE_FLAGS = frozenset({
    "FF_CLEAN_UP_FAILED_CACHE_EXTRACT",
    "FF_CONCRETE",
    "FF_DISABLE_AUTOMATIC_TOKEN_ROTATION",
    "FF_DISABLE_POWERSHELL_STDIN",
    "FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR",
    "FF_DISABLE_UMASK_FOR_KUBERNETES_EXECUTOR",
    "FF_ENABLE_BASH_EXIT_CODE_CHECK",
    "FF_ENABLE_JOB_CLEANUP",
    "FF_ENABLE_JOB_INPUTS_INTERPOLATION",
    "FF_EXPORT_HIGH_CARDINALITY_METRICS",
    "FF_GIT_URLS_WITHOUT_TOKENS",
    "FF_HASH_CACHE_KEYS",
    "FF_KUBERNETES_HONOR_ENTRYPOINT",
    "FF_LOG_IMAGES_CONFIGURED_FOR_JOB",
    "FF_MASK_ALL_DEFAULT_TOKENS",
    "FF_NETWORK_PER_BUILD",
    "FF_POSIXLY_CORRECT_ESCAPES",
    "FF_PRINT_POD_EVENTS",
    "FF_RESOLVE_FULL_TLS_CHAIN",
    "FF_SCRIPT_SECTIONS",
    "FF_SCRIPT_TO_STEP_MIGRATION",
    "FF_SECRET_RESOLVING_FAILS_IF_MISSING",
    "FF_SUSPENDABLE_ENVIRONMENTS",
    "FF_TIMESTAMPS",
    "FF_USE_ADAPTIVE_REQUEST_CONCURRENCY",
    "FF_USE_ADVANCED_POD_SPEC_CONFIGURATION",
    "FF_USE_DIRECT_DOWNLOAD",
    "FF_USE_DOCKER_AUTOSCALER_DIAL_STDIO",
    "FF_USE_DUMB_INIT_WITH_KUBERNETES_EXECUTOR",
    "FF_USE_DYNAMIC_TRACE_FORCE_SEND_INTERVAL",
    "FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY",
    "FF_USE_FASTZIP",
    "FF_USE_FLEETING_ACQUIRE_HEARTBEATS",
    "FF_USE_GITALY_CORRELATION_ID",
    "FF_USE_GIT_BUNDLE_URIS",
    "FF_USE_GIT_NATIVE_CLONE",
    "FF_USE_GIT_PROACTIVE_AUTH",
    "FF_USE_INIT_WITH_DOCKER_EXECUTOR",
    "FF_USE_JOB_ROUTER",
    "FF_USE_LEGACY_BASH_EVAL",
    "FF_USE_LEGACY_GCS_CACHE_ADAPTER",
    "FF_USE_LEGACY_KUBERNETES_EXECUTION_STRATEGY",
    "FF_USE_LEGACY_S3_CACHE_ADAPTER",
    "FF_USE_NATIVE_CONTAINER_STOP",
    "FF_USE_PARALLEL_ARTIFACT_TRANSFER",
    "FF_USE_PARALLEL_CACHE_TRANSFER",
    "FF_USE_POD_ACTIVE_DEADLINE_SECONDS",
    "FF_USE_POWERSHELL_PATH_RESOLVER",
    "FF_USE_WINDOWS_JOB_OBJECT",
    "FF_USE_WINDOWS_LEGACY_PROCESS_STRATEGY",
    "FF_WAIT_FOR_POD_TO_BE_REACHABLE",
})


def _fold(key):
    """Return ``key`` folded the way Go's EqualFold compares it to ASCII.

    All canonical names are ASCII.  Under Unicode simple case folding only
    two non-ASCII characters fold onto ASCII letters: U+017F (long s, to
    "s") and U+212A (Kelvin sign, to "k").  Any other non-ASCII character
    cannot match, so ``None`` is returned for such keys.
    """
    key = key.replace("\u017f", "s").replace("\u212a", "k")
    if not key.isascii():
        return None
    return key.lower()


# Per section: folded name -> canonical name.
_FOLDED = {
    path: {name.lower(): name for name in names}
    for path, names in SECTIONS.items()
}


def _canonical(section, key, strict_case):
    """Return the canonical name ``key`` stands for in ``section``, or None."""
    if key in SECTIONS[section]:
        return key
    if strict_case or not isinstance(key, str):
        return None
    folded = _fold(key)
    if folded is None:
        return None
    return _FOLDED[section].get(folded)


def _walk(table, section, where, strict_case, found):
    """Collect the unknown keys of ``table`` (schema path ``section``)."""
    if section in OPEN_SECTIONS:
        return
    if section == FEATURE_FLAGS_SECTION:
        for key in table:
            if not (isinstance(key, str)
                    and FEATURE_FLAG_PATTERN.fullmatch(key)
                    and key in KNOWN_FEATURE_FLAGS):
                found.append(where + (key,))
        return
    if section not in SECTIONS:
        # A table where GitLab Runner expects a plain value: a type error
        # it reports itself when loading, not an ignored key.
        return
    for key, value in table.items():
        name = _canonical(section, key, strict_case)
        if name is None:
            found.append(where + (key,))
            continue
        child = section + (name,)
        if isinstance(value, Mapping):
            _walk(value, child, where + (key,), strict_case, found)
        elif child in ARRAY_SECTIONS and isinstance(value, (list, tuple)):
            for index, entry in enumerate(value):
                if isinstance(entry, Mapping):
                    _walk(entry, child, where + (key, str(index)),
                          strict_case, found)


def unknown_keys(document, strict_case=True):
    """Return the paths of the keys GitLab Runner would ignore.

    ``document`` is a parsed ``config.toml`` (as returned by
    ``tomllib.loads``).  Each result is the full key path as a tuple of
    strings, in document order, for example
    ``("runners", "0", "docker", "privilegd")``.  Entries of arrays of
    tables (``[[runners]]``, ``[[runners.docker.services]]``,
    ``[[runners.machine.autoscaling]]``, ``[[runners.autoscaler.policy]]``,
    ``[[runners.monitoring.job_queuing_durations]]``) are identified by
    their zero-based index as a string: runner names need not be unique or
    present.  ``format_key_path()`` turns a path into text that includes
    the runner's name.

    Reported are keys that match no recognized key of their section, and
    names in ``[runners.feature_flags]`` that are not GitLab Runner feature
    flags.  With ``strict_case`` (the default) a key is only recognized when
    spelled exactly like the canonical name; with ``strict_case=False``
    case-insensitive matches are accepted too, as GitLab Runner itself
    does (see the module documentation).
    """
    found = []
    _walk(document, (), (), strict_case, found)
    return found


def format_key_path(path, document):
    """Return a key path from ``unknown_keys()`` as readable text.

    The path is followed through the parsed ``document`` it came from, so
    array indexes are told apart from keys: ``("runners", "0", "docker",
    "privilegd")`` becomes ``runners[0] (name "ci-1").docker.privilegd``
    (the runner's name is added when it has one).  Keys that are not bare
    TOML keys are shown quoted.
    """
    text = ""
    node = document
    for depth, part in enumerate(path):
        if isinstance(node, (list, tuple)) and _INDEX.fullmatch(part) \
                and int(part) < len(node):
            node = node[int(part)]
            text += "[%s]" % part
            name = node.get("name") if isinstance(node, Mapping) else None
            if depth == 1 and path[0] == "runners" and isinstance(name, str):
                text += " (name %s)" % _quote(name)
            continue
        if text:
            text += "."
        text += part if _BARE_KEY.fullmatch(part) else _quote(part)
        node = node.get(part) if isinstance(node, Mapping) else None
    return text


def _quote(text):
    """Double-quote ``text`` for display, escaping anything non-printable."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif ord(char) <= 0xFFFF:
            out.append("\\u%04x" % ord(char))
        else:
            out.append("\\U%08x" % ord(char))
    return '"' + "".join(out) + '"'
