# TinyKV in Rust — build, test and run targets.
#
# A persistent target directory outside the clone keeps RocksDB's ~15-minute C++ build from being
# repeated for every checkout (see docs/DEVELOPING.md). Override CARGO_TARGET_DIR to opt out.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/tinykv-target
export CARGO_TERM_COLOR ?= never

CARGO ?= cargo

.PHONY: build release test fmt fmt-check lint doc clean-data \
        project1 project2 project2a project2b project2c project3 project3a project3b project3c \
        project4 project4a project4b project4c

build:
	$(CARGO) build --workspace --all-targets

release:
	$(CARGO) build --workspace --release --bins

# Everything: unit tests, every staged suite, doctests.
test:
	$(CARGO) test --workspace --no-fail-fast

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint: fmt-check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

doc:
	$(CARGO) doc --workspace --no-deps

# ---- Staged suites (see docs/SUITES.md) -------------------------------------------------------

project1:
	$(CARGO) test -p tests --test project1

# Scheduler (scheduler crate): heartbeat rules, TSO/ids, balancing, replica repair over gRPC.
project3c:
	$(CARGO) test -p scheduler

# Transactions (tests/tests/project4.rs): 4a = MVCC layer, 4b = get/prewrite/commit,
# 4c = rollback/check-txn-status/resolve/scan and the pessimistic and GC RPCs.
project4:
	$(CARGO) test -p tests --test project4

project4a:
	$(CARGO) test -p tests --test project4 -- p4a::

project4b:
	$(CARGO) test -p tests --test project4 -- p4b::

project4c:
	$(CARGO) test -p tests --test project4 -- p4c::
