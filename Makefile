# TinyKV in Rust — build, test and run targets.
#
# A persistent target directory outside the clone keeps RocksDB's ~15-minute C++ build from being
# repeated for every checkout (see docs/DEVELOPING.md). Override CARGO_TARGET_DIR to opt out.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/tinykv-target
export CARGO_TERM_COLOR ?= never

CARGO ?= cargo

.PHONY: build release test fmt fmt-check lint doc clean-data sql sql-memory playground ctl e2e \
        compat compat-venv \
        project1 project2 project2a project2b project2c project3 project3a project3b project3c \
        project4 project4a project4b project4c project4-bank bench-raftstore bench bench-compare chaos-raftstore

build:
	$(CARGO) build --workspace --all-targets

release:
	$(CARGO) build --workspace --release --bins

# Everything: unit tests, every staged suite, the end-to-end and SQL tests, doctests, then the
# conformance suite with TiKV's official clients (its own workspace; see `compat` below).
test:
	$(CARGO) test --workspace --no-fail-fast
	$(MAKE) compat

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint: fmt-check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

doc:
	$(CARGO) doc --workspace --no-deps

# ---- Playground and CLI (docs/PLAYGROUND.md) ---------------------------------------------------

# A local cluster: release builds of every binary, then 1 scheduler + 3 stores on 127.0.0.1
# (PD on 2379, stores on 20160-20162) with data in ./.playground, reused next time. Ctrl-C stops
# it. PLAYGROUND_ARGS passes flags, e.g. PLAYGROUND_ARGS="--clean" to start from empty data.
playground: release
	$(CARGO_TARGET_DIR)/release/tinykv-playground $(PLAYGROUND_ARGS)

# tinykv-ctl from the release build, e.g. make ctl ARGS="raw put a 1".
ctl:
	$(CARGO) build --release -p tinykv-ctl --bin tinykv-ctl
	$(CARGO_TARGET_DIR)/release/tinykv-ctl $(ARGS)

# End-to-end tests with real processes (also part of `make test`): the client across regions
# with a store killed and restarted (tests/tests/e2e.rs), automatic splits and rebalancing onto
# a fourth store (tests/tests/e2e_scheduling.rs), the process launcher and the playground
# binary, and tinykv-ctl against a scheduler and a whole cluster.
e2e:
	$(CARGO) test -p tests --test e2e
	$(CARGO) test -p tests --test e2e_scheduling
	$(CARGO) test -p tinykv-playground
	$(CARGO) test -p tinykv-ctl

# ---- Staged suites (see docs/SUITES.md) -------------------------------------------------------

project1:
	$(CARGO) test -p tests --test project1

# One Raft group on raft-rs (raft-core crate): election, replication, durability and restart,
# snapshot catch-up, over an in-memory network of nodes with real RocksDB engines.
project2a:
	$(CARGO) test -p raft-core --test project2a

# The replicated store (tests/tests/project2{b,c}.rs, 5 in-process stores): 2b = the GenericTest
# rows (clients, lossy network, partitions, crashes) + one_partition; 2c = the same with log GC
# (snapshots) + one_snapshot.
project2: project2a project2b project2c

project2b:
	$(CARGO) test -p tests --test project2b

project2c:
	$(CARGO) test -p tests --test project2c

# Membership changes (simple and joint) and leader transfer on one Raft group (raft-core crate).
project3a:
	$(CARGO) test -p raft-core --test project3a

# Multi-raft (tests/tests/project3b.rs, in-process stores): leader transfer, membership changes
# (removing the leader, shrinking to one peer, re-adding), splits (one store cut off, at chosen
# keys) and the GenericTest rows with conf-change churn in every round and 300-byte splits.
project3b:
	$(CARGO) test -p tests --test project3b

# Scheduler (scheduler crate): heartbeat rules, TSO/ids, balancing, replica repair over gRPC.
project3c:
	$(CARGO) test -p scheduler

project3: project3a project3b project3c

# ~10 minutes of GenericTest rows with random faults (tests/tests/chaos_raftstore.rs); the seed
# is printed at the start and on failure: CHAOS_SEED=<seed> replays it, CHAOS_DURATION_SECS sets
# the length. Not part of `make test`.
chaos-raftstore:
	$(CARGO) test -p tests --test chaos_raftstore -- --ignored --nocapture

# Transactions (tests/tests/project4.rs): 4a = MVCC layer, 4b = get/prewrite/commit,
# 4c = rollback/check-txn-status/resolve/scan and the pessimistic and GC RPCs, each scenario over
# the standalone storage and over Raft (3 stores); bank = concurrent transfers on a multi-region
# Raft cluster with a lossy network and store restarts. `make project4` runs them all.
project4:
	$(CARGO) test -p tests --test project4

project4a:
	$(CARGO) test -p tests --test project4 -- p4a::

project4b:
	$(CARGO) test -p tests --test project4 -- p4b::

project4c:
	$(CARGO) test -p tests --test project4 -- p4c::

project4-bank:
	$(CARGO) test -p tests --test project4 -- bank::

# ---- Benchmarks ---------------------------------------------------------------------------------

# Puts/s, fsyncs/s and proposals per fsync for 1 and 64 regions on 3 in-process stores with
# synced raft logs (tests/benches/raftstore.rs).
bench-raftstore:
	$(CARGO) bench -p tests --bench raftstore

# Micro-benchmarks of the hot paths, with short measurement times (criterion): raft log persist
# (raft-core), MVCC key/record encoding and the raw gRPC round trip on loopback (kvserver).
# Release build: the first run compiles RocksDB at -O3 once (~15+ min on 2 cores).
BENCH_ARGS ?= --warm-up-time 1 --measurement-time 3
bench:
	$(CARGO) bench -p raft-core --bench append -- $(BENCH_ARGS)
	$(CARGO) bench -p kvserver --bench mvcc -- $(BENCH_ARGS)
	$(CARGO) bench -p kvserver --bench grpc_raw -- $(BENCH_ARGS)

# TinyKV vs etcd side by side (docs/BENCHMARKS.md): installs etcd if missing, starts fresh
# clusters on loopback per workload, prints the table, writes JSON/Markdown/SVG into results/.
# BENCH_SYSTEMS=etcd runs only the etcd half; ARGS="..." passes flags to `tinykv-bench compare`.
bench-compare:
	bash scripts/bench-compare.sh $(ARGS)

# SQL layer (sql crate, docs/SQL.md): GlueSQL's conformance suite (219 tests), multi-session
# concurrency scripts (sql/tests/slt) and races, storage properties, each test binary on a real
# cluster of its own (1 scheduler + 3 stores, pre-split so tables span regions; the servers are
# built first). Also part of `make test`. `make sql-memory` runs the same suites on the
# in-memory backend in seconds; TINYKV_SQL_TEST_PD=host:port runs them on a running cluster.
sql:
	$(CARGO) test -p tinykv-sql

sql-memory:
	TINYKV_SQL_TEST_BACKEND=memory $(CARGO) test -p tinykv-sql

# ---- Conformance (docs/COMPATIBILITY.md) -------------------------------------------------------

# The venv with the PyPI clients pinned in tests/compat/python/requirements.txt (tikv-python,
# and the tikv-client 0.0.4 wheel, which exists for CPython 3.11 only). Left alone when it
# already holds exactly those pins, recreated when they change.
COMPAT_PYTHON ?= python3.11
COMPAT_VENV ?= $(CURDIR)/tests/compat/.venv

compat-venv:
	bash tests/compat/python/make-venv.sh "$(COMPAT_PYTHON)" "$(abspath $(COMPAT_VENV))"

# TiKV's official clients against real clusters (tests/compat, a Cargo workspace of its own):
# the Rust tikv-client 0.4 under each topology (one region, forced splits, leader transfers,
# epoch changes, a killed store), then tikv-python and the tikv-client wheel on one region and
# across splits; every write is read back through our client. The last step of `make test`.
compat: compat-venv
	$(CARGO) build -p scheduler --bin tinyscheduler-server -p kvserver --bin tinykv-server
	cd tests/compat && TINYKV_COMPAT_PYTHON="$(abspath $(COMPAT_VENV))/bin/python" $(CARGO) test --no-fail-fast
