# Set-up and main jobs.  TORCH_SPEC pins the CPU build installed before the
# project (so pip does not fetch a CUDA build); override it on GPU machines,
# e.g. `make test TORCH_SPEC='torch'`.
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
PIP = $(PYTHON) -m pip install --disable-pip-version-check -q
OUT ?= out

.PHONY: install install-gpu graphviz demo test fuzz gallery bench clean

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
