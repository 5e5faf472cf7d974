# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv (once) and installs the package with the tested pins from constraints.txt.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test,mpi]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/understanding-rl-vision demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
