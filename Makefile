# inference-operator: every install and run step lives here (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KUBECONFIG_LOCAL := $(CURDIR)/.cluster/kubeconfig
CRD := crds/inference.io_inferenceservices.yaml
CHART_CRD := charts/inference-operator/crds/inference.io_inferenceservices.yaml
include hack/versions.env
BIN := $(or $(INFERENCE_OPERATOR_CACHE),$(HOME)/.cache/inference-operator)/bin/$(KUBERNETES_VERSION)
KUBECTL := $(BIN)/kubectl --kubeconfig=$(KUBECONFIG_LOCAL)

.PHONY: help setup binaries cluster-up cluster-down cluster-status crds chart-values install-crds run test unit e2e lint \
	chart-test bench bench-latency bench-gateway bench-llm bench-autoscale bench-lora chaos images image-constraints

help:
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(PY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(PY)

setup: $(PY) binaries ## Python venv and the cached cluster binaries

binaries: ## build the local cluster's binaries once (cached under ~/.cache/inference-operator)
	bash hack/build-binaries.sh

cluster-up: $(PY) ## start (or reuse) the local cluster: etcd, apiserver, controller-manager, scheduler, kwok
	$(PY) hack/localcluster.py up

cluster-down: ## stop the local cluster's processes (only those it started)
	$(PYTHON) hack/localcluster.py down

cluster-status: ## show the local cluster's components and nodes
	$(PYTHON) hack/localcluster.py status

crds: $(PY) ## regenerate the CRD from the pydantic models (and the chart's copy)
	$(PY) -m inference_operator.api.crd --out $(CRD)
	@if [ -d charts/inference-operator ]; then mkdir -p $(dir $(CHART_CRD)) && cp $(CRD) $(CHART_CRD); fi

chart-values: $(PY) ## regenerate the chart's values.schema.json and README values table from values.yaml's comments
	$(PY) hack/chart_values.py

install-crds: cluster-up
	$(KUBECTL) apply --server-side -f crds/
	$(KUBECTL) wait --for=condition=Established crd/inferenceservices.inference.io --timeout=60s

run: install-crds ## cluster up, CRDs installed; the operator, the gateway and the sample's model process; the sample applied, then how to call it
	bash hack/run.sh

images: ## the image (operator, gateway, batch runner, cloud API) on a cached Debian base: build/images/*.oci.tar, local storage (root; docs/install.md)
	bash hack/images.sh

image-constraints: ## refresh hack/image-constraints.txt, the image's pinned Python packages (a clean install's pip freeze)
	bash hack/image-constraints.sh

test: $(PY) ## every test: unit, e2e, then the fault tests against the local cluster (brought up if needed)
	@# the fault tests judge every write in their namespaces: they run in a session of their own, where the
	@# e2e session's cluster-wide operator is not running beside them; one seeded run of every fault.
	rc=0; $(PY) -m pytest tests -v --ignore=tests/faults || rc=$$?; \
	$(PY) -m pytest tests/faults -v || rc=$$((rc ? rc : $$?)); exit $$rc

unit: $(PY) ## fast tests, no cluster
	$(PY) -m pytest tests/unit tests/handlers tests/gitops tests/gateway tests/batch tests/chart tests/cloudapi tests/faults/test_audit_checker.py -q

e2e: $(PY) ## tests against the local cluster
	$(PY) -m pytest tests/e2e -v

lint: $(PY) ## ruff, mypy --strict over operator/ (pyproject [tool.mypy]), the import-linter layer contracts
	$(VENV)/bin/ruff check operator tests hack
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

chart-test: $(PY) binaries ## chart renders, RBAC and schema; install on the local cluster, run with its ServiceAccounts
	$(PY) -m pytest tests/chart tests/e2e/test_chart_install.py -v

.venv-operator/bin/python: pyproject.toml $(shell find operator/inference_operator -name "*.py")
	$(PYTHON) -m venv .venv-operator
	.venv-operator/bin/pip install -q --upgrade pip
	.venv-operator/bin/pip install -q .
	@touch $@

bench: $(PY) .venv-operator/bin/python cluster-up ## benchmarks on the local cluster, ours beside KServe: bench/results/ (BENCH_SERVICES, BENCH_LARGE, BENCH_COMPARE_SERVICES)
	$(PY) hack/bench.py

bench-latency: $(PY) .venv-operator/bin/python cluster-up ## a new service's latency at 10/s and 50/s beside the reflex floor, quiet and while 1,000 services are deleted, 3 runs: bench/results/<time>.json and a table
	$(PY) hack/bench.py --phases latency --large 0 --runs $${BENCH_RUNS:-3}

chaos: $(PY) cluster-up ## faults under a seeded workload (200 services, 10 runs per fault), 1000 hostile manifests: bench/results/chaos-<time>.json
	CHAOS_SERVICES=$${CHAOS_SERVICES:-200} CHAOS_RUNS=$${CHAOS_RUNS:-10} HOSTILE_EXAMPLES=$${HOSTILE_EXAMPLES:-1000} \
	CHAOS_REPORT_DIR=$(CURDIR)/bench/results $(PY) -m pytest tests/faults -v -s

bench-gateway: $(PY) ## vegeta: the model directly, a Go reverse proxy and the gateway, each pinned to a core
	bash hack/build-bench-tools.sh >/dev/null
	$(PY) hack/bench_gateway.py

bench-llm: $(PY) ## routing policies on 8 simulated engines (tests/enginesim), the routing decision's cost: bench/results/llm-<time>.json
	$(PY) hack/bench_picker.py
	$(PY) hack/bench_llm.py

bench-autoscale: $(PY) ## a load step 2 -> 10 -> 2 in flight on a vllm model scaled on concurrency (operator, gateway, simulated engines): bench/results/autoscale-<time>.json, .png
	$(PY) hack/bench_autoscale.py

bench-lora: $(PY) ## adapter-aware against adapter-blind routing, 16 LoRA adapters on 4 simulated engines: bench/results/lora-<time>.json
	$(PY) hack/bench_lora.py
