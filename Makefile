# The README's two commands: `make repro` and `make test`; `make docs` builds the documentation site.
# Both create .venv if it is absent and install requirements.txt into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# DVC stage commands call `python`: make it the virtualenv's.
export PATH := $(BIN):$(PATH)

.PHONY: install test-deps repro test test-fast docs dag params check review prune decide distribute bench clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@test -n "$(PYTHON)" || { echo "make: no python3 found; install Python 3.11 (or run make PYTHON=/path/to/python3.11)" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	    echo "make: '$(PYTHON) -m venv' failed; on Debian/Ubuntu: sudo apt-get install -y python3-venv" >&2; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

repro: install
	$(BIN)/dvc repro

# What the tests need beyond requirements.txt (Chromium): installed as root, or a one-line instruction
# and a non-zero exit before any test runs.
test-deps:
	@sh tests/system-deps.sh

test: install test-deps
	$(BIN)/python -m pytest

# The edit loop: every test but the slow ones (DVC stages in subprocesses, real training runs).
test-fast: install
	$(BIN)/python -m pytest -m "not slow"

# The documentation site (mkdocs.yml, docs/) into site/; --strict fails on a broken link or anchor.
# Its tables, counts and times are generated from the files that hold them (docs/generate.py), and
# the README's generated line (the two commands' run times) is refreshed first.
docs: install
	$(BIN)/python docs/generate.py readme
	$(BIN)/mkdocs build --strict

dag: install
	$(BIN)/dvc dag

# params.yaml is composed from conf/ (DVC's Hydra support); regenerate it after editing conf/.
params: install
	$(BIN)/python -m stages.preflight --write --params-only

# A Markdown review of the workspace against a revision (params, quality metrics, comparison,
# verdicts, figures): make review BASE=origin/main
BASE ?= HEAD
review: install
	$(BIN)/python -m stages.review $(BASE)

# Remove the outputs of runs and models no longer in params.yaml (after switching presets):
# make prune (DRY=1 lists them only)
prune: install
	$(BIN)/python -m stages.prune $(if $(DRY),--dry-run)

# Add seeds, a cached `dvc exp run` per look, until every pair is decided: make decide ARGS="--set +experiment=dogs13"
decide: install
	$(BIN)/python -m stages.decide $(ARGS)

# Spread the study's train@ runs over a Dask cluster, one DVC remote for all (docs/cluster.md):
# make distribute SCHEDULER=tcp://host:8786
distribute: install
	@test -n "$(SCHEDULER)" || { echo "make: give the Dask scheduler: make distribute SCHEDULER=tcp://host:8786 (docs/cluster.md)" >&2; exit 2; }
	$(BIN)/python -m stages.cluster run --scheduler $(SCHEDULER) $(ARGS)

# Validate a preset and check its dataset and weights: make check EXP=dogs13
check: install
	$(BIN)/python -m stages.preflight $(if $(EXP),+experiment=$(EXP))

# Every benchmark script, one after another (each prints its figures and writes benchmarks/<name>.csv);
# study_runtime.py after memory.py and pipeline.py: it prints preflight's projection, which reads all three CSVs.
# input_pipeline.py reads the prepared tensors: `dvc repro prepare` makes them (a no-op when up to date).
bench: install
	$(BIN)/dvc repro prepare
	$(BIN)/python benchmarks/input_pipeline.py
	$(BIN)/python benchmarks/memory.py
	$(BIN)/python benchmarks/pipeline.py
	$(BIN)/python benchmarks/study_runtime.py
	$(BIN)/python benchmarks/gpu_training.py
	$(BIN)/python benchmarks/frozen_features.py

clean:
	rm -rf $(VENV) .pytest_cache site
