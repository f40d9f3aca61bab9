# Two commands do everything on a fresh Debian-family machine, as root:
#   make demo   - converge playbooks/site.yml on a disposable local runner host container
#   make test   - lint, ansible-test sanity and units, release checks, every Molecule
#                 scenario and the integration tests
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := $(CURDIR)/.venv
COLLECTIONS := $(CURDIR)/.collections
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(VENV)/bin:$(PATH)
# Molecule scenarios, in the order they run.
SCENARIOS ?= default install_errors config_gate audit docker_executor network shell_executor

.PHONY: help deps venv link images fixtures demo demo-clean test lint sanity unit release molecule integration bench docs clean

help:
	@echo "make demo   converge site.yml on a disposable local runner host (container hgr-demo)"
	@echo "make test   run every test: lint, sanity, unit, release, Molecule ($(SCENARIOS)), integration"
	@echo "make docs   regenerate the role READMEs from meta/argument_specs.yml"
	@echo "make bench  time site.yml re-runs against the floor, the audit for 1 and 10 hosts, 1 vs 50 runners"
	@echo "make clean  remove the demo container, the test repository server and build output"

deps:
	@scripts/host-deps.sh

venv: deps
	@scripts/venv.sh

# Make the checkout resolvable as hardened.gitlab_runner.
link:
	@mkdir -p $(COLLECTIONS)/ansible_collections/hardened
	@ln -sfn ../../.. $(COLLECTIONS)/ansible_collections/hardened/gitlab_runner

images: deps
	@tests/images/build.sh 12 & p12=$$!; tests/images/build.sh 13 & p13=$$!; wait $$p12; wait $$p13

# The stand-in gitlab-runner packages and their signed apt repository, served
# to the test containers (GitLab's package servers are unreachable here).
fixtures: images
	@tests/fixtures/build.sh
	@tests/fixtures/serve.sh start

demo: venv link fixtures
	@scripts/demo.sh

demo-clean:
	@docker rm -f hgr-demo >/dev/null 2>&1 || true

test: venv link fixtures lint sanity unit release molecule integration

# ansible-lint installs the collection under test into ~/.ansible/collections,
# where a stale copy would shadow the checkout: give it a fresh home each run.
lint: venv link
	yamllint --strict .
	rm -rf .cache/lint-home && mkdir -p .cache/lint-home
	HOME=$(CURDIR)/.cache/lint-home ansible-lint --profile production

# ansible-test, from a copy of the checkout under ansible_collections/ (see the
# script). Always --local with the pinned .venv: --venv and --docker need downloads
# this machine cannot make (ansible-test's pip bootstrap, container images).
sanity: venv link
	scripts/ansible-test.sh sanity

# The unit tests through ansible-test units (its collection loader, --local as above).
unit: venv link
	scripts/ansible-test.sh units

# What ships: the built tarball's file list, declared dependencies, every plugin and
# role documented (ansible-doc), role READMEs in step with their argument specs,
# the execution environment's build context (ansible-builder create).
release: venv link
	pytest -q tests/release

docs: venv
	python scripts/role_docs.py

# End-to-end checks that need a whole ansible-playbook run (e.g. no token in -vvv output).
integration: venv link fixtures
	pytest -q tests/integration

# Timing only, never asserted: the floor of any play, the first and second
# converge of the whole site.yml and their ratio, the audit for 1 and 10 hosts,
# then converge times for 1 and 50 runners.
bench: venv link fixtures
	python benchmarks/site_rerun.py

# docker_executor's and network's runner hosts keep their own Docker engine's
# data on named volumes, which Molecule's destroy leaves behind: removed before and after.
DIND_VOLUMES := hgr-dockerexec-debian12-lib hgr-dockerexec-debian13-lib hgr-network-debian12-lib hgr-network-debian13-lib hgr-shellexec-debian12-lib hgr-shellexec-debian13-lib
molecule: venv link fixtures
	@docker volume rm -f $(DIND_VOLUMES) >/dev/null
	@for s in $(SCENARIOS); do echo "=== molecule test -s $$s"; molecule test -s $$s; done
	@docker volume rm -f $(DIND_VOLUMES) >/dev/null

clean: demo-clean
	@tests/fixtures/serve.sh stop || true
	rm -rf tests/fixtures/.build .cache
