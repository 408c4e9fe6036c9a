# curvine-fluid: build and check targets. `make test` is what CI runs.

CARGO ?= cargo

.PHONY: build release test lint fmt

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
