# The verbs a newcomer types. Everything installs into .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
GEN := build/gen
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR):$(CURDIR)/$(GEN)

.PHONY: setup protos run cluster test engines gpu-check bench clean

setup: $(STAMP)

$(STAMP): $(wildcard requirements/*.txt)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements/dev.txt
	touch $@

protos: $(GEN)/.stamp

$(GEN)/.stamp: $(wildcard protos/revive/v1/*.proto) $(STAMP)
	rm -rf $(GEN) && mkdir -p $(GEN)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=$(GEN) --pyi_out=$(GEN) --grpc_python_out=$(GEN) protos/revive/v1/*.proto
	touch $@

## run: the whole cluster on this machine (CPU), until Ctrl-C
run: protos
	$(PY) -m deploy.local.launch

## cluster: the Kubernetes topology on one machine: REPLICAS of each service behind the gateway (TLS=1: mutual TLS)
REPLICAS ?= 2
cluster: protos
	$(PY) -m deploy.local.launch --replicas $(REPLICAS) $(if $(TLS),--tls)

## test: every test, with real servers on loopback
test: protos
	$(PY) -m pytest $(PYTEST_ARGS)

## engines: build the generator's TensorRT engine (GPU image; exits 2 with the reason elsewhere)
TRT_CACHE_DIR ?= /tmp/revive-trt-cache
engines: protos
	$(PY) -m training.tensorrt.build --cache-dir $(TRT_CACHE_DIR)

## gpu-check: every model on CPU, CUDA and TensorRT side by side, and one photo end to end -> var/gpu-check.md
gpu-check: protos
	$(PY) -m bench.gpu_check --out var/gpu-check.md

## bench: per-stage latency, gateway overhead, transport cost
bench: protos
	$(PY) -m bench.pipeline_bench
	$(PY) -m bench.transport_bench
	$(PY) -m bench.load_bench
	$(PY) -m bench.detector_bench
	$(PY) -m bench.generator_bench
	$(PY) -m bench.upscaler_bench

clean:
	rm -rf $(VENV) build var
