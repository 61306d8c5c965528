"""Raw API through ``tikv-python`` (pure-Python client, PyPI 0.1.1): reads of what the harness
seeded, point and batch writes, scans (prefix, bounded, unbounded, limited, reverse), deletes,
compare-and-swap, a refused TTL, and the RPCs TinyKV does not serve (RawGetKeyTTL,
RawChecksum). Run by tests/python_clients.rs once on one region and once after the namespaces
were split (see common.py for the arguments and the report).

This client is the oracle for raw scans: TiKV's Rust client 0.4 gets multi-region raw scans
wrong in API v1 (docs/COMPATIBILITY.md).
"""

from __future__ import annotations

import tikv

from common import (
    check,
    expect_error,
    key,
    log,
    prefix_end,
    report,
    run,
    seed_value,
    sorted_pairs,
)

KEYS = 20


def main(args) -> None:
    p = args.prefix
    client = tikv.RawClient(args.pd, timeout=30.0)

    # What another client (ours, from the harness) wrote.
    seeds = {key(args.seed_prefix, i): seed_value(i) for i in range(args.seed_count)}
    seed_list = sorted_pairs(seeds.items())
    check("get_many of the seeded keys", client.get_many(list(seeds)), seeds)
    check("prefix scan of the seeded keys", list(client.scan(prefix=args.seed_prefix.encode())), seed_list)
    check(
        "reverse prefix scan of the seeded keys",
        list(client.scan(prefix=args.seed_prefix.encode(), reverse=True)),
        seed_list[::-1],
    )
    log(f"read {len(seeds)} seeded pairs")

    # Point and batch writes.
    model: dict[bytes, bytes] = {}
    items = {key(p, i): f"py-{i:03}".encode() for i in range(KEYS)}
    client.put_many(items)
    model.update(items)
    client.put(key(p, 4), b"overwritten")
    model[key(p, 4)] = b"overwritten"
    absent = f"{p}absent".encode()
    check("get", client.get(key(p, 3)), model[key(p, 3)])
    check("get of an overwritten key", client.get(key(p, 4)), b"overwritten")
    check("get of an absent key", client.get(absent), None)
    check(
        "get_many with an absent key",
        client.get_many([key(p, 3), absent, key(p, 15)]),
        {key(p, 3): model[key(p, 3)], key(p, 15): model[key(p, 15)]},
    )

    def want(lo: bytes, hi: bytes) -> list[tuple[bytes, bytes]]:
        return [(k, v) for k, v in sorted_pairs(model.items()) if lo <= k < hi]

    def scans() -> None:
        lo, hi = p.encode(), prefix_end(p)
        k5, k15 = key(p, 5), key(p, 15)
        everything = want(lo, hi)
        check("prefix scan", list(client.scan(prefix=p.encode())), everything)
        check("bounded scan [5, 15)", list(client.scan(k5, k15)), want(k5, k15))
        check("reverse prefix scan", list(client.scan(prefix=p.encode(), reverse=True)), everything[::-1])
        check("reverse bounded scan [5, 15)", list(client.scan(k5, k15, reverse=True)), want(k5, k15)[::-1])
        # The same from a new client: with a cold region cache, and k15 starting a region once
        # split, the region before k15 comes from PD's GetPrevRegion.
        with tikv.RawClient(args.pd, timeout=30.0) as fresh:
            check("reverse bounded scan [5, 15), new client", list(fresh.scan(k5, k15, reverse=True)), want(k5, k15)[::-1])
        check("scan from 5, limit 7", list(client.scan(k5, hi, limit=7)), want(k5, hi)[:7])
        check("reverse scan below 15, limit 7", list(client.scan(lo, k15, reverse=True, limit=7)), want(lo, k15)[::-1][:7])
        # Open-ended bounds run through the whole key space (other namespaces, other regions):
        # the limit is what keeps them inside this namespace, so it is exactly the number of
        # keys left there (at most 10).
        up = want(k5, hi)
        if up:
            n = min(10, len(up))
            check(f"scan from 5 to the end, limit {n}", list(client.scan(k5, None, limit=n)), up[:n])
        down = want(lo, k15)[::-1]
        if down:
            n = min(10, len(down))
            check(
                f"reverse scan from the start below 15, limit {n}",
                list(client.scan(None, k15, reverse=True, limit=n)),
                down[:n],
            )
        check("prefix scan_keys", list(client.scan_keys(prefix=p.encode())), [k for k, _ in everything])

    scans()
    log("writes and scans agree")

    # Deletes: single, batch (with an absent key), range across the middle.
    client.delete(key(p, 0))
    del model[key(p, 0)]
    client.delete_many([key(p, 1), key(p, 2), absent])
    del model[key(p, 1)], model[key(p, 2)]
    client.delete_range(key(p, 8), key(p, 12))
    for i in range(8, 12):
        del model[key(p, i)]
    client.delete_range(prefix=f"{p}01".encode())  # 010..019, of which 012..019 remain
    for i in range(12, KEYS):
        del model[key(p, i)]
    scans()
    log("deletes agree")

    # Compare-and-swap needs an atomic client; it writes keys no plain client touches.
    atomic = tikv.RawClient(args.pd, timeout=30.0, atomic=True)
    cas_key = f"{p}cas/x".encode()
    check("cas on an absent key", tuple(atomic.compare_and_swap(cas_key, None, b"1")), (True, None))
    check("cas expecting absence", tuple(atomic.compare_and_swap(cas_key, None, b"2")), (False, b"1"))
    check("cas with a wrong value", tuple(atomic.compare_and_swap(cas_key, b"9", b"2")), (False, b"1"))
    check("cas with the right value", tuple(atomic.compare_and_swap(cas_key, b"1", b"3")), (True, b"1"))
    check("get after cas", atomic.get(cas_key), b"3")
    model[cas_key] = b"3"
    atomic.close()

    # Keys never expire on TinyKV: a TTL is refused, and nothing is written.
    ttl_key = f"{p}ttl/x".encode()
    expect_error("put with a TTL", lambda: client.put(ttl_key, b"v", ttl=60), "ttl")
    check("get after the refused put", client.get(ttl_key), None)
    # Nor are TTLs read back (RawGetKeyTTL), or checksums computed (RawChecksum): both RPCs are
    # answered with gRPC UNIMPLEMENTED, which the client raises.
    expect_error("ttl of a key", lambda: client.ttl(key(p, 3)), "unimplemented")
    expect_error("checksum of the namespace", lambda: client.checksum(prefix=p.encode()), "unimplemented")

    check("final prefix scan", dict(client.scan(prefix=p.encode())), model)
    client.close()
    report(model)


if __name__ == "__main__":
    run(main, __doc__)
