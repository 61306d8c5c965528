"""Transactions through the ``tikv-client`` wheel (PyPI 0.0.4, a PyO3 binding of an older
client-rust): reads of what the harness seeded, commit and read-back, rollback, a write conflict,
insert on an existing key, a snapshot at an older timestamp, pessimistic locking, and scans.
Run by tests/python_clients.rs once on one region and once after the namespaces were split (see
common.py for the arguments and the report).

The wheel panics (``PanicException``) when an uncommitted transaction is dropped, so every
transaction here ends in commit or rollback.
"""

from __future__ import annotations

from tikv_client import TransactionClient

from common import check, expect_error, key, log, prefix_end, report, run, seed_value, sorted_pairs

KEYS = 20


def as_dict(pairs) -> dict[bytes, bytes]:
    return {bytes(k): bytes(v) for k, v in pairs}


def main(args) -> None:
    p = args.prefix
    client = TransactionClient.connect(args.pd)
    lo, hi = p.encode(), prefix_end(p)

    def read_all() -> dict[bytes, bytes]:
        snap = client.snapshot(client.current_timestamp(), False)
        return as_dict(snap.scan(lo, hi, 10240))

    # What another client (ours, from the harness) committed.
    seeds = {key(args.seed_prefix, i): seed_value(i) for i in range(args.seed_count)}
    snap = client.snapshot(client.current_timestamp(), False)
    check("batch_get of the seeded keys", as_dict(snap.batch_get(list(seeds))), seeds)
    seed_lo = args.seed_prefix.encode()
    check(
        "scan of the seeded keys",
        [(bytes(k), bytes(v)) for k, v in snap.scan(seed_lo, prefix_end(args.seed_prefix), 10240)],
        sorted_pairs(seeds.items()),
    )
    log(f"read {len(seeds)} seeded pairs")

    # Commit, then read back with get, batch_get and scan in a new transaction.
    model: dict[bytes, bytes] = {}
    txn = client.begin()
    for i in range(KEYS):
        txn.put(key(p, i), f"c1-{i:03}".encode())
        model[key(p, i)] = f"c1-{i:03}".encode()
    txn.commit()
    check("scan after commit", read_all(), model)
    txn = client.begin()
    check("get", txn.get(key(p, 7)), model[key(p, 7)])
    check("get of an absent key", txn.get(f"{p}absent".encode()), None)
    check("key_exists", txn.key_exists(key(p, 7)), True)
    check("batch_get", as_dict(txn.batch_get([key(p, 1), key(p, 18)])),
          {key(p, 1): model[key(p, 1)], key(p, 18): model[key(p, 18)]})
    got = [(bytes(k), bytes(v)) for k, v in txn.scan(key(p, 5), key(p, 15), 100, True, True)]
    check("scan [5, 15]", got, [(k, v) for k, v in sorted_pairs(model.items()) if key(p, 5) <= k <= key(p, 15)])
    got = [bytes(k) for k in txn.scan_keys(key(p, 8), hi, 4)]
    check("scan_keys from 8, limit 4", got, [key(p, i) for i in range(8, 12)])
    txn.rollback()

    # A rolled-back transaction leaves nothing.
    txn = client.begin()
    txn.put(key(p, 0), b"rolled-back")
    txn.delete(key(p, 1))
    txn.rollback()
    check("scan after rollback", read_all(), model)

    # Write conflict: the second committer of a key fails, and none of its writes show.
    t1, t2 = client.begin(), client.begin()
    t1.put(key(p, 2), b"t1")
    t2.put(key(p, 2), b"t2")
    t2.put(key(p, 19), b"t2")
    t1.commit()
    model[key(p, 2)] = b"t1"
    expect_error("commit of the second writer", t2.commit, "conflict")
    t2.rollback()
    check("scan after the conflict", read_all(), model)

    # Insert on an existing key fails with already_exist; on an absent one it writes.
    txn = client.begin()
    txn.insert(key(p, 3), b"insert")
    expect_error("insert on an existing key", txn.commit, "already_exist", "alreadyexist")
    txn.rollback()
    txn = client.begin()
    txn.insert(f"{p}inserted".encode(), b"insert")
    txn.commit()
    model[f"{p}inserted".encode()] = b"insert"
    check("scan after insert", read_all(), model)

    # A snapshot at a timestamp between two commits reads the first one's state.
    old = dict(model)
    ts = client.current_timestamp()
    txn = client.begin()
    for i in range(10, KEYS):
        txn.put(key(p, i), f"c2-{i:03}".encode())
        model[key(p, i)] = f"c2-{i:03}".encode()
    txn.delete(key(p, 9))
    del model[key(p, 9)]
    txn.commit()
    old_snap = client.snapshot(ts, False)
    check("scan at the older timestamp", as_dict(old_snap.scan(lo, hi, 10240)), old)
    check("get at the older timestamp", old_snap.get(key(p, 9)), old[key(p, 9)])
    check("scan now", read_all(), model)

    # Pessimistic: lock with get_for_update, a second locker is refused, commit.
    t1 = client.begin(pessimistic=True)
    check("get_for_update", t1.get_for_update(key(p, 4)), model[key(p, 4)])
    check("batch_get_for_update", as_dict(t1.batch_get_for_update([key(p, 5), f"{p}none".encode()])),
          {key(p, 5): model[key(p, 5)]})
    t2 = client.begin(pessimistic=True)
    expect_error("get_for_update of a locked key", lambda: t2.get_for_update(key(p, 4)), "lock")
    t2.rollback()
    t1.put(key(p, 4), b"pessimistic")
    t1.delete(key(p, 5))
    t1.commit()
    model[key(p, 4)] = b"pessimistic"
    del model[key(p, 5)]
    check("scan after the pessimistic commit", read_all(), model)

    report(model)


if __name__ == "__main__":
    run(main, __doc__)
