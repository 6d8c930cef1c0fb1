# programs-bridge: every target installs what it needs, so any of them can be the first command on a
# fresh clone.  `make demo` and `make test` are the two the README promises.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help demo test lint bench system-deps install clean samples

help:
	@echo "make demo   - run the pipeline locally on the bundled samples"
	@echo "make test   - install everything (system packages included) and run the test suite"
	@echo "make lint   - ruff, mypy and cfn-lint"
	@echo "make bench  - the performance benchmarks (not part of make test)"

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
	@if [ -f template.yaml ]; then $(BIN)/cfn-lint template.yaml; fi

bench: system-deps $(STAMP)
	$(BIN)/python -m bench

samples: $(STAMP)
	$(BIN)/python -m programs_bridge.synthetic --samples samples

# Until the end-to-end pipeline demo lands (issue 5): the converter on three bundled samples.
DEMO_SAMPLES := samples/powerschool.csv samples/damaged-excel.csv samples/wrong-file-course-roster.csv
demo: $(STAMP)
	@mkdir -p out
	@for f in $(DEMO_SAMPLES); do \
	  name=$$(basename $$f); echo; echo "== programs-bridge convert $$f"; \
	  $(BIN)/programs-bridge convert $$f -o out/$$name.programs.txt --report out/$$name.report.json; \
	  echo "   (exit code $$?)"; \
	done; echo; echo "results in out/"

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
