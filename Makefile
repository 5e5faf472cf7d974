# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv (once) and installs the package with the tested pins from constraints.txt.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test docs lint format typecheck install chromium frontend check-frontend clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test,mpi,docs]"
	# pytorch-grad-cam, a test reference: without its torchvision dependency, whose wheel fails to
	# load beside torch 2.13.0+cpu ("operator torchvision::nms does not exist"); see
	# tests/reference_libraries.py.
	$(BIN)/pip install --quiet --no-deps -c constraints.txt grad-cam ttach
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/understanding-rl-vision demo --overwrite

# The browser tests drive the system Chromium (Playwright cannot download browsers here).
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  echo "installing Chromium for the browser tests (apt-get)"; \
	  apt-get install -y -qq chromium >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
	  { echo "error: the browser tests need Chromium: apt-get install -y chromium"; exit 1; }; }

# The suite CI runs (.ci/run): lint, the user guide with warnings as errors, the Python tests, then the
# committed bundle against a fresh build (that last step needs Node >= 20.19 and the npm registry; it
# fails, never skips, without them).
test: $(STAMP) chromium lint docs
	$(BIN)/python -m pytest -q
	@command -v npm >/dev/null || { echo "error: the bundle check needs Node >= 20.19 and npm"; exit 1; }
	$(MAKE) check-frontend

# The user guide (mkdocs.yml: docs/ and the API reference from the docstrings) into site-docs/, a static
# folder. --strict: a broken link or anchor, a missing page or a docstring it cannot read fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Style and types, enforced in CI (make test runs it first): ruff's rules and format, then mypy.
lint: $(STAMP)
	$(BIN)/ruff check understanding_rl_vision tests benchmarks tools examples
	$(BIN)/ruff format --check understanding_rl_vision tests benchmarks tools examples
	$(MAKE) typecheck

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix understanding_rl_vision tests benchmarks tools examples
	$(BIN)/ruff format understanding_rl_vision tests benchmarks tools examples

# The page: Svelte sources in svelte/, built into the package (committed). Needs Node and npm.
frontend:
	cd svelte && npm ci --no-audit --no-fund && npm run build

# CI: fail if the committed bundle differs from a fresh build of svelte/.
check-frontend:
	cd svelte && npm ci --no-audit --no-fund && npm run check-built

clean:
	rm -rf $(VENV) build *.egg-info
