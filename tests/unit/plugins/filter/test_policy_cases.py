"""Table-driven proof that the gate and the audit judge what the runtime does.

Every insecure case is fed twice:

* to the role's gate (``runner_policy_gate``) as role input, which must refuse it
  (or warn, for warn-level policies), naming the expected policy;
* to the audit (``runner_config_audit.evaluate``) as a config.toml written
  straight: the role's own rendering of the runner with the case's sections laid
  over it unchanged (lists replaced, nothing re-added), serialized and parsed back
  with tomllib, which must report the expected policy at medium or above.

Every control must pass both: no refusal, no warning, nothing at medium or above.
Cases name the policy they expect so a case caught only by accident (some other
finding) does not count.
"""

import copy
import json
import tomllib

import pytest

from ansible_collections.hardened.gitlab_runner.plugins.filter.runner_config import (
    runner_policy_gate,
    toml_document,
)
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.policy import CATALOG, severity_at_least
from ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_config import build_document
from ansible_collections.hardened.gitlab_runner.plugins.modules import runner_config_audit

from ansible_collections.hardened.gitlab_runner.tests.unit.plugins.filter.test_policy_gate import (
    DEFAULTS,
    PIN,
    SETTINGS,
    TOKEN,
)

SECTIONS = ("docker", "kubernetes", "ssh", "machine", "autoscaler", "feature_flags", "virtualbox", "parallels")


def R(executor="docker", **extra):
    base = {"name": "r1", "url": "https://gitlab.example.test", "token": TOKEN, "executor": executor}
    base.update(extra)
    return base


def D(**docker):
    return R(docker=docker)


def K(**kubernetes):
    return R("kubernetes", kubernetes=kubernetes)


def HP(host_path=None, mount_path="/mnt"):
    entry = {"name": "hp", "mount_path": mount_path}
    if host_path is not None:
        entry["host_path"] = host_path
    return K(volumes={"host_path": [entry]})


def PATCH(patch, patch_type="strategic"):
    return K(pod_spec=[{"name": "p", "patch": patch, "patch_type": patch_type}])


def with_defaults(**changes):
    """DEFAULTS with some pieces replaced (the gitlab_runner_*_defaults paths)."""
    out = copy.deepcopy(DEFAULTS)
    for key, value in changes.items():
        if key in ("docker", "runner", "feature_flags"):
            out[key] = dict(out.get(key) or {}, **value)
        else:
            out[key] = value
    return out


NNP = "no-new-privileges:true"

# (id, role input, expected policy, defaults or None, global settings or None)
INSECURE = [
    # --- docker: privileges ---------------------------------------------------------
    ("privileged", D(privileged=True), "GR002", None, None),
    ("privileged_string", D(privileged="true"), "GR002", None, None),
    ("privileged_int", D(privileged=1), "GR002", None, None),
    ("privileged_key_case", D(Privileged=True), "GR002", None, None),
    ("services_privileged", D(services_privileged=True), "GR003", None, None),
    ("services_privileged_key_case", D(SERVICES_PRIVILEGED=True), "GR003", None, None),
    ("privileged_images", D(allowed_privileged_images=["docker:dind"]), "GR004", None, None),
    ("privileged_services_star", D(allowed_privileged_services=["*"]), "GR004", None, None),
    ("privileged_images_string", D(allowed_privileged_images="docker:*"), "GR004", None, None),
    # --- docker: capabilities -----------------------------------------------------------
    ("cap_add_net_admin", D(cap_add=["NET_ADMIN"]), "GR005", None, None),
    ("cap_add_lower", D(cap_add=["net_admin"]), "GR005", None, None),
    ("cap_add_string", D(cap_add="NET_ADMIN"), "GR005", None, None),
    ("cap_add_gives_back_setuid", D(cap_add=["SETUID"]), "GR006", None, None),
    ("cap_add_gives_back_cap_prefix", D(cap_add=["CAP_SETUID"]), "GR006", None, None),
    ("cap_add_gives_back_lower", D(cap_add=["setgid"]), "GR006", None, None),
    ("cap_add_gives_back_spaces", D(cap_add=[" NET_RAW "]), "GR006", None, None),
    ("cap_add_gives_back_mknod", D(cap_add=["cap_mknod"]), "GR006", None, None),
    ("cap_add_all", D(cap_add=["ALL"]), "GR028", None, None),
    ("cap_add_all_lower", D(cap_add=["all"]), "GR028", None, None),
    ("cap_add_sys_admin", D(cap_add=["SYS_ADMIN"]), "GR028", None, None),
    ("cap_add_sys_admin_prefixed", D(cap_add=["CAP_SYS_ADMIN"]), "GR028", None, None),
    ("cap_add_sys_module", D(cap_add=["SYS_MODULE"]), "GR028", None, None),
    ("cap_add_sys_ptrace", D(cap_add=["sys_ptrace"]), "GR028", None, None),
    ("cap_add_dac_read_search", D(cap_add=["DAC_READ_SEARCH"]), "GR028", None, None),
    ("cap_add_sys_rawio", D(cap_add=["SYS_RAWIO"]), "GR028", None, None),
    ("cap_add_bpf", D(cap_add=["BPF"]), "GR028", None, None),
    # --- docker: no-new-privileges (the last entry of a kind wins) ------------------------
    ("nnp_removed", D(security_opt=[]), "GR007", None, None),
    ("nnp_false", D(security_opt=["no-new-privileges:false"]), "GR007", None, None),
    ("nnp_true_then_false", D(security_opt=[NNP, "no-new-privileges:false"]), "GR007", None, None),
    ("nnp_equals_then_zero", D(security_opt=["no-new-privileges=true", "no-new-privileges=0"]), "GR007", None, None),
    ("nnp_bare_then_F", D(security_opt=["no-new-privileges", "no-new-privileges=F"]), "GR007", None, None),
    ("nnp_not_a_bool", D(security_opt=["no-new-privileges=yes"]), "GR007", None, None),
    ("nnp_only_other_opts", D(security_opt=["apparmor=docker-default"]), "GR007", None, None),
    # --- docker: unconfined ---------------------------------------------------------------
    ("seccomp_unconfined", D(security_opt=[NNP, "seccomp=unconfined"]), "GR008", None, None),
    ("seccomp_colon_unconfined", D(security_opt=[NNP, "seccomp:unconfined"]), "GR008", None, None),
    ("seccomp_inline_allow", D(security_opt=[NNP, 'seccomp={"defaultAction": "SCMP_ACT_ALLOW"}']), "GR008", None, None),
    ("seccomp_inline_log", D(security_opt=[NNP, 'seccomp={"defaultAction":"SCMP_ACT_LOG","syscalls":[]}']),
     "GR008", None, None),
    ("seccomp_file", D(security_opt=[NNP, "seccomp=/etc/docker/allow-all.json"]), "GR008", None, None),
    ("seccomp_last_wins", D(security_opt=[NNP, 'seccomp={"defaultAction":"SCMP_ACT_ERRNO"}', "seccomp=unconfined"]),
     "GR008", None, None),
    ("apparmor_unconfined", D(security_opt=[NNP, "apparmor=unconfined"]), "GR008", None, None),
    ("apparmor_colon", D(security_opt=[NNP, "apparmor:unconfined"]), "GR008", None, None),
    ("apparmor_upper", D(security_opt=[NNP, "apparmor=UNCONFINED"]), "GR008", None, None),
    ("label_disable", D(security_opt=[NNP, "label=disable"]), "GR008", None, None),
    ("label_colon_disable", D(security_opt=[NNP, "label:disable"]), "GR008", None, None),
    ("label_spc_t", D(security_opt=[NNP, "label=type:spc_t"]), "GR008", None, None),
    ("label_unconfined_t", D(security_opt=[NNP, "label=type:unconfined_t"]), "GR008", None, None),
    ("systempaths_unconfined", D(security_opt=[NNP, "systempaths=unconfined"]), "GR008", None, None),
    ("writable_cgroups", D(security_opt=[NNP, "writable-cgroups=true"]), "GR008", None, None),
    # --- docker: namespaces and networks --------------------------------------------------
    ("pid_host", D(pid_mode="host"), "GR008", None, None),
    ("pid_host_upper", D(pid_mode="HOST"), "GR008", None, None),
    ("pid_container", D(pid_mode="container:other"), "GR008", None, None),
    ("network_host", D(network_mode="host"), "GR008", None, None),
    ("network_container", D(network_mode="container:abc123"), "GR008", None, None),
    ("network_bridge_disables_per_build", D(network_mode="bridge"), "GR016", None, None),
    ("network_named_disables_per_build", D(network_mode="ci-shared"), "GR016", None, None),
    ("ipc_host", D(ipcmode="host"), "GR008", None, None),
    ("ipc_container", D(ipcmode="container:x"), "GR008", None, None),
    ("userns_host", D(userns_mode="host"), "GR008", None, None),
    ("ff_network_per_build_off", R(feature_flags={"FF_NETWORK_PER_BUILD": False}), "GR016", None, None),
    # --- docker: sockets, host paths, volumes ------------------------------------------------
    ("sock_var_run", D(volumes=["/var/run/docker.sock:/var/run/docker.sock"]), "GR009", None, None),
    ("sock_run", D(volumes=["/run/docker.sock:/var/run/docker.sock:ro"]), "GR009", None, None),
    ("sock_dir_var_run", D(volumes=["/var/run:/host-run"]), "GR009", None, None),
    ("sock_dir_run_ro", D(volumes=["/run:/r:ro"]), "GR009", None, None),
    ("sock_dir_trailing_slash", D(volumes=["/var/run/:/x"]), "GR009", None, None),
    ("sock_double_slashes", D(volumes=["//var//run//docker.sock:/s"]), "GR009", None, None),
    ("sock_dot_dot", D(volumes=["/var/lib/../run/docker.sock:/s"]), "GR009", None, None),
    ("sock_containerd_dir", D(volumes=["/run/containerd:/c"]), "GR009", None, None),
    ("sock_containerd", D(volumes=["/run/containerd/containerd.sock:/c.sock"]), "GR009", None, None),
    ("sock_podman", D(volumes=["/run/podman/podman.sock:/p.sock"]), "GR009", None, None),
    ("sock_user_runtime_dir", D(volumes=["/run/user/1000:/u"]), "GR009", None, None),
    ("sock_user_podman", D(volumes=["/run/user/1000/podman/podman.sock:/p"]), "GR009", None, None),
    ("sock_crio", D(volumes=["/var/run/crio/crio.sock:/c"]), "GR009", None, None),
    ("sock_any_dot_sock", D(volumes=["/srv/custom/api.sock:/a"]), "GR009", None, None),
    ("sock_root", D(volumes=["/:/host"]), "GR009", None, None),
    ("sock_var", D(volumes=["/var:/v:ro"]), "GR009", None, None),
    ("sock_docker_host_dir", D(host="unix:///srv/engine/engine.socket", volumes=["/srv/engine:/e"]), "GR009", None, None),
    ("sock_windows_pipe", R("docker-windows", docker={"volumes": ["\\\\.\\pipe\\docker_engine:\\\\.\\pipe\\docker_engine"]}),
     "GR009", None, None),
    ("sock_windows_pipe_slashes", R("docker-windows", docker={"volumes": ["//./pipe/docker_engine://./pipe/docker_engine"]}),
     "GR009", None, None),
    ("host_windows_drive", R("docker-windows", docker={"volumes": ["C:\\data:C:\\data"]}), "GR010", None, None),
    ("host_windows_forward", R("docker-windows", docker={"volumes": ["c:/Users:c:/u:ro"]}), "GR010", None, None),
    ("host_path", D(volumes=["/srv/data:/data"]), "GR010", None, None),
    ("host_path_ro", D(volumes=["/cache", "/srv/data:/data:ro"]), "GR010", None, None),
    ("host_builds_dir", D(volumes=["/home/gitlab-runner/builds:/builds"]), "GR010", None, None),
    ("named_volume_shared", D(volumes=["shared-data:/data"]), "GR010", None, None),
    ("volumes_from", D(volumes_from=["other-container"]), "GR010", None, None),
    ("driver_ops_bind", D(volume_driver_ops={"type": "none", "o": "bind", "device": "/srv/share"}), "GR010", None, None),
    ("driver_ops_bind_socket_dir", D(volume_driver_ops={"o": "bind", "device": "/var/run"}), "GR009", None, None),
    ("driver_ops_nfs", D(volume_driver_ops={"type": "nfs", "o": "addr=192.0.2.1", "device": ":/export"}),
     "GR010", None, None),
    ("root_equiv_etc", D(volumes=["/etc:/host-etc:ro"]), "GR028", None, None),
    ("root_equiv_runner_config", D(volumes=["/etc/gitlab-runner:/secrets:ro"]), "GR028", None, None),
    ("root_equiv_proc", D(volumes=["/proc:/hostproc"]), "GR028", None, None),
    ("root_equiv_cgroup", D(volumes=["/sys/fs/cgroup:/cg"]), "GR028", None, None),
    ("root_equiv_device", D(volumes=["/dev/sda:/dev/sda"]), "GR028", None, None),
    ("root_equiv_root_ssh", D(volumes=["/root/.ssh:/k:ro"]), "GR028", None, None),
    ("root_equiv_docker_data", D(volumes=["/var/lib/docker:/d"]), "GR028", None, None),
    ("root_equiv_slash", D(volumes=["/:/host:ro"]), "GR028", None, None),
    # --- docker: devices ---------------------------------------------------------------
    ("devices_kvm", D(devices=["/dev/kvm"]), "GR011", None, None),
    ("devices_fuse_rwm", D(devices=["/dev/fuse:/dev/fuse:rwm"]), "GR011", None, None),
    ("device_cgroup_rules", D(device_cgroup_rules=["c 1:* rwm"]), "GR011", None, None),
    ("gpus", D(gpus="all"), "GR011", None, None),
    ("services_devices", D(services_devices={"postgres:*": ["/dev/kvm"]}), "GR011", None, None),
    ("service_gpus", D(service_gpus="all"), "GR011", None, None),
    # --- docker: pull policies ----------------------------------------------------------
    ("pull_if_not_present", D(pull_policy=["if-not-present"]), "GR012", None, None),
    ("pull_always_then_if_not_present", D(pull_policy=["always", "if-not-present"]), "GR012", None, None),
    ("pull_never", D(pull_policy=["never"]), "GR012", None, None),
    ("pull_string", D(pull_policy="if-not-present"), "GR012", None, None),
    ("pull_upper", D(pull_policy=["IF-NOT-PRESENT"]), "GR012", None, None),
    ("allowed_if_not_present", D(allowed_pull_policies=["always", "if-not-present"]), "GR012", None, None),
    ("allowed_never", D(allowed_pull_policies=["never"]), "GR012", None, None),
    # --- docker: service containers ---------------------------------------------------------
    ("services_nnp_removed", D(services_security_opt=[]), "GR029", None, None),
    ("services_nnp_false", D(services_security_opt=["no-new-privileges:false"]), "GR029", None, None),
    ("services_nnp_last_wins", D(services_security_opt=[NNP, "no-new-privileges=false"]), "GR029", None, None),
    ("services_seccomp_unconfined", D(services_security_opt=[NNP, "seccomp=unconfined"]), "GR008", None, None),
    ("services_apparmor_unconfined", D(services_security_opt=["apparmor:unconfined", "no-new-privileges"]),
     "GR008", None, None),
    # --- docker: through the role's defaults ---------------------------------------------------
    ("defaults_privileged", R(), "GR002", with_defaults(docker={"privileged": True}), None),
    ("defaults_sys_admin", R(), "GR028", with_defaults(docker={"cap_add": ["SYS_ADMIN"]}), None),
    ("defaults_socket", R(), "GR009", with_defaults(docker={"volumes": ["/var/run/docker.sock:/var/run/docker.sock"]}), None),
    ("defaults_pull", R(), "GR012", with_defaults(docker={"pull_policy": ["if-not-present"]}), None),
    ("defaults_nnp", R(), "GR007", with_defaults(docker={"security_opt": []}), None),
    ("defaults_services_nnp", R(), "GR029", with_defaults(docker={"services_security_opt": []}), None),
    ("defaults_ff_off", R(), "GR016", with_defaults(feature_flags={"FF_NETWORK_PER_BUILD": False}), None),
    ("runner_defaults_docker", R(), "GR002", with_defaults(runner={"docker": {"privileged": True}}), None),
    ("runner_defaults_k8s_privileged", R("kubernetes"), "GR002",
     with_defaults(runner={"kubernetes": {"privileged": True}}), None),
    ("runner_defaults_k8s_escalation", R("kubernetes"), "GR007",
     with_defaults(runner={"kubernetes": {"allow_privilege_escalation": True}}), None),
    ("runner_defaults_ssh", R("ssh", ssh={"host": "vm"}), "GR013",
     with_defaults(runner={"ssh": {"disable_strict_host_key_checking": True}}), None),
    ("runner_defaults_machine", R("docker+machine"), "GR014", with_defaults(runner={"machine": {"MaxBuilds": 0}}), None),
    # --- other docker-type executors --------------------------------------------------------
    ("machine_privileged", R("docker+machine", docker={"privileged": True}), "GR002", None, None),
    ("machine_maxbuilds_0", R("docker+machine", machine={"MaxBuilds": 0}), "GR014", None, None),
    ("machine_maxbuilds_5", R("docker+machine", machine={"MaxBuilds": 5}), "GR014", None, None),
    ("machine_maxbuilds_bool", R("docker+machine", machine={"MaxBuilds": True}), "GR014", None, None),
    ("autoscaler_max_use_0", R("docker-autoscaler", autoscaler={"max_use_count": 0}), "GR014", None, None),
    ("autoscaler_max_use_2", R("docker-autoscaler", autoscaler={"max_use_count": 2}), "GR014", None, None),
    ("instance_max_use", R("instance", autoscaler={"max_use_count": 10}), "GR014", None, None),
    ("autoscaler_sys_admin", R("docker-autoscaler", docker={"cap_add": ["SYS_ADMIN"]}), "GR028", None, None),
    ("autoscaler_socket", R("docker-autoscaler", docker={"volumes": ["/var/run/docker.sock:/s"]}), "GR009", None, None),
    ("windows_privileged", R("docker-windows", docker={"privileged": True}), "GR002", None, None),
    # --- shell and ssh-family executors -----------------------------------------------------
    ("shell_untrusted", R("shell"), "GR001", None, None),
    ("ssh_no_host_key_check", R("ssh", ssh={"host": "vm", "disable_strict_host_key_checking": True}), "GR013", None, None),
    ("ssh_no_host_key_check_string", R("ssh", ssh={"host": "vm", "disable_strict_host_key_checking": "true"}),
     "GR013", None, None),
    ("ssh_key_case", R("ssh", ssh={"host": "vm", "Disable_Strict_Host_Key_Checking": True}), "GR013", None, None),
    ("virtualbox_no_host_key_check", R("virtualbox", ssh={"disable_strict_host_key_checking": True},
                                       virtualbox={"base_name": "vm"}), "GR013", None, None),
    ("parallels_no_host_key_check", R("parallels", ssh={"disable_strict_host_key_checking": True},
                                      parallels={"base_name": "vm"}), "GR013", None, None),
    ("ssh_unpinned", R("ssh", ssh={"host": "vm"}), "GR046", None, None),
    ("virtualbox_unpinned", R("virtualbox", virtualbox={"base_name": "vm"}), "GR046", None, None),
    ("parallels_unpinned", R("parallels", parallels={"base_name": "vm"}), "GR046", None, None),
    ("virtualbox_any_image", R("virtualbox", ssh_known_hosts=[PIN], virtualbox={"base_name": "vm", "allowed_images": [".*"]}),
     "GR048", None, None),
    ("parallels_unanchored_image",
     R("parallels", ssh_known_hosts=[PIN], parallels={"base_name": "vm", "allowed_images": ["macos-14"]}),
     "GR048", None, None),
    ("runner_defaults_any_image", R("virtualbox", ssh_known_hosts=[PIN], virtualbox={"base_name": "vm"}), "GR048",
     with_defaults(runner={"virtualbox": {"allowed_images": ["ubuntu"]}}), None),
    ("machine_maxbuilds_string", R("docker+machine", machine={"MaxBuilds": "1"}), "GR014", None, None),
    # --- kubernetes -------------------------------------------------------------------------
    ("k8s_privileged", K(privileged=True), "GR002", None, None),
    ("k8s_escalation", K(allow_privilege_escalation=True), "GR007", None, None),
    ("k8s_cap_add", K(cap_add=["NET_ADMIN"]), "GR005", None, None),
    ("k8s_cap_add_sys_admin", K(cap_add=["SYS_ADMIN"]), "GR028", None, None),
    ("k8s_cap_add_all", K(cap_add=["ALL"]), "GR028", None, None),
    ("k8s_context_gives_back_setuid", K(build_container_security_context={"capabilities": {"add": ["SETUID"]}}),
     "GR006", None, None),
    ("k8s_context_drop_all_add_back", K(build_container_security_context={"capabilities": {"drop": ["ALL"],
                                                                                           "add": ["SETGID"]}}),
     "GR006", None, None),
    ("k8s_build_privileged", K(build_container_security_context={"privileged": True}), "GR002", None, None),
    ("k8s_helper_privileged", K(helper_container_security_context={"privileged": True}), "GR002", None, None),
    ("k8s_service_privileged", K(service_container_security_context={"privileged": True}), "GR003", None, None),
    ("k8s_build_escalation", K(build_container_security_context={"allow_privilege_escalation": True}),
     "GR007", None, None),
    ("k8s_service_escalation", K(service_container_security_context={"allow_privilege_escalation": True}),
     "GR029", None, None),
    ("k8s_build_root", K(build_container_security_context={"run_as_user": 0}), "GR030", None, None),
    ("k8s_pod_root", K(pod_security_context={"run_as_user": 0}), "GR030", None, None),
    ("k8s_service_root", K(service_container_security_context={"run_as_user": 0}), "GR030", None, None),
    ("k8s_proc_unmasked", K(build_container_security_context={"proc_mount": "Unmasked"}), "GR008", None, None),
    ("k8s_context_all", K(build_container_security_context={"capabilities": {"add": ["ALL"]}}), "GR028", None, None),
    ("k8s_hostpath_socket", HP("/var/run/docker.sock", "/var/run/docker.sock"), "GR009", None, None),
    ("k8s_hostpath_defaults_to_mount_path", HP(None, "/var/run/docker.sock"), "GR009", None, None),
    ("k8s_hostpath_data", HP("/srv/data", "/data"), "GR010", None, None),
    ("k8s_hostpath_root", HP("/", "/host"), "GR028", None, None),
    ("k8s_hostpath_containerd_dir", HP("/run/containerd", "/c"), "GR009", None, None),
    ("k8s_patch_host_network", PATCH('{"hostNetwork": true}'), "GR008", None, None),
    ("k8s_patch_host_pid_yaml", PATCH("hostPID: true\n"), "GR008", None, None),
    ("k8s_patch_json_host_ipc", PATCH('[{"op": "add", "path": "/hostIPC", "value": true}]', "json"), "GR008", None, None),
    ("k8s_patch_host_users", PATCH('{"hostUsers": false}', "merge"), "GR008", None, None),
    ("k8s_patch_hostpath_socket", PATCH('{"volumes": [{"name": "s", "hostPath": {"path": "/var/run/docker.sock"}}]}'),
     "GR009", None, None),
    ("k8s_patch_privileged", PATCH('{"containers": [{"name": "build", "securityContext": {"privileged": true}}]}'),
     "GR002", None, None),
    ("k8s_patch_path", K(pod_spec=[{"name": "p", "patch_path": "/etc/gitlab-runner/patch.yml"}]), "GR031", None, None),
    ("k8s_patch_unparsable", PATCH("{hostNetwork: [true"), "GR031", None, None),
    ("k8s_pull_if_not_present", K(pull_policy=["if-not-present"]), "GR012", None, None),
    ("k8s_pull_never", K(pull_policy="never"), "GR012", None, None),
    ("k8s_allowed_if_not_present", K(allowed_pull_policies=["if-not-present"]), "GR012", None, None),
    ("k8s_namespace_overwrite", K(namespace_overwrite_allowed="ci-.*"), "GR032", None, None),
    ("k8s_service_account_overwrite", K(service_account_overwrite_allowed=".*"), "GR032", None, None),
    ("k8s_bearer_token_overwrite", K(bearer_token_overwrite_allowed=True), "GR032", None, None),
    ("k8s_automount_token", K(automount_service_account_token=True), "GR032", None, None),
    ("k8s_key_case_privileged", K(Privileged=True), "GR002", None, None),
    # --- global settings ----------------------------------------------------------------------
    ("metrics_all_ipv4", R(), "GR018", None, {"listen_address": "0.0.0.0:9252"}),
    ("metrics_port_only", R(), "GR018", None, {"listen_address": ":9252"}),
    ("metrics_all_ipv6", R(), "GR018", None, {"listen_address": "[::]:9252"}),
    ("session_server", R(), "GR019", None, {"session_server": {"listen_address": "[::]:8093"}}),
]

# (id, role input, defaults or None, global settings or None)
CONTROLS = [
    ("role_defaults", R(), None, None),
    ("cap_drop_all", D(cap_drop=["ALL"]), None, None),
    ("cap_drop_prefixed_lower", D(cap_drop=["cap_setuid", "cap_setgid", "cap_net_raw", "cap_mknod"]), None, None),
    ("nnp_bare", D(security_opt=["no-new-privileges"]), None, None),
    ("nnp_equals", D(security_opt=["no-new-privileges=true"]), None, None),
    ("nnp_false_then_true", D(security_opt=["no-new-privileges:false", "no-new-privileges:true"]), None, None),
    ("nnp_with_profiles", D(security_opt=[NNP, "apparmor=docker-default", "label=type:container_t"]), None, None),
    ("seccomp_inline_errno", D(security_opt=[NNP, 'seccomp={"defaultAction":"SCMP_ACT_ERRNO","syscalls":[]}']), None, None),
    ("container_only_volumes", D(volumes=["/cache", "/builds-cache"]), None, None),
    ("tmpfs", D(tmpfs={"/tmp": "rw,noexec,nosuid"}), None, None),
    ("non_root_user", D(user="1000:1000"), None, None),
    ("pull_always", D(pull_policy=["always"], allowed_pull_policies=["always"]), None, None),
    ("services_nnp_equals", D(services_security_opt=["no-new-privileges=1"]), None, None),
    ("empty_lists", D(cap_add=[], devices=[], allowed_privileged_images=[]), None, None),
    ("machine_one_build", R("docker+machine", machine={"MaxBuilds": 1, "IdleCount": 0}), None, None),
    ("autoscaler_one_use", R("docker-autoscaler", autoscaler={"max_use_count": 1, "plugin": "p"}), None, None),
    ("ssh_strict", R("ssh", ssh={"host": "vm"}, ssh_known_hosts=[PIN]), None, None),
    ("virtualbox", R("virtualbox", ssh_known_hosts=[PIN], virtualbox={"base_name": "vm", "disable_snapshots": False}),
     None, None),
    ("parallels", R("parallels", ssh_known_hosts=[PIN], parallels={"base_name": "vm"}), None, None),
    ("virtualbox_whole_names", R("virtualbox", ssh_known_hosts=[PIN],
                                 virtualbox={"base_name": "vm", "allowed_images": ["^(vm|vm-next)$"]}), None, None),
    ("k8s_defaults", R("kubernetes"), None, None),
    ("k8s_non_root", K(pod_security_context={"run_as_user": 1000, "run_as_non_root": True}), None, None),
    ("k8s_context_drop_all", K(build_container_security_context={"capabilities": {"drop": ["ALL"]},
                                                                 "allow_privilege_escalation": False,
                                                                 "run_as_user": 1000}), None, None),
    ("k8s_empty_dir", K(volumes={"empty_dir": [{"name": "scratch", "mount_path": "/scratch"}]}), None, None),
    ("k8s_harmless_patch", PATCH('{"nodeSelector": {"pool": "ci"}}'), None, None),
    ("k8s_patch_hardening", PATCH('{"containers": [{"name": "build", "securityContext": {"privileged": false, '
                                  '"allowPrivilegeEscalation": false}}]}'), None, None),
    ("metrics_ipv6_loopback", R(), None, {"listen_address": "[::1]:9252"}),
    ("metrics_off", R(), None, {"listen_address": ""}),
]


def gate_result(given, defaults, settings):
    return runner_policy_gate([given], dict(SETTINGS, **(settings or {})), defaults or DEFAULTS, None)


def _overlay(base, given):
    out = dict(base)
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _overlay(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def written_straight(given, defaults, settings):
    """The config.toml a hand (or a bypassed gate) would write for this input."""
    settings = dict(SETTINGS, **(settings or {}))
    document = build_document(settings, [given], defaults or DEFAULTS)
    table = document["runners"][0]
    for key in SECTIONS:
        if key in given:
            table[key] = _overlay(table.get(key) or {}, given[key])
    return tomllib.loads(toml_document(document))


def audit_findings(document):
    findings, _runners = runner_config_audit.evaluate(document, "/etc/gitlab-runner/config.toml")
    return findings


def test_the_tables_are_as_large_as_promised():
    assert len(INSECURE) >= 120 and len(CONTROLS) >= 20
    assert len(set(c[0] for c in INSECURE + CONTROLS)) == len(INSECURE) + len(CONTROLS)


@pytest.mark.parametrize("case,given,policy_id,defaults,settings", INSECURE, ids=[c[0] for c in INSECURE])
def test_insecure_case_is_refused_by_the_gate(case, given, policy_id, defaults, settings):
    result = gate_result(given, defaults, settings)
    assert result["errors"] == [], result["errors"]
    if CATALOG[policy_id].enforcement == "warn":
        hits = [w for w in result["warnings"] if " - %s " % policy_id in w and not w.startswith("ACKNOWLEDGED")]
    else:
        hits = [r for r in result["refusals"] if " - %s " % policy_id in r]
    assert hits, "%s not refused/warned as %s: refusals=%s warnings=%s" % (
        case, policy_id, result["refusals"], result["warnings"])
    assert TOKEN not in json.dumps(result)


@pytest.mark.parametrize("case,given,policy_id,defaults,settings", INSECURE, ids=[c[0] for c in INSECURE])
def test_insecure_case_written_straight_is_reported_by_the_audit(case, given, policy_id, defaults, settings):
    findings = audit_findings(written_straight(given, defaults, settings))
    hits = [f for f in findings if f["id"] == policy_id and severity_at_least(f, "medium")]
    assert hits, "%s: audit did not report %s at medium or above: %s" % (
        case, policy_id, [(f["id"], f["severity"], f["evidence"]) for f in findings])


@pytest.mark.parametrize("case,given,defaults,settings", CONTROLS, ids=[c[0] for c in CONTROLS])
def test_control_passes_the_gate(case, given, defaults, settings):
    result = gate_result(given, defaults, settings)
    assert result["errors"] == [] and result["refusals"] == [] and result["warnings"] == [], result


@pytest.mark.parametrize("case,given,defaults,settings", CONTROLS, ids=[c[0] for c in CONTROLS])
def test_control_passes_the_audit(case, given, defaults, settings):
    findings = audit_findings(written_straight(given, defaults, settings))
    assert [f for f in findings if severity_at_least(f, "medium")] == []


# Settings only a hand-written config.toml can have: the role's document builder
# re-adds required drops and secure defaults, so the gate never sees these.
HAND_WRITTEN = [
    ("cap_drop_missing_setuid", "docker", {"docker": {"cap_drop": ["SETGID", "NET_RAW", "MKNOD"],
                                                      "security_opt": [NNP], "services_security_opt": [NNP]}}, "GR006"),
    ("cap_drop_absent", "docker", {"docker": {"security_opt": [NNP], "services_security_opt": [NNP]}}, "GR006"),
    ("security_opt_absent", "docker", {"docker": {"cap_drop": ["ALL"], "services_security_opt": [NNP]}}, "GR007"),
    ("services_security_opt_absent", "docker", {"docker": {"cap_drop": ["ALL"], "security_opt": [NNP]}}, "GR029"),
    ("services_privileged_follows_privileged", "docker",
     {"docker": {"privileged": True, "cap_drop": ["ALL"], "security_opt": [NNP], "services_security_opt": [NNP]}},
     "GR003"),
    ("k8s_escalation_unset", "kubernetes", {"kubernetes": {"cap_drop": ["ALL"]}}, "GR007"),
    ("k8s_default_drops_only_net_raw", "kubernetes", {"kubernetes": {"allow_privilege_escalation": False}}, "GR006"),
    ("k8s_cap_add_wins_over_default_drop", "kubernetes",
     {"kubernetes": {"allow_privilege_escalation": False, "cap_add": ["NET_RAW"], "cap_drop": ["SETUID", "SETGID", "MKNOD"]}},
     "GR006"),
]


@pytest.mark.parametrize("case,executor,sections,policy_id", HAND_WRITTEN, ids=[c[0] for c in HAND_WRITTEN])
def test_hand_written_config_is_reported_by_the_audit(case, executor, sections, policy_id):
    runner = {"name": "hand", "url": "https://gitlab.example.test", "token": TOKEN, "executor": executor,
              "feature_flags": {"FF_NETWORK_PER_BUILD": True, "FF_ENABLE_JOB_CLEANUP": True}}
    runner.update(sections)
    findings = audit_findings({"runners": [runner]})
    assert [f for f in findings if f["id"] == policy_id and severity_at_least(f, "medium")], findings


def test_add_and_drop_of_one_capability_differ_between_docker_and_kubernetes():
    """Docker drops, then adds (the add wins); GitLab Runner's kubernetes executor
    turns cap_add on, then cap_drop off (the drop wins). Same words, opposite effect."""
    drops = ["SETUID", "SETGID", "NET_RAW", "MKNOD"]
    common = {"url": "https://gitlab.example.test", "token": TOKEN,
              "feature_flags": {"FF_ENABLE_JOB_CLEANUP": True, "FF_NETWORK_PER_BUILD": True}}
    k8s = dict(common, name="k", executor="kubernetes",
               kubernetes={"allow_privilege_escalation": False, "cap_add": ["SETUID"], "cap_drop": drops})
    docker = dict(common, name="d", executor="docker",
                  docker={"cap_add": ["SETUID"], "cap_drop": drops, "security_opt": [NNP],
                          "services_security_opt": [NNP]})
    assert [f["id"] for f in audit_findings({"runners": [k8s]})] == []
    assert sorted(f["id"] for f in audit_findings({"runners": [docker]})) == ["GR005", "GR006"]


def test_docker_capability_model_matches_what_docker_did_on_this_machine():
    """Observed with Docker 20.10.24 here (CapBnd of a container started with these flags):
    --cap-add ALL plus the four required drops kept them dropped (0x3ff6ffdf3f, SYS_RESOURCE
    also dropped because this sandbox cannot grant it); --cap-drop SETUID --cap-add SETUID
    gave the default set back (0xa80425fb); --cap-drop ALL --cap-add SETGID left only SETGID."""
    from ansible_collections.hardened.gitlab_runner.plugins.module_utils.policy import (
        DEFAULT_CAPS, REQUIRED_CAP_DROP, docker_effective_caps)

    everything = docker_effective_caps(["ALL"], list(REQUIRED_CAP_DROP))
    assert not set(REQUIRED_CAP_DROP) & everything and "SYS_ADMIN" in everything
    assert docker_effective_caps(["SETUID"], ["SETUID"]) == DEFAULT_CAPS
    assert docker_effective_caps(["setgid"], ["ALL"]) == {"SETGID"}
    assert docker_effective_caps(["CAP_SETUID"], ["cap_setuid"]) == DEFAULT_CAPS
