//! The workload generator every backend faces: which operation comes next, on which key, with
//! which value.
//!
//! ```text
//!  Workload (shared: config, KeySpace, InsertSequence)
//!     │ generator(seed ^ client)
//!     ▼
//!  OpGenerator (one per client: RNG, key chooser, value pool) ──next_op()──▶ Op
//! ```
//!
//! Generators are deterministic for a seed (apart from the acknowledged-insert watermark, which
//! depends on timing), so two systems run with the same seed see the same key and operation
//! sequences per client.

pub mod distribution;
pub mod keys;

use std::fmt;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use self::distribution::{InsertSequence, KeyChooser};
use self::keys::KeySpace;
use crate::config::WorkloadConfig;
use crate::errors::Result;

/// The kinds of operation, in the order of [`WorkloadConfig::proportions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpKind {
    /// Point read of one record.
    Read,
    /// Overwrite of an existing record.
    Update,
    /// Write of a new record.
    Insert,
    /// Forward scan of a few records.
    Scan,
    /// Read one record, then write it.
    ReadModifyWrite,
}

impl OpKind {
    /// Every kind, in proportion order.
    pub const ALL: [OpKind; 5] = [
        OpKind::Read,
        OpKind::Update,
        OpKind::Insert,
        OpKind::Scan,
        OpKind::ReadModifyWrite,
    ];

    /// Position in [`OpKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// YCSB's name for it.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Read => "READ",
            OpKind::Update => "UPDATE",
            OpKind::Insert => "INSERT",
            OpKind::Scan => "SCAN",
            OpKind::ReadModifyWrite => "READ-MODIFY-WRITE",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One operation to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Read `key`.
    Read {
        /// The key.
        key: Vec<u8>,
    },
    /// Overwrite `key` with `value`.
    Update {
        /// The key.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Write the new record `id`; pass `id` to [`Workload::finish_insert`] afterwards.
    Insert {
        /// The record id.
        id: u64,
        /// Its key.
        key: Vec<u8>,
        /// Its value.
        value: Vec<u8>,
    },
    /// Read up to `limit` records from `start` on.
    Scan {
        /// The first key.
        start: Vec<u8>,
        /// Most records to read.
        limit: u32,
    },
    /// Read `key`, then write `value` to it.
    ReadModifyWrite {
        /// The key.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
}

impl Op {
    /// The operation's kind.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Read { .. } => OpKind::Read,
            Op::Update { .. } => OpKind::Update,
            Op::Insert { .. } => OpKind::Insert,
            Op::Scan { .. } => OpKind::Scan,
            Op::ReadModifyWrite { .. } => OpKind::ReadModifyWrite,
        }
    }
}

/// Picks an operation kind from cumulative, normalized weights.
#[derive(Debug, Clone)]
struct OpMix {
    /// Upper bound of each kind's slice of `[0, 1)`.
    cumulative: [f64; 5],
}

impl OpMix {
    fn new(proportions: [f64; 5]) -> OpMix {
        let total: f64 = proportions.iter().sum();
        let mut cumulative = [0.0; 5];
        let mut acc = 0.0;
        for (slot, p) in cumulative.iter_mut().zip(proportions) {
            acc += p / total;
            *slot = acc;
        }
        OpMix { cumulative }
    }

    fn choose(&self, u: f64) -> OpKind {
        // A zero weight gives an empty slice, so that kind is never chosen; the last kind with
        // a positive weight catches rounding at the top.
        self.cumulative
            .iter()
            .position(|&bound| u < bound)
            .map(|i| OpKind::ALL[i])
            .unwrap_or_else(|| {
                let mut lower = 0.0;
                let mut last = None;
                for (i, &bound) in self.cumulative.iter().enumerate() {
                    if bound > lower {
                        last = Some(i);
                    }
                    lower = bound;
                }
                OpKind::ALL[last.expect("validated: some proportion is positive")]
            })
    }
}

/// The shared state of one workload: configuration, key space and inserted ids.
#[derive(Debug)]
pub struct Workload {
    config: WorkloadConfig,
    keys: KeySpace,
    inserts: InsertSequence,
    mix: OpMix,
}

impl Workload {
    /// Validates `config` and builds the workload; records `0..record_count` are assumed loaded.
    pub fn new(config: WorkloadConfig) -> Result<Arc<Workload>> {
        config.validate()?;
        let keys = KeySpace::new(config.key_size, config.key_order)?;
        let inserts = InsertSequence::new(config.record_count, keys.capacity(), config.key_size);
        Ok(Arc::new(Workload {
            mix: OpMix::new(config.proportions()),
            config,
            keys,
            inserts,
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &WorkloadConfig {
        &self.config
    }

    /// The key of record `id`.
    pub fn key(&self, id: u64) -> Vec<u8> {
        self.keys.key(id)
    }

    /// Records that certainly exist: loaded ones and finished inserts.
    pub fn existing_records(&self) -> u64 {
        self.inserts.acknowledged()
    }

    /// Marks the insert of record `id` as done (successfully or not).
    pub fn finish_insert(&self, id: u64) {
        self.inserts.finish(id);
    }

    /// A generator for one client, seeded from `seed`.
    pub fn generator(self: &Arc<Self>, seed: u64) -> OpGenerator {
        let mut rng = StdRng::seed_from_u64(seed);
        // Random printable bytes; values are windows into this pool, so making one costs a copy
        // rather than value_size random draws.
        let pool = (0..self.config.value_size * 2)
            .map(|_| rng.gen_range(b'!'..=b'~'))
            .collect();
        OpGenerator {
            chooser: KeyChooser::new(self.config.distribution, self.config.zipf_theta),
            workload: self.clone(),
            rng,
            pool,
        }
    }
}

/// One client's source of operations.
pub struct OpGenerator {
    workload: Arc<Workload>,
    rng: StdRng,
    chooser: KeyChooser,
    pool: Vec<u8>,
}

impl OpGenerator {
    /// The next operation. Fails only when an insert finds the key space full.
    pub fn next_op(&mut self) -> Result<Op> {
        let kind = self.workload.mix.choose(self.rng.gen::<f64>());
        Ok(match kind {
            OpKind::Read => Op::Read {
                key: self.existing_key(),
            },
            OpKind::Update => Op::Update {
                key: self.existing_key(),
                value: self.value(),
            },
            OpKind::Insert => {
                let id = self.workload.inserts.reserve()?;
                Op::Insert {
                    id,
                    key: self.workload.key(id),
                    value: self.value(),
                }
            }
            OpKind::Scan => Op::Scan {
                start: self.existing_key(),
                limit: self.rng.gen_range(1..=self.workload.config.max_scan_length),
            },
            OpKind::ReadModifyWrite => Op::ReadModifyWrite {
                key: self.existing_key(),
                value: self.value(),
            },
        })
    }

    /// The key and value of record `id`, for the load phase.
    pub fn record(&mut self, id: u64) -> (Vec<u8>, Vec<u8>) {
        (self.workload.key(id), self.value())
    }

    /// A fresh value of the configured size.
    pub fn value(&mut self) -> Vec<u8> {
        let size = self.workload.config.value_size;
        let offset = (self.rng.next_u32() as usize) % (self.pool.len() - size + 1);
        self.pool[offset..offset + size].to_vec()
    }

    fn existing_key(&mut self) -> Vec<u8> {
        let n = self.workload.existing_records();
        let id = self.chooser.choose(&mut self.rng, n);
        self.workload.key(id)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::{Distribution, Preset};

    fn mix_of(preset: Preset, samples: usize) -> HashMap<OpKind, usize> {
        let workload = Workload::new(WorkloadConfig {
            record_count: 1_000,
            ..preset.workload()
        })
        .unwrap();
        let mut generator = workload.generator(42);
        let mut counts = HashMap::new();
        for _ in 0..samples {
            let op = generator.next_op().unwrap();
            if let Op::Insert { id, .. } = op {
                workload.finish_insert(id);
            }
            *counts.entry(op.kind()).or_default() += 1;
        }
        counts
    }

    fn share(counts: &HashMap<OpKind, usize>, kind: OpKind, samples: usize) -> f64 {
        counts.get(&kind).copied().unwrap_or(0) as f64 / samples as f64
    }

    #[test]
    fn op_mix_follows_the_presets() {
        let n = 40_000;
        // Binomial standard deviation at p = 0.5 is 0.0025 of n: ±0.015 is six of them.
        let cases = [
            (Preset::A, vec![(OpKind::Read, 0.5), (OpKind::Update, 0.5)]),
            (
                Preset::B,
                vec![(OpKind::Read, 0.95), (OpKind::Update, 0.05)],
            ),
            (Preset::C, vec![(OpKind::Read, 1.0)]),
            (
                Preset::D,
                vec![(OpKind::Read, 0.95), (OpKind::Insert, 0.05)],
            ),
            (
                Preset::E,
                vec![(OpKind::Scan, 0.95), (OpKind::Insert, 0.05)],
            ),
            (
                Preset::F,
                vec![(OpKind::Read, 0.5), (OpKind::ReadModifyWrite, 0.5)],
            ),
            (Preset::Put, vec![(OpKind::Update, 1.0)]),
        ];
        for (preset, expected) in cases {
            let counts = mix_of(preset, n);
            let total: f64 = expected.iter().map(|(k, _)| share(&counts, *k, n)).sum();
            assert!(
                (total - 1.0).abs() < 1e-9,
                "{preset:?}: unexpected kinds {counts:?}"
            );
            for (kind, p) in expected {
                let got = share(&counts, kind, n);
                assert!((got - p).abs() < 0.015, "{preset:?} {kind}: {got} vs {p}");
            }
        }
    }

    #[test]
    fn op_mix_normalizes_weights_and_skips_zero_weights() {
        let mix = OpMix::new([2.0, 0.0, 0.0, 0.0, 2.0]);
        assert_eq!(mix.choose(0.0), OpKind::Read);
        assert_eq!(mix.choose(0.49), OpKind::Read);
        assert_eq!(mix.choose(0.5), OpKind::ReadModifyWrite);
        assert_eq!(mix.choose(0.999_999), OpKind::ReadModifyWrite);
        // Rounding at the top lands on the last kind with a weight, never a zero-weight kind.
        let mix = OpMix::new([1.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(mix.choose(1.0), OpKind::Update);
    }

    #[test]
    fn generated_keys_and_values_have_the_configured_shape() {
        let workload = Workload::new(WorkloadConfig {
            key_size: 20,
            value_size: 100,
            max_scan_length: 7,
            scan_proportion: 1.0,
            read_proportion: 0.0,
            update_proportion: 0.0,
            ..WorkloadConfig::new_test_config()
        })
        .unwrap();
        let mut generator = workload.generator(1);
        for _ in 0..1_000 {
            match generator.next_op().unwrap() {
                Op::Scan { start, limit } => {
                    assert_eq!(start.len(), 20);
                    assert!((1..=7).contains(&limit));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let (key, value) = generator.record(5);
        assert_eq!(key, workload.key(5));
        assert_eq!(value.len(), 100);
        assert!(value.iter().all(|b| b.is_ascii_graphic()));
    }

    #[test]
    fn reads_only_touch_existing_records() {
        let workload = Workload::new(WorkloadConfig {
            record_count: 50,
            distribution: Distribution::Latest,
            ..Preset::D.workload()
        })
        .unwrap();
        let mut generator = workload.generator(3);
        let mut unfinished = Vec::new();
        let mut keys_of_ids: HashMap<Vec<u8>, u64> = HashMap::new();
        for id in 0..200 {
            keys_of_ids.insert(workload.key(id), id);
        }
        for _ in 0..2_000 {
            match generator.next_op().unwrap() {
                // Hold inserts back: reads must not see them until they finish.
                Op::Insert { id, .. } => unfinished.push(id),
                Op::Read { key } => assert!(keys_of_ids[&key] < 50),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(!unfinished.is_empty());
        for id in unfinished {
            workload.finish_insert(id);
        }
        assert!(workload.existing_records() > 50);
    }

    #[test]
    fn same_seed_same_sequence() {
        let workload = Workload::new(Preset::A.workload()).unwrap();
        let ops = |seed| {
            let mut g = workload.generator(seed);
            (0..100).map(|_| g.next_op().unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(ops(9), ops(9));
        assert_ne!(ops(9), ops(10));
    }
}
