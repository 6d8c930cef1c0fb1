# programs-bridge: every target installs what it needs, so any of them can be the first command on a
# fresh clone.  `make demo` and `make test` are the two the README promises.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help demo test lint bench dynalite system-deps install clean samples build deploy lint-template build-PipelineFunction lock

# The deployment tools (SAM CLI, checkov, cfn-lint) live in their own virtualenv so that their pins never
# fight the project's; `make test` and `make demo` do not need them.
TOOLS_VENV  ?= .venv-tools
TOOLS_BIN   := $(TOOLS_VENV)/bin
TOOLS_STAMP := $(TOOLS_VENV)/.installed
# `sam build` runs build-PipelineFunction from a scratch copy of src/: find the tools from this Makefile's dir.
ROOT        := $(dir $(abspath $(firstword $(MAKEFILE_LIST))))
TOOLS_PIP   := $(if $(filter /%,$(TOOLS_VENV)),,$(ROOT))$(TOOLS_BIN)/pip
SAM         := SAM_CLI_TELEMETRY=0 $(TOOLS_BIN)/sam

help:
	@echo "make demo   - run the pipeline locally on the bundled samples"
	@echo "make test   - install everything (system packages included) and run the test suite"
	@echo "make lint   - ruff, mypy, and the template checks (cfn-lint, sam validate, checkov)"
	@echo "make bench  - the performance benchmarks (not part of make test); BENCH=\"ledger nightly\" runs some"
	@echo "make build  - sam build: the Lambda package for python3.13 on arm64 (docs/deploy.md)"
	@echo "make lock   - re-lock src/requirements.txt (the Lambda's dependencies) from pyproject.toml"
	@echo "make deploy - sam deploy --guided: create or update the stack in your AWS account"

# OpenSSH's sshd is what the delivery tests talk to; Debian ships it as openssh-server.
system-deps:
	@if ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ]; then \
	  echo "installing openssh-server (the SFTP tests run a real sshd on 127.0.0.1)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(STAMP)

test: system-deps $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	@$(MAKE) --no-print-directory lint-template

$(TOOLS_STAMP):
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_BIN)/pip install -q --upgrade pip
	$(TOOLS_BIN)/pip install -q 'aws-sam-cli>=1.170' 'checkov>=3.2' 'cfn-lint>=1.0'
	@touch $@

# uv writes the Lambda's lock: unlike pip-compile, which resolves for the interpreter running it (here
# CPython 3.11 on x86_64), `uv pip compile` resolves for a named Python version and platform.  Pinned, in
# the tools venv only; the stamp names the version, so changing UV_VERSION reinstalls it.
UV_VERSION := 0.13.9
UV         := $(TOOLS_BIN)/uv
UV_STAMP   := $(TOOLS_VENV)/.uv-$(UV_VERSION)
$(UV_STAMP): | $(TOOLS_STAMP)
	$(TOOLS_BIN)/pip install -q 'uv==$(UV_VERSION)'
	@touch $@

# cfn-lint, SAM's own validation (it needs a region but no credentials) and checkov's security checks;
# checkov findings are either fixed or skipped in template.yaml with the reason next to them.
lint-template: $(TOOLS_STAMP)
	$(TOOLS_BIN)/cfn-lint template.yaml
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(SAM) validate --lint
	$(TOOLS_BIN)/checkov -f template.yaml --framework cloudformation --skip-download --quiet --compact

build: $(TOOLS_STAMP)
	$(SAM) build

# The Lambda runtime: CPython 3.13 on arm64 (Amazon Linux 2023, glibc 2.34).
LAMBDA_PYTHON    := 3.13
LAMBDA_PLATFORMS := manylinux_2_34_aarch64 manylinux_2_28_aarch64 manylinux2014_aarch64
LOCK             := src/requirements.txt

# The lock of [project].dependencies for the Lambda runtime, with every file's hash.  Run it after changing
# them in pyproject.toml (tests/test_lambda_lock.py fails until you do); versions already locked are kept
# unless the new specifiers exclude them (`make lock UPGRADE=1` takes the newest of everything).
lock: $(UV_STAMP)
	$(UV) pip compile pyproject.toml --python-version $(LAMBDA_PYTHON) --python-platform aarch64-manylinux_2_34 \
	  --only-binary :all: --generate-hashes --no-strip-extras $(if $(UPGRADE),--upgrade) -o $(LOCK) --quiet
	{ echo "# The Lambda's runtime dependencies, [project].dependencies of pyproject.toml locked for CPython"; \
	  echo "# $(LAMBDA_PYTHON) on manylinux aarch64.  Made by 'make lock' (uv $(UV_VERSION)), with the command below;"; \
	  echo "# 'make build' installs exactly these (pip --require-hashes --no-deps).  Do not edit by hand."; \
	  cat $(LOCK); } > $(LOCK).tmp && mv $(LOCK).tmp $(LOCK)

# Called by `sam build` (template.yaml: BuildMethod makefile), in a scratch copy of src/ with ARTIFACTS_DIR
# set.  pip fetches the wheels of the Lambda runtime itself, so the build needs neither a local Python 3.13
# nor Docker.  It installs exactly the lock (requirements.txt is src/requirements.txt): every file must match
# a locked hash, and --no-deps because pip would evaluate the dependencies' environment markers for the
# Python running it, not for the Lambda's (pypa/pip#11664); the lock was resolved for the Lambda's.
build-PipelineFunction:
	$(TOOLS_PIP) install -q --target "$(ARTIFACTS_DIR)" --implementation cp --python-version $(LAMBDA_PYTHON) \
	  --only-binary=:all: $(addprefix --platform ,$(LAMBDA_PLATFORMS)) --require-hashes --no-deps -r requirements.txt
	cp -R programs_bridge "$(ARTIFACTS_DIR)/"
	find "$(ARTIFACTS_DIR)" -name __pycache__ -type d -prune -exec rm -rf {} +

deploy: build
	@echo "sam deploy --guided: asks for the stack name, region and parameters, shows the change set,"
	@echo "and saves your answers in samconfig.toml (then plain 'sam deploy' repeats them). docs/deploy.md"
	$(SAM) deploy --guided

# dynalite, an in-memory DynamoDB for Node.js, serves DynamoDB in `make bench` (bench/stack.py): moto's sorts the
# whole table on every Query, so a 1M-record ledger measured moto, not us.  Pinned by bench/dynalite's
# package-lock.json and installed with `npm ci` into bench/dynalite/node_modules; --ignore-scripts because the
# only install script builds the LevelDB binding for on-disk stores, and dynalite runs in memory.  Without node
# the benchmarks say so and keep DynamoDB on moto.
DYNALITE       := bench/dynalite
DYNALITE_STAMP := $(DYNALITE)/node_modules/.installed
$(DYNALITE_STAMP): $(DYNALITE)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --prefix $(DYNALITE) --ignore-scripts --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "node/npm not found: make bench keeps DynamoDB on moto (slow for a 1M-record ledger)"; fi

dynalite: $(DYNALITE_STAMP)

# Our modules are compiled first, as `pip install` compiles an installed package: with PYTHONDONTWRITEBYTECODE
# set (some CI images set it) every timed CLI run would otherwise compile them again (~50 ms a run).
bench: system-deps $(STAMP) $(DYNALITE_STAMP)
	$(BIN)/python -m compileall -q src bench >/dev/null
	$(BIN)/python -m bench $(BENCH)

samples: $(STAMP)
	$(BIN)/python -m programs_bridge.local.synthetic --samples samples

# The whole pipeline on an embedded local stack (moto server + a pure-Python SFTP server, no root, no AWS):
# four nights of bundled synthetic exports through the real Lambda handler.  Results in out/demo/.
demo: $(STAMP)
	$(BIN)/python -m programs_bridge demo --out out/demo

clean:
	rm -rf $(VENV) $(TOOLS_VENV) $(DYNALITE)/node_modules .aws-sam build out .pytest_cache .mypy_cache .ruff_cache
