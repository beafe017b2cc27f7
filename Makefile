# canarywatch — developer entry points.  `make demo` and `make test` are the two
# commands the README promises; everything else is a building block of those.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Pinned kube-apiserver, etcd, helm... built from source by hack/build-tools.sh
export CANARYWATCH_TOOLS_DIR ?= $(CURDIR)/.cache/tools

.PHONY: setup demo test lint unit readme-generator chart-readme bench-codec bench-footprint bench-pipeline bench-operator bench-realcluster tools tools-node node-packages streaming-servers whep-server test-streaming prometheus prometheus-crds test-chart test-cluster test-kmock test-realcluster clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## setup: create .venv and install canarywatch with its dev extras
setup: $(STAMP)

## demo: run the embedded end-to-end demo (reference relay with a reproduced leak)
demo: setup
	$(BIN)/canarywatch demo

## lint: ruff, mypy --strict and the import-layer contracts
lint: setup
	$(BIN)/ruff check operator tests
	$(BIN)/ruff format --check operator tests
	$(BIN)/mypy
	$(BIN)/lint-imports

## image: the canarywatch image as an OCI tar for containerd, built without Docker (root; prints the tar path; ~2 min cold, seconds after a code change)
.PHONY: image
image:
	hack/build-image.sh

## tools: build pinned kube-apiserver, kube-controller-manager, kubectl, etcd, helm (3) and helm4 (~12 min cold, then a no-op)
tools:
	hack/build-tools.sh

## tools-node: the tools plus kubelet, kube-proxy, kube-scheduler, CoreDNS, kube-router, pause for the realcluster node (~6 min more cold, then a no-op)
tools-node:
	hack/build-tools.sh node

## node-packages: containerd, runc, CNI plugins, iptables, ipset, mmdebstrap from Debian for the realcluster node (root or sudo; no-op when present)
node-packages:
	hack/install-node-packages.sh

## streaming-servers: nginx + libnginx-mod-rtmp, ffmpeg, the GStreamer RTSP server from Debian, for tests/streaming (root or sudo; no-op when present)
streaming-servers:
	hack/install-streaming-servers.sh

## whep-server: Pion's upstream whip-whep example (github.com/pion/webrtc/v4, pinned), built with Go into the tools dir, for tests/streaming (no-op when built)
whep-server:
	hack/install-whep-server.sh >/dev/null

## test-streaming: canarywatch run against real streaming servers (nginx-rtmp HLS, ...), clean and misconfigured
test-streaming: setup streaming-servers whep-server
	$(BIN)/pytest -q tests/streaming

## prometheus: promtool + prometheus from the Debian package, for the chart tier (root or sudo; no-op when present)
prometheus:
	hack/install-prometheus.sh

## prometheus-crds: ServiceMonitor/PodMonitor/PrometheusRule CRDs from the pinned prometheus-operator Go module
prometheus-crds:
	hack/fetch-prometheus-operator-crds.sh >/dev/null

## readme-generator: the bitnami readme-generator-for-helm from npm, pinned by hack/readme-generator/package-lock.json (no-op when present)
readme-generator:
	hack/install-readme-generator.sh >/dev/null

## chart-readme: regenerate the parameter tables of charts/canarywatch/README.md from the values.yaml `## @param` comments
chart-readme: readme-generator
	"$$(hack/install-readme-generator.sh)" --values charts/canarywatch/values.yaml --readme charts/canarywatch/README.md >/dev/null

## test: everything CI runs — lint, then every test tier (cluster/chart tiers need tools, prometheus, CRDs; realcluster the node tools and packages)
test: lint tools tools-node node-packages streaming-servers whep-server prometheus prometheus-crds readme-generator
	$(BIN)/pytest -q

## test-chart: helm lint/template + server-side dry-run (Helm 4 and 3), promtool rule tests, dashboards against a real Prometheus, the generated chart README
test-chart: setup tools prometheus prometheus-crds readme-generator
	$(BIN)/pytest -q tests/chart

## test-cluster: cluster tier against a real etcd + kube-apiserver + kube-controller-manager
test-cluster: setup tools
	$(BIN)/pytest -q tests/cluster

## test-realcluster: helm install, agent pods, leak, page, kill switch, resume on a single-node Kubernetes in its own namespaces (root)
test-realcluster: setup tools-node node-packages
	$(BIN)/pytest -q tests/realcluster

## test-kmock: the operator against kmock's API emulator with injected faults (429/500/403, dropped watches)
test-kmock: setup
	$(BIN)/pytest -q tests/kmock

unit: setup
	$(BIN)/pytest -q tests/unit

## bench-codec: codec cost ratios vs cv2.imdecode and the robustness table
bench-codec: setup
	$(BIN)/canarywatch bench codec

## bench-footprint: idle and peak RSS of a probe's camera and viewer pods (1x1 and 2x2), import cost
bench-footprint: setup
	$(BIN)/canarywatch bench footprint

## bench-operator: 1,000 probes from cold start (seconds, requests per probe, peak RSS) and LeakIncident -> scaled to zero (p50/p99) meanwhile
bench-operator: setup tools
	$(BIN)/canarywatch bench operator

## bench-pipeline: detect/switch-off p50/p99 over 20 leaks, verdicts/s/core, memory, no-fault soak
bench-pipeline: setup
	$(BIN)/canarywatch bench pipeline

## bench-realcluster: frame -> LeakIncident -> page -> relay pods gone (p50/p99) over 10 leaks on the realcluster node (root)
bench-realcluster: setup tools-node node-packages
	$(BIN)/python hack/bench-realcluster.py

## clean: remove the virtualenv and caches (keeps the slow-to-build .cache/tools)
clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
