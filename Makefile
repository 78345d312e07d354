# Set-up and common jobs. `make train` and `make test` each create .venv and install on first use.
PYTHON ?= python3
VENV ?= .venv
PIP_EXTRA ?=     # extra pip flags, e.g. an index with the CPU build of torch (see README)
BIN := $(VENV)/bin

.PHONY: install train test test-slow clean

install: $(VENV)/.installed

# torch is named in the same pip command as the package, so one resolution picks the pinned build
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check $(PIP_EXTRA) torch==2.13.0 -e '.[test]'
	touch $@

train: install   ## the main job: `make train ARGS="model.n_layers=2"` passes Hydra overrides
	$(BIN)/idattn train $(ARGS)

test: install    ## the test suite (slow checks excluded)
	$(BIN)/pytest -q

test-slow: install   ## the checks marked slow (minutes each)
	$(BIN)/pytest -q -m slow

clean:
	rm -rf $(VENV) outputs .pytest_cache
