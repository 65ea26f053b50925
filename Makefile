# Set-up and main jobs.  TORCH_SPEC pins the CPU build installed before the
# project (so pip does not fetch a CUDA build); override it on GPU machines,
# e.g. `make test TORCH_SPEC='torch'`.
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
PIP = $(PYTHON) -m pip install --disable-pip-version-check -q
OUT ?= out

.PHONY: install install-gpu graphviz demo test fuzz gallery bench clean data science-mace bench-gpu-dry

install:
	$(PIP) "$(TORCH_SPEC)"
	$(PIP) -e ".[test,models]"

# The gpu extra (triton) after the pinned torch, which it leaves alone: the Triton backend's tests
# run its kernels through Triton's interpreter on machines without a GPU (docs/dependencies.md).
install-gpu: install
	$(PIP) -e ".[test,models,gpu,science]"

graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  echo "installing graphviz (the dot binary) ..."; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq graphviz >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq graphviz >/dev/null; fi; }

# The main job: compile, render and verify every example, then print a summary table.
demo: install graphviz
	$(PYTHON) -m fusionlang build examples/diagrams -o $(OUT)

test: install-gpu graphviz
	$(PYTHON) -m pytest tests

# The pipeline fuzzer at full size (CI runs 10,000 cases inside `make test`).
fuzz: install
	$(PYTHON) tests/fuzz_pipeline.py 100000

gallery: install graphviz
	$(PYTHON) docs/make_gallery.py

# Rewrites the tables of docs/performance.md (and coupling.md, performance-check.md); about 15 minutes.
bench: install
	$(PYTHON) benchmarks/bench_tensor_product.py
	$(PYTHON) benchmarks/bench_operator.py
	$(PYTHON) benchmarks/bench_graph.py
	$(PYTHON) benchmarks/bench_compile.py
	$(PYTHON) benchmarks/bench_coupling.py
	$(PYTHON) benchmarks/bench_check.py

# The science study's datasets (docs/science.md, "Data"): GFN2-xTB MD of ethanol, aspirin and malonaldehyde
# and the QM9 subset; resumable (a rerun continues), and a no-op when data/ is up to date.  About 45 minutes.
data: install
	$(PIP) -e ".[models,science]"
	OMP_NUM_THREADS=1 $(PYTHON) -m fusionlang.data md --molecule all --out data/md
	$(PYTHON) -m fusionlang.data qm9 --out data/qm9

# mace-torch, the reference for the MACE-like model, in its own environment (it pins e3nn 0.4.4):
# MACE_VENV is created if absent (the pinned torch first, then mace-torch), then trained on MACE_MOLECULES.
MACE_VENV ?= .venv-mace
MACE_MOLECULES ?= ethanol
science-mace:
	test -x $(MACE_VENV)/bin/python || $(PYTHON) -m venv $(MACE_VENV)
	$(MACE_VENV)/bin/python -m pip show -q mace-torch >/dev/null 2>&1 || { \
	  $(MACE_VENV)/bin/python -m pip install --disable-pip-version-check -q "$(TORCH_SPEC)" && \
	  $(MACE_VENV)/bin/python -m pip install --disable-pip-version-check -q mace-torch "$(TORCH_SPEC)"; }
	for molecule in $(MACE_MOLECULES); do \
	  $(MACE_VENV)/bin/python science/mace_baseline.py --molecule $$molecule || exit 1; done

# The GPU benchmark's logic on the CPU (tiny sizes, kernels through Triton's interpreter), before
# spending device minutes; a few minutes, so outside `make test` (docs/gpu.md).
bench-gpu-dry: install-gpu
	$(PYTHON) benchmarks/gpu/bench_gpu.py --dry-run --out $(OUT)/bench_gpu_dry.json

clean:
	rm -rf $(OUT) build dist *.egg-info .pytest_cache .hypothesis

# The science study of docs/science.md (resumable; at most 2 hours on the 2-core machine), and its
# ~10-minute smoke version.  Both need the datasets (`make data`) and rewrite docs/science.md's table.
.PHONY: science-install science science-quick
science-install: install
	$(PIP) -e ".[test,models,science]"

science: science-install
	$(PYTHON) science/run.py --study science/configs/study.toml

science-quick: science-install
	$(PYTHON) science/run.py --study science/configs/quick.toml
