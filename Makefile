# The two commands of the README: `make run` (the pipeline on the bundled data) and `make test`.
# Each creates .venv from requirements.lock with uv when it is missing; uv itself is installed into .tools/.
PYTHON ?= python3.11
UV := .tools/bin/uv
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint bench lock clean chromium grpc-front

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==0.13.9

$(STAMP): requirements.lock setup.py $(UV)
	test -d $(VENV) || $(UV) venv --seed --quiet --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(VENV) $(UV) pip sync --quiet --compile-bytecode requirements.lock
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet --no-deps --editable .
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/taxi-pipeline run $(ARGS)

# `taxi-pipeline serve`'s gRPC transport (serving/grpc_front/main.go), built into the venv with Go and grpc-go from
# Debian (installed with apt-get when missing and this is root, as in CI; pinned here). Without it the server
# serves gRPC from Python instead (slower, the same answers) and the tests that need it skip, saying why.
GO_PACKAGES := golang-go=2:1.19~1 golang-google-grpc-dev=1.33.3-2
GRPC_FRONT := $(VENV)/bin/taxi-grpc-front
GOPATH_DEBIAN := /usr/share/gocode
# Whether Go and Debian's grpc-go are there to build with.
GO_READY := command -v go >/dev/null 2>&1 && [ -d $(GOPATH_DEBIAN)/src/google.golang.org/grpc ]

grpc-front: $(GRPC_FRONT)

$(GRPC_FRONT): serving/grpc_front/main.go $(STAMP)
	@{ $(GO_READY); } || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(GO_PACKAGES) >/dev/null; } || true
	@if $(GO_READY); then \
		cd serving/grpc_front && GOPATH=$(GOPATH_DEBIAN) GO111MODULE=off GOFLAGS= GOCACHE=$(abspath .tools/go-cache) \
			go build -trimpath -o $(abspath $@) . ; \
	else echo "no Go with grpc-go (Debian: $(GO_PACKAGES)): gRPC will be served from Python, slower"; fi

# The unit tests run on two processes (pytest-xdist): each pays TensorFlow's import once, and then they take
# half the time. The end-to-end tests run in one process, which builds the small pipeline run they share once.
test: $(STAMP) chromium grpc-front
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -n 2 tests/unit $(PYTEST_ARGS)
	$(VENV)/bin/python -m pytest tests/e2e $(PYTEST_ARGS)

# The unit tests only (no pipeline run, no Airflow, no server): under a minute, for the edit-test loop.
test-fast: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -n 2 tests/unit $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(VENV)/bin/python bench/local_run.py $(ARGS)

# Debian's chromium for the run explorer's browser tests (driven by Playwright; no browser is downloaded):
# installed with apt-get when it is missing and this is root, as in CI. Otherwise those tests skip, saying why.
chromium:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "could not install chromium: the browser tests will skip"

# Re-resolve requirements.in into the pinned requirements.lock (needs network access to PyPI).
lock: $(UV)
	$(UV) pip compile --quiet --python-version 3.11 requirements.in -o requirements.lock

clean:
	rm -rf $(VENV) .tools pipeline_home
