"""Shared plumbing of the Python scenario scripts.

The Rust harness (src/python, tests/python_clients.rs) starts the cluster, seeds data, forces
splits between phases, and runs each script as::

    python <script> --pd HOST:PORT --prefix NS/ --seed-prefix SEED/ --seed-count N

A script checks every answer of its client itself (a mismatch raises ``Mismatch``: exit status
1 and a message on stderr) and prints one JSON document as the last line of stdout: the pairs it
left under ``--prefix``, which the harness reads back through another client.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import time
import traceback
from typing import Callable, Iterable


class Mismatch(AssertionError):
    """A client answered something else than the model says."""


def parse_args(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--pd", required=True, help="PD endpoints, host:port[,host:port...]")
    p.add_argument("--prefix", required=True, help="namespace of the keys this run writes")
    p.add_argument("--seed-prefix", required=True, help="namespace the harness seeded")
    p.add_argument("--seed-count", type=int, required=True, help="keys the harness seeded")
    args = p.parse_args()
    args.pd = [e for e in args.pd.split(",") if e]
    return args


def key(prefix: str, i: int) -> bytes:
    """The harness's key convention: ``<prefix><i:03>``."""
    return f"{prefix}{i:03}".encode()


def seed_value(i: int) -> bytes:
    """The value the harness seeds key ``i`` with (``Phase::seeds`` in src/python/mod.rs)."""
    return f"seed-{i:03}".encode()


def prefix_end(prefix: str) -> bytes:
    """The first key after every key starting with ``prefix``."""
    b = bytearray(prefix.encode())
    b[-1] += 1
    return bytes(b)


def check(what: str, got, want) -> None:
    if got != want:
        raise Mismatch(f"{what}:\n  got:  {show(got)}\n  want: {show(want)}")


def expect_error(what: str, call: Callable[[], object], *needles: str) -> str:
    """Runs ``call``, which must raise; the message must contain one of ``needles``."""
    try:
        result = call()
    except Exception as e:  # noqa: BLE001 - clients raise their own types or plain Exception
        text = f"{type(e).__name__}: {e}"
        if needles and not any(n.lower() in text.lower() for n in needles):
            raise Mismatch(f"{what}: expected an error mentioning {needles}, got {text}") from e
        log(f"{what}: refused as expected ({text.splitlines()[0][:160]})")
        return text
    raise Mismatch(f"{what}: expected an error, got {show(result)}")


def show(v) -> str:
    if isinstance(v, bytes):
        return repr(v.decode(errors="replace"))
    if isinstance(v, dict):
        return "{" + ", ".join(f"{show(k)}: {show(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(show(x) for x in v) + "]"
    return repr(v)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def report(pairs: dict[bytes, bytes], **extra) -> None:
    """Prints the final report: the pairs left under ``--prefix`` (UTF-8 keys and values)."""
    doc = {"pairs": {k.decode(): v.decode() for k, v in sorted(pairs.items())}}
    doc.update(extra)
    print(json.dumps(doc, sort_keys=True))


def run(main: Callable[[argparse.Namespace], None], description: str) -> None:
    """Runs ``main`` and exits: 0 when it returned, 1 on a mismatch or any other exception."""
    # A crash inside a client's native code prints the Python stack instead of dying silently.
    faulthandler.enable()
    args = parse_args(description)
    code = 0
    try:
        main(args)
    except Mismatch as e:
        log(f"MISMATCH: {e}")
        code = 1
    # BaseException: the wheel's Rust panics arrive as pyo3's PanicException, which is not an
    # Exception.
    except BaseException:  # noqa: BLE001 - any failure fails the scenario, with its traceback
        traceback.print_exc()
        code = 1
    # Leave without interpreter finalization: the tikv-client 0.0.4 wheel's tokio threads call
    # back into Python while it finalizes and kill the finished process (SIGSEGV, or an abort in
    # PyGILState_Release) after the report is out (docs/COMPATIBILITY.md). Nothing is left to
    # clean up: the scenario is over and the harness reads the cluster itself.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def sorted_pairs(pairs: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return sorted(pairs, key=lambda kv: kv[0])
