//! MVCC encoding on the transactional hot path: every prewrite, commit and read encodes user
//! keys (memcomparable groups + descending timestamp) and lock / write records, and every read
//! decodes them. Sizes: 16-byte keys (the perf anchors' size) and 64-byte keys; 128-byte values
//! inlined as short values.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kvserver::mvcc::key::{decode_bytes, decode_user_key, encode_bytes, encode_key, split_ts};
use kvserver::mvcc::{Key, Lock, LockType, Write, WriteType};

const TS: u64 = 437_000_000_000_000_123;

fn user_key(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

fn bench_keys(c: &mut Criterion) {
    let mut g = c.benchmark_group("mvcc_key");
    g.throughput(Throughput::Elements(1));
    for len in [16usize, 64] {
        let raw = user_key(len);
        let encoded = encode_bytes(&raw);
        let versioned = encode_key(&raw, TS);
        g.bench_with_input(BenchmarkId::new("encode_bytes", len), &raw, |b, raw| {
            b.iter(|| encode_bytes(black_box(raw)))
        });
        g.bench_with_input(BenchmarkId::new("decode_bytes", len), &encoded, |b, enc| {
            b.iter(|| decode_bytes(black_box(enc)).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("encode_key_ts", len), &raw, |b, raw| {
            b.iter(|| encode_key(black_box(raw), black_box(TS)))
        });
        g.bench_with_input(BenchmarkId::new("key_append_ts", len), &raw, |b, raw| {
            b.iter(|| Key::from_raw(black_box(raw)).append_ts(black_box(TS)))
        });
        g.bench_with_input(BenchmarkId::new("split_ts", len), &versioned, |b, k| {
            b.iter(|| split_ts(black_box(k)).unwrap())
        });
        g.bench_with_input(
            BenchmarkId::new("decode_user_key", len),
            &versioned,
            |b, k| b.iter(|| decode_user_key(black_box(k)).unwrap()),
        );
    }
    g.finish();
}

fn bench_records(c: &mut Criterion) {
    let mut g = c.benchmark_group("mvcc_record");
    g.throughput(Throughput::Elements(1));
    let value = vec![0x5au8; 128];

    let mut lock = Lock::new(LockType::Put, user_key(16), TS, 3_000);
    lock.short_value = Some(value.clone());
    lock.min_commit_ts = TS + 1;
    lock.txn_size = 1;
    let lock_bytes = lock.to_bytes();
    g.bench_function("lock_to_bytes/128B", |b| {
        b.iter(|| black_box(&lock).to_bytes())
    });
    g.bench_function("lock_parse/128B", |b| {
        b.iter(|| Lock::parse(black_box(&lock_bytes)).unwrap())
    });

    let write = Write::new(WriteType::Put, TS, Some(value));
    let write_bytes = write.to_bytes();
    g.bench_function("write_to_bytes/128B", |b| {
        b.iter(|| black_box(&write).to_bytes())
    });
    g.bench_function("write_parse/128B", |b| {
        b.iter(|| Write::parse(black_box(&write_bytes)).unwrap())
    });
    let rollback = Write::new_rollback(TS).to_bytes();
    g.bench_function("write_parse/rollback", |b| {
        b.iter(|| Write::parse(black_box(&rollback)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_keys, bench_records);
criterion_main!(benches);
