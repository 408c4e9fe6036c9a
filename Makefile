# curvine-fluid: build and check targets. `make test` is what CI runs.

CARGO ?= cargo
IMAGE ?= curvine-fluid:latest
BASE_IMAGE ?= curvine-fluid-base:bookworm

.PHONY: build release test lint fmt docker-build-fluid e2e

build:
	$(CARGO) build --locked

release:
	$(CARGO) build --locked --release

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

test: lint
	$(CARGO) test --locked

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
# and a client restarted on its stale mount (scripts/e2e-docker.sh). Needs root.
e2e:
	scripts/e2e-docker.sh
