"""scripts/runner_keys.py turns GitLab Runner's Go structs into key lists; tested on a small made-up source.

The real run (against GitLab Runner's repository at its tags) needs the source and is not run here:
see the script's docstring. Here: the Go reading rules, the data module it writes, and its index.
"""

import importlib.util
import os
import types

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _script():
    spec = importlib.util.spec_from_file_location("runner_keys_script", os.path.join(ROOT, "scripts", "runner_keys.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GO_MOD = "module gitlab.com/gitlab-org/gitlab-runner\n\ngo 1.24\n"

CONFIG_GO = r'''
package common

import (
    "time"

    api "k8s.io/api/core/v1"

    "gitlab.com/gitlab-org/gitlab-runner/helpers/docker"
)

type (
    StringOrArray []string
    Labels        map[string]string
)

func (p *StringOrArray) UnmarshalTOML(data any) error { return nil }

type DockerConfig struct {
    docker.Credentials
    Image      string        `toml:"image" json:"image"`
    Privileged *bool         `toml:"privileged,omitzero"`
    PullPolicy StringOrArray `toml:"pull_policy,omitempty"`
    Services   []Service     `toml:"services,omitempty"`
    Sysctls    map[string]string `toml:"sysctls,omitempty"`
    internal   int
    Skipped    string `toml:"-"`
}

type Service struct {
    Name  string `toml:"name"`
    Alias string `toml:"alias,omitempty"`
}

type KubernetesConfig struct {
    Namespace string                `toml:"namespace"`
    CapAdd    []api.Capability      `toml:"cap_add"`
    Volumes   KubernetesVolumes     `toml:"volumes"`
    PodLabels map[string]string     `toml:"pod_labels,omitempty"`
}

type KubernetesVolumes struct {
    HostPaths []struct {
        Name string `toml:"name"`
    } `toml:"host_path"`
}

type DockerMachine struct {
    IdleCount int
    MaxBuilds int `toml:"MaxBuilds,omitzero"`
    Autoscaling []*DockerMachineAutoscaling `toml:"autoscaling"`
}

type DockerMachineAutoscaling struct {
    Periods []string
    IdleTime time.Duration
}

type RunnerCredentials struct {
    URL   string `toml:"url"`
    Token string `toml:"token"`
}

type RunnerSettings struct {
    Executor     string            `toml:"executor"`
    Labels       Labels            `toml:"labels,omitempty"`
    FeatureFlags map[string]bool   `toml:"feature_flags"`
    Docker       *DockerConfig     `toml:"docker,omitempty"`
    Kubernetes   *KubernetesConfig `toml:"kubernetes,omitempty"`
    Machine      *DockerMachine    `toml:"machine,omitempty"`
}

type RunnerConfig struct {
    Name string `toml:"name"`
    RunnerCredentials
    *RunnerSettings
    SystemID string `toml:"-"`
}

// Config is the whole file.
type Config struct {
    Concurrent int             `toml:"concurrent"`
    Runners    []*RunnerConfig `toml:"runners"`
    Timeout    time.Duration   `toml:"shutdown_timeout,omitempty"`
    Saver      ConfigSaver     `toml:"-"`
}

type ConfigSaver interface {
    Save(filePath string, data []byte) error
}

func (c *Config) Load() (err error) {
    if c == nil {
        return nil
    }
    _ = struct{ A int }{A: 1}
    return nil
}
'''

CREDENTIALS_GO = r'''
package docker

type Credentials struct {
    Host      string `toml:"host,omitempty"`
    TLSVerify bool   `toml:"tls_verify,omitzero"`
}
'''

FLAGS_GO = r'''
package featureflags

const (
    NetworkPerBuild string = "FF_NETWORK_PER_BUILD"
    EnableJobCleanup       = "FF_ENABLE_JOB_CLEANUP"
)

type FeatureFlag struct {
    Name         string
    DefaultValue bool
}

var flags = []FeatureFlag{
    {
        Name:         "FF_TEST_FEATURE",
        DefaultValue: false,
    },
    {Name: NetworkPerBuild, DefaultValue: false},
    {
        Name: EnableJobCleanup,
    },
    {Name: "FF_LITERAL_NAME"},
}
'''


class FakeTree(object):
    def __init__(self, files, tag="v19.3.0", commit="0123456789abcdef0123456789abcdef01234567"):
        self.files, self.tag, self.commit = files, tag, commit

    def list_dir(self, path):
        prefix = path.rstrip("/") + "/"
        return sorted(set(name[len(prefix):].split("/")[0] for name in self.files if name.startswith(prefix)))

    def exists(self, path):
        return path in self.files or any(name.startswith(path + "/") for name in self.files)

    def read(self, path):
        return self.files[path]


def tree(**replace):
    files = {"go.mod": GO_MOD, "common/config.go": CONFIG_GO, "helpers/docker/credentials.go": CREDENTIALS_GO,
             "helpers/featureflags/flags.go": FLAGS_GO, "common/config_test.go": "package common\nthis is not Go"}
    files.update(replace)
    return FakeTree(files)


def test_struct_tags_become_sections():
    data = _script().key_lists(tree())
    assert data["sections"] == {
        (): ["concurrent", "runners", "shutdown_timeout"],
        ("runners",): ["docker", "executor", "feature_flags", "kubernetes", "labels", "machine", "name",
                       "token", "url"],
        ("runners", "docker"): ["host", "image", "privileged", "pull_policy", "services", "sysctls",
                                "tls_verify"],
        ("runners", "docker", "services"): ["alias", "name"],
        ("runners", "kubernetes"): ["cap_add", "namespace", "pod_labels", "volumes"],
        ("runners", "machine"): ["IdleCount", "MaxBuilds", "autoscaling"],
        ("runners", "machine", "autoscaling"): ["IdleTime", "Periods"],
    }
    assert data["arrays"] == [("runners",), ("runners", "docker", "services"), ("runners", "machine", "autoscaling")]
    assert data["open"] == [("runners", "docker", "sysctls"), ("runners", "kubernetes", "pod_labels"),
                            ("runners", "kubernetes", "volumes"), ("runners", "labels")]
    assert data["flags"] == ["FF_ENABLE_JOB_CLEANUP", "FF_LITERAL_NAME", "FF_NETWORK_PER_BUILD"]
    assert data["files"] == ["common/config.go", "helpers/docker/credentials.go", "helpers/featureflags/flags.go"]


def test_an_unknown_external_type_stops_the_script():
    script = _script()
    for old, new in (("Namespace string", "Namespace api.Namespace"), ("Concurrent int", "Concurrent api.Thing")):
        with pytest.raises(script.SourceError, match="is not in EXTERNAL_VALUES"):
            script.key_lists(tree(**{"common/config.go": CONFIG_GO.replace(old, new)}))


def test_files_for_other_systems_are_left_out():
    script = _script()
    windows = "package common\n\ntype Config struct {\n\tOther int `toml:\"other\"`\n}\n"
    data = script.key_lists(tree(**{"common/config_windows.go": windows}))
    assert "other" not in data["sections"][()]
    tagged = "//go:build windows\n\npackage common\n\ntype Config struct{}\n"
    assert script.key_lists(tree(**{"common/config_other.go": tagged}))["sections"][()] == data["sections"][()]


def test_the_data_module_round_trips(tmp_path):
    script = _script()
    data = script.key_lists(tree())
    text = script.render("v19.3.0", "0123456789abcdef0123456789abcdef01234567", data)
    module = types.ModuleType("v19_3")
    exec(compile(text, "v19_3.py", "exec"), module.__dict__)  # pylint: disable=exec-used
    assert module.TAG == "v19.3.0" and module.RELEASE == (19, 3)
    assert {path: list(names) for path, names in module.SECTIONS.items()} == data["sections"]
    assert [tuple(p) for p in module.OPEN_SECTIONS] == data["open"]
    assert list(module.FEATURE_FLAGS) == data["flags"]
    assert max(len(line) for line in text.splitlines()) <= 120
    (tmp_path / "v19_3.py").write_text(text)
    (tmp_path / "v18_11.py").write_text(text.replace('TAG = "v19.3.0"', 'TAG = "v18.11.4"'))
    assert script.committed(str(tmp_path)) == {"v18_11": "v18.11.4", "v19_3": "v19.3.0"}
    index = script.render_index(script.committed(str(tmp_path)))
    assert index.index("import v18_11") < index.index("import v19_3")
    assert "RELEASE_LINES = (\n    v18_11, v19_3,\n)" in index


def test_the_committed_index_is_what_the_script_writes():
    script = _script()
    out = os.path.join(ROOT, "plugins", "module_utils", "runner_keys")
    with open(os.path.join(out, "__init__.py"), encoding="utf-8") as handle:
        assert handle.read() == script.render_index(script.committed(out))


@pytest.mark.parametrize("tag", ["v19.3.0-rc1", "19.3.0", "v19.3"])
def test_only_release_tags_name_a_release_line(tag):
    script = _script()
    with pytest.raises(script.SourceError):
        script.release_line(tag)
