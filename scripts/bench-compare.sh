#!/usr/bin/env bash
# `make bench-compare`: TinyKV vs etcd, side by side, on this machine.
#
# 1. Installs etcd from Debian (etcd-server) if it is missing and etcd is part of the run.
# 2. Builds the release binaries (tinykv-bench; tinykv-server and tinyscheduler-server when
#    TinyKV is part of the run).
# 3. Runs `tinykv-bench compare`: for each workload a fresh 3-member etcd / a fresh scheduler +
#    3 stores on loopback, load, measured run, stop by PID. Prints the table; writes JSON,
#    Markdown and an SVG chart into results/.
#
# Environment: BENCH_SYSTEMS (default etcd,tinykv), BENCH_DURATION (20s per run),
# BENCH_RECORDS (10000), BENCH_OUT (results). Extra arguments go to `tinykv-bench compare`
# (e.g. `make bench-compare ARGS="--connections 4"`).
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tinykv-target}"
CARGO="${CARGO:-cargo}"
SYSTEMS="${BENCH_SYSTEMS:-etcd,tinykv}"
DURATION="${BENCH_DURATION:-20s}"
RECORDS="${BENCH_RECORDS:-10000}"
OUT="${BENCH_OUT:-results}"

wants() { [[ ",$SYSTEMS," == *",$1,"* ]]; }

install_etcd() {
    command -v etcd >/dev/null 2>&1 && return 0
    echo "bench-compare: etcd not found; installing Debian's etcd-server" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    local attempt
    for attempt in 1 2; do
        if $sudo apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq etcd-server etcd-client; then
            command -v etcd >/dev/null 2>&1 && return 0
        fi
        echo "bench-compare: installing etcd failed (attempt $attempt of 2)" >&2
        [ "$attempt" -eq 2 ] || sleep 5
    done
    echo "bench-compare: cannot install etcd" >&2
    exit 1
}

packages=(-p tinykv-bench)
if wants etcd; then
    install_etcd
fi
if wants tinykv; then
    packages+=(-p kvserver -p scheduler)
fi

echo "bench-compare: building release binaries (${packages[*]})" >&2
"$CARGO" build --release --bins "${packages[@]}"

bin="$CARGO_TARGET_DIR/release"
exec "$bin/tinykv-bench" compare \
    --systems "$SYSTEMS" \
    --duration "$DURATION" \
    --records "$RECORDS" \
    --out-dir "$OUT" \
    --etcd-bin "$(command -v etcd || echo etcd)" \
    --tinykv-server "$bin/tinykv-server" \
    --scheduler-bin "$bin/tinyscheduler-server" \
    "$@"
