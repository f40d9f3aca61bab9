#!/usr/bin/env bash
# Start a disposable local runner host (a Debian systemd container named hgr-demo),
# converge `hardened.gitlab_runner.site` on it and show what it did.
# The gitlab-runner package installed here is the test stand-in served by
# tests/fixtures (GitLab's package servers are unreachable on the test machines);
# on your own hosts the role installs the official package from GitLab.
set -euo pipefail
cd "$(dirname "$0")/.."
name=hgr-demo
release="${DEMO_DEBIAN_RELEASE:-13}"
state_dir=.cache/demo
mkdir -p "$state_dir"

echo "demo: starting disposable runner host $name (Debian $release)"
# The demo runner has the docker executor, so site.yml also sets up the Docker
# engine in the host. Its hardened daemon.json turns userland-proxy off, for
# which dockerd needs route_localnet on its bridges: /proc/sys is read-only in
# the container, so new interfaces inherit it from here instead.
tests/images/run-host.sh "$name" "$release" --label hardened-gitlab-runner.demo=true \
  --sysctl net.ipv4.conf.default.route_localnet=1

cat > "$state_dir/inventory.yml" <<INV
---
gitlab_runners:
  hosts:
    $name:
      ansible_connection: community.docker.docker
      # Already root in the container, which has no sudo.
      ansible_become: false
      gitlab_runner_repo_url: $(tests/fixtures/serve.sh url)
      gitlab_runner_repo_key_fingerprint: $(cat tests/fixtures/.build/fingerprint)
      # A fake token: the demo has no GitLab to talk to.
      gitlab_runner_runners:
        - name: demo-docker
          url: https://gitlab.example.test
          token: glrt-FAKE-demo-token-not-real
          executor: docker
INV

echo "demo: ansible-playbook -i $state_dir/inventory.yml hardened.gitlab_runner.site"
ansible-playbook -i "$state_dir/inventory.yml" hardened.gitlab_runner.site

echo
echo "demo: what is on $name now"
docker exec "$name" bash -c '
  printf "  service gitlab-runner: %s (enabled: %s)\n" "$(systemctl is-active gitlab-runner)" "$(systemctl is-enabled gitlab-runner)"
  printf "  %s\n" "$(gitlab-runner --version | head -n1)"
  printf "  held packages: %s\n" "$(apt-mark showhold | tr "\n" " ")"
  printf "  %s\n" "$(stat -c "%A %U:%G %n" /etc/gitlab-runner)"
  printf "  apt source: %s\n" "$(grep ^URIs /etc/apt/sources.list.d/gitlab-runner.sources)"
  printf "  %s\n" "$(stat -c "%A %U:%G %n" /etc/gitlab-runner/config.toml)"
  echo "  config.toml (token left out):"
  grep -E "^ *(name|executor|privileged|services_privileged|cap_drop|security_opt|pull_policy|FF_[A-Z_]+) =" \
    /etc/gitlab-runner/config.toml | sed "s/^ */    /"
'
docker exec "$name" systemctl is-active --quiet gitlab-runner \
  || { echo "demo: the gitlab-runner service is not running" >&2; exit 1; }
echo "demo: audit report of the host: audit-reports/summary.md (also report.json, junit.xml)"
echo "demo: done. Remove the host with: make demo-clean"
