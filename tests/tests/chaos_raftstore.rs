//! A long randomized run of the raftstore fault matrix (`make chaos-raftstore`, not part of
//! `make test`): GenericTest rows with a random mix of faults — clients, lossy network, crashes,
//! partitions, log GC, membership churn, splits — one after another for `CHAOS_DURATION_SECS`
//! (default 600).
//!
//! Every choice comes from one seed (`CHAOS_SEED`, random unless set), printed at the start and
//! again when a row fails: `CHAOS_SEED=<seed> make chaos-raftstore` runs the same rows with the
//! same per-row seeds (the same schedule of faults; thread timing is not replayed).

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tests::GenericTest;

/// A row with a random mix of faults; `rng` decides everything, so a seed replays it.
fn random_row(rng: &mut StdRng) -> GenericTest {
    let clients = *[1usize, 5, 20].choose(rng).expect("non-empty");
    let mut row = GenericTest::new(clients);
    if rng.gen_bool(0.5) {
        row = row.unreliable();
    }
    if rng.gen_bool(0.5) {
        row = row.crash();
    }
    if rng.gen_bool(0.4) {
        row = row.partitions();
    }
    if rng.gen_bool(0.5) {
        row = row.max_raft_log(100);
    }
    if rng.gen_bool(0.6) {
        row = row.confchange();
    }
    if rng.gen_bool(0.5) {
        row = row.split();
    }
    row.seed(rng.gen())
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}")),
    )
}

/// Prints how to replay the run if a row fails.
struct Replay {
    seed: u64,
    row: usize,
}

impl Drop for Replay {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "chaos-raftstore FAILED in row {} of seed {}; replay with CHAOS_SEED={} make chaos-raftstore",
                self.row, self.seed, self.seed
            );
        }
    }
}

#[test]
#[ignore = "a long randomized run: make chaos-raftstore"]
fn chaos_raftstore() {
    let _serial = tests::serial();
    let seed = env_u64("CHAOS_SEED").unwrap_or_else(rand::random);
    let duration = Duration::from_secs(env_u64("CHAOS_DURATION_SECS").unwrap_or(600));
    eprintln!("chaos-raftstore: seed {seed}, running for {duration:?}");
    let mut rng = StdRng::seed_from_u64(seed);
    let deadline = Instant::now() + duration;
    let mut row = 0;
    while Instant::now() < deadline {
        row += 1;
        let test = random_row(&mut rng);
        eprintln!("chaos-raftstore: row {row}: {test:?}");
        let _replay = Replay { seed, row };
        let started = Instant::now();
        test.run();
        eprintln!(
            "chaos-raftstore: row {row} passed in {:?}",
            started.elapsed()
        );
    }
    eprintln!("chaos-raftstore: {row} rows passed with seed {seed}");
}
