# curvine-fluid: build and check targets. `make test && make e2e` is the test command
# (what CI runs); both first install what they need (scripts/deps.sh).

CARGO ?= cargo
IMAGE ?= curvine-fluid:latest
BASE_IMAGE ?= curvine-fluid-base:bookworm

.PHONY: build release deps test chart-test lint fmt docker-build-fluid e2e

build:
	$(CARGO) build --locked

release:
	$(CARGO) build --locked --release

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

# Packages, Rust components and the chart tools (helm, kubectl, kubernetes-validate)
# that the tests need, installed when missing.
deps:
	scripts/deps.sh

test: deps lint
	$(CARGO) test --locked
	$(MAKE) --no-print-directory chart-test

# The Helm chart: lint, strict schema validation, configs parsed by the binary
# (scripts/test-chart.sh).
chart-test: build
	scripts/test-chart.sh

fmt:
	$(CARGO) fmt --all

# The image, offline: the release binary is built here, the base image is made from
# Debian packages when missing (scripts/base-image.sh), and the context holds only the
# binary.
docker-build-fluid: release
	scripts/docker-engine.sh
	docker image inspect $(BASE_IMAGE) >/dev/null 2>&1 || BASE_IMAGE=$(BASE_IMAGE) scripts/base-image.sh
	rm -rf target/docker && mkdir -p target/docker
	cp target/release/curvine-fluid target/docker/
	docker build -f images/Dockerfile --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(IMAGE) target/docker
	@docker image inspect -f '$(IMAGE): {{.Size}} bytes' $(IMAGE)

# The image as Fluid runs it, in Docker: CacheRuntime (1 and 3 masters), ThinRuntime,
# a client restarted on its stale mount, the Helm chart's cluster running its helm test,
# and an S3 Dataset (scripts/e2e-docker.sh, scripts/e2e-chart.sh, scripts/e2e-ufs.sh).
# Needs root.
e2e: deps
	scripts/e2e-docker.sh
