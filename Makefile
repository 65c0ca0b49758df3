# The README's two commands: `make test` and `make demo`. Both create .venv when it is missing and install into it.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.refilled-installed

# Stable, faster CPU training: no mmap/munmap of activations on every step (see README, "Speed").
export GLIBC_TUNABLES ?= glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184
# The project machines keep the datasets beside the checkout; elsewhere data_root() falls back to ~/.cache/refilled.
ifneq ($(wildcard ../shared/data),)
export REFILLED_DATA ?= $(abspath ../shared/data)
endif
ifneq ($(wildcard ../shared/teachers),)
export REFILLED_TEACHERS ?= $(abspath ../shared/teachers)
endif

NBVAL := --nbval --nbval-current-env --nbval-sanitize-with experiments/nbval_sanitize.cfg
PIP_QUIET := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: help install sync-check clean-check test docs docs-check readme demo smoke-runs bench clean

help:
	@echo "make test   - install, check notebooks/package sync and cleanliness, run all tests (notebooks, pytest, nbval, docs)"
	@echo "make demo   - install and run the project's main job (see README)"
	@echo "make docs   - build the docs site (_proc/ by nbdev; Quarto if installed, else offline HTML in _docs/)"
	@echo "make docs-check - build the docs and load every page in headless Chromium (apt-get installs it when missing)"
	@echo "make readme - regenerate README.md from nbs/index.ipynb"
	@echo "make smoke-runs - re-record the smoke-scale papermill runs that make test verifies with nbval"
	@echo "make bench  - print the CPU benchmarks (data pipeline, backbones, CM loss, step overhead, subnormal teacher weights, CPU code paths)"

$(STAMP): settings.ini setup.py constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]" $(PIP_QUIET)
	$(BIN)/python -m pip check
	@touch $@

install: $(STAMP)

# Notebooks are the source: exporting them must reproduce the committed package exactly.
sync-check: install
	@tools/unchanged.sh refilled -- $(BIN)/nbdev_export || { echo "Never edit refilled/*.py by hand: edit nbs/, run nbdev_export, commit both."; exit 1; }

# Notebooks are committed clean (nbdev_clean leaves them unchanged).
clean-check: install
	@tools/unchanged.sh nbs -- $(BIN)/nbdev_clean || { echo "Notebooks must be committed clean: run nbdev_clean and commit."; exit 1; }

# One pytest run, so one summary line counts everything: unit tests, one item per notebook in nbs/ (nbdev's runner,
# `#| slow` and `#| gpu` cells skipped, cells of missing data sets too), the docs build and its browser check, and nbval
# over the committed smoke-scale run records: each once, those with numbers from training on another CPU code path in
# tests/test_records.py (experiments/runs/smoke/conftest.py deselects them here), the others on this CPU's own.
#
# The session runs on TEST_WORKERS pytest-xdist workers (one per core, at most 4), each with TEST_THREADS torch threads,
# so that one worker's single-threaded work (imports, kernel starts, notebook runs, collection) overlaps another's
# training. A group of items that must share a worker (a notebook's cells, a module's shared fixture) stays together
# (tests/conftest.py, `xdist_group`). TEST_WORKERS=1 runs it in this process, as before.
NPROC        := $(shell nproc 2>/dev/null || echo 1)
TEST_WORKERS ?= $(shell n=$(NPROC); echo $$(( n < 4 ? n : 4 )))
TEST_THREADS ?= $(shell echo $$(( $(NPROC) / $(TEST_WORKERS) > 0 ? $(NPROC) / $(TEST_WORKERS) : 1 )))
XDIST        := $(if $(filter 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)
test: sync-check clean-check
	OMP_NUM_THREADS=$(TEST_THREADS) $(BIN)/python -m pytest tests experiments/runs/smoke $(NBVAL) $(XDIST) --durations=15

docs: install
	$(BIN)/python tools/docs.py build

# The offline site as a reader sees it: every page of _docs/ loaded in headless Chromium with the network blocked
# (math typeset by the local MathJax, no Quarto markup or raw TeX left, sidebar complete, links resolve).
docs-check: install
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }
	$(BIN)/python tools/docs.py build
	$(BIN)/python tools/docs_browser_check.py

readme: install
	$(BIN)/python tools/docs.py readme

# The project's main job: a small end-to-end GKD run on CIFAR-100 at 60 % overlap (teacher, vanilla student,
# REFILLED), a few epochs each; prints the accuracy table and writes curves to experiments/work/demo/.
demo: install
	$(BIN)/refilled demo --out_dir experiments/work/demo

# The committed smoke-scale run records (experiments/runs/smoke), re-executed by `make test` with nbval.
smoke-runs: install
	$(BIN)/refilled sweep experiments/params/smoke.yaml
	$(BIN)/python tools/record.py nbs/experiments/gkd_analysis.ipynb experiments/runs/smoke/gkd_analysis.ipynb
	$(BIN)/python tools/record.py nbs/experiments/gkd_results.ipynb experiments/runs/smoke/gkd_results.ipynb
	$(BIN)/python tools/record.py nbs/experiments/gkd_fidelity.ipynb experiments/runs/smoke/gkd_fidelity.ipynb
	$(BIN)/python tools/record.py nbs/experiments/standard_kd.ipynb experiments/runs/smoke/standard_kd.ipynb
	$(BIN)/python tools/record.py nbs/experiments/fewshot_miniimagenet.ipynb experiments/runs/smoke/fewshot_miniimagenet.ipynb -f experiments/params/smoke_fewshot.yaml
	$(BIN)/python tools/record.py nbs/experiments/incremental_cifar.ipynb experiments/runs/smoke/incremental_cifar.ipynb
	$(BIN)/python tools/record.py nbs/tutorials/own_teacher_own_data.ipynb experiments/runs/smoke/own_teacher_own_data.ipynb

bench: install
	$(BIN)/python benchmarks/data_pipeline.py
	$(BIN)/python benchmarks/backbone_throughput.py
	$(BIN)/python benchmarks/cm_loss.py
	$(BIN)/python benchmarks/step_overhead.py
	$(BIN)/python benchmarks/subnormal_teacher.py
	$(BIN)/python benchmarks/cpu_code_paths.py

clean:
	rm -rf _proc _docs .pytest_cache
