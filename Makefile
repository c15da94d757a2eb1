# The two commands a new user needs: `make up` (a running cluster) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: up down status test test-fast lint proto bench clean

$(BIN)/kubelab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

up: $(BIN)/kubelab            ## start the embedded cluster in the background, with the seed's shop
	$(BIN)/kubelab up
	$(BIN)/kubelab apply -f examples/shop.yaml

down: $(BIN)/kubelab
	$(BIN)/kubelab down

status: $(BIN)/kubelab
	$(BIN)/kubelab status

test: $(BIN)/kubelab          ## the whole suite: lint, types, import layers, unit, integration
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q

test-fast: $(BIN)/kubelab     ## the fast tier, well under a minute: ruff and the unit tests (no etcd, no processes, no Docker)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q -n auto -m "not integration and not chaos and not lab" tests/unit

lint: $(BIN)/kubelab
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

proto: $(BIN)/kubelab         ## regenerate kubelab/v1 from proto/
	$(BIN)/python proto/generate.py

bench: $(BIN)/kubelab          ## every benchmark docs/performance.md quotes but the soak (dns and dataplane need apt packages)
	$(BIN)/python bench/api.py
	$(BIN)/python bench/cli.py
	$(BIN)/python bench/pods.py
	$(BIN)/python bench/propagation.py
	$(BIN)/python bench/lb.py
	$(BIN)/python bench/dns.py
	$(BIN)/python bench/dataplane.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

.PHONY: image
image:                         ## the kubelab container image (kubelab:latest), no registry needed
	compose/build-image.sh

.PHONY: lab lab-down
LAB_KUBECONFIG := compose/lab.kubeconfig
lab: image $(BIN)/kubelab      ## the multi-node lab in containers (compose/lab.yaml), and a kubeconfig for kubectl
	compose/compose.sh -f compose/lab.yaml -p kubelab up -d
	$(BIN)/python -m kubelab.lab.kubeconfig http://$${KUBELAB_PUBLIC_NET:-172.29.0}.20:8080 $(LAB_KUBECONFIG)

lab-down:
	compose/compose.sh -f compose/lab.yaml -p kubelab down -v -t 2
	rm -f $(LAB_KUBECONFIG)
