//! The bank: concurrent money transfers between accounts spread over several regions of a
//! 3-store Raft cluster, checked by readers that every snapshot sums to the same total.
//!
//! - Accounts `account-000..` hold decimal balances; the key space is bootstrapped already cut
//!   into [`REGIONS`] regions (at memcomparable-encoded account keys), each replicated on every
//!   store, so most transfers are cross-region two-phase commits.
//! - Writers repeatedly move a random amount between two random accounts: read both balances at
//!   a fresh start ts, prewrite both new balances (primary = the debited account), commit the
//!   primary, then the secondary. Conflicts and live locks in the way abort the attempt, which is
//!   retried with a new ts; locks of finished or expired transactions are resolved (check the
//!   primary's status, then commit or roll the lock back). One writer "crashes" now and then,
//!   right after prewriting or right after committing its primary, leaving locks for the others.
//! - Readers take a fresh ts and read every account (one by batched point reads, one by
//!   region-by-region scans), resolving or reading past locks; every snapshot must hold every
//!   account and sum to the initial total.
//! - Faults: none, a lossy and reordering network, stores stopped and restarted while the others
//!   keep committing (the store leading the most regions, three times), or both.
//!
//! A run lasts until enough transfers committed and enough snapshots were checked (and the fault
//! schedule is done), with a generous deadline. At the end every lock left is resolved, both read
//! paths must agree, the total must hold, and each balance must equal its initial value plus
//! the committed transfers' credits minus their debits: a lost update or a transfer applied
//! twice would show there even if the sum survived.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvserver::mvcc::key::encode_bytes;
use parking_lot::Mutex;
use proto::kvrpcpb::{Mutation, Op};
use rand::Rng;
use tests::transport::{RandomDelay, RandomDrop};
use tests::txn_client::{LocalTso, TxnCluster};
use tests::{Cluster, ClusterConfig};
use tokio::task::JoinHandle;

use crate::percolator::{Client, CrashPoint, Outcome, Stats};

const ACCOUNTS: usize = 24;
const REGIONS: usize = 4;
const STORES: usize = 3;
const INITIAL_BALANCE: u64 = 1_000;
const WRITERS: usize = 6;
const MAX_AMOUNT: u64 = 100;
/// Lock TTL: short enough that abandoned locks expire within a run, long enough that a live
/// transaction delayed by an election usually survives.
const LOCK_TTL_MS: u64 = 2_000;
/// A run ends once this many transfers committed and every reader checked this many snapshots.
const TARGET_COMMITS: u64 = 200;
const TARGET_CHECKS: u64 = 50;
/// Store restarts per run (with `store_restarts`).
const RESTARTS: usize = 3;
/// Progress the fault schedule waits for before each stop and before each restart.
const COMMITS_PER_PHASE: u64 = 25;
/// How long a run may take before the test fails for lack of progress.
const RUN_DEADLINE: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(50);

/// What goes wrong during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    /// 10% of raft messages lost and another 10% delayed by up to 20 ms (so reordered), for
    /// the whole run.
    pub lossy_network: bool,
    /// [`RESTARTS`] times, the store leading the most regions is stopped until the others have
    /// committed more transfers without it, then restarted.
    pub store_restarts: bool,
}

/// How a reader reads every account.
#[derive(Debug, Clone, Copy)]
enum ReadPath {
    BatchGet,
    Scan,
}

fn account(i: usize) -> Vec<u8> {
    format!("account-{i:03}").into_bytes()
}

/// Bounds of the account range (`[first, end)`).
fn account_range() -> (Vec<u8>, Vec<u8>) {
    (b"account-".to_vec(), b"account.".to_vec())
}

fn balance(value: &[u8]) -> u64 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a balance: {:?}", value.escape_ascii().to_string()))
}

fn put(key: &[u8], balance: u64) -> Mutation {
    Mutation {
        op: Op::Put as i32,
        key: key.to_vec(),
        value: balance.to_string().into_bytes(),
        ..Default::default()
    }
}

/// A committed transfer.
#[derive(Debug, Clone)]
struct Transfer {
    from: Vec<u8>,
    to: Vec<u8>,
    amount: u64,
}

/// State shared by the test body and its tasks.
struct Bank {
    client: Client,
    accounts: Vec<Vec<u8>>,
    total: u64,
    stop: AtomicBool,
    ledger: Mutex<Vec<Transfer>>,
    /// Snapshots checked, per reader.
    checks: Vec<AtomicU64>,
    /// Transfers abandoned after prewrite (they never commit).
    abandoned: AtomicU64,
    /// Set when a client task ends early (it panicked): waits give up at once.
    failed: AtomicBool,
}

/// Marks the bank failed if the task holding it unwinds.
struct FailOnPanic(Arc<Bank>);

impl Drop for FailOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.failed.store(true, Ordering::SeqCst);
        }
    }
}

/// Renders balances readably for failure messages.
fn show(values: &BTreeMap<Vec<u8>, Vec<u8>>) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{}={}", k.escape_ascii(), v.escape_ascii()))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Bank {
    fn committed(&self) -> u64 {
        self.ledger.lock().len() as u64
    }

    /// Reads every account at a fresh ts and checks the snapshot.
    async fn check_snapshot(&self, path: ReadPath) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let ts = self.client.tso.next();
        let values: BTreeMap<Vec<u8>, Vec<u8>> = match path {
            ReadPath::BatchGet => self.client.batch_get(&self.accounts, ts).await,
            ReadPath::Scan => {
                let (start, end) = account_range();
                self.client
                    .scan(&start, &end, ts)
                    .await
                    .into_iter()
                    .collect()
            }
        };
        let keys: Vec<&Vec<u8>> = values.keys().collect();
        assert_eq!(
            keys,
            self.accounts.iter().collect::<Vec<_>>(),
            "snapshot at {ts} ({path:?}) does not hold exactly the accounts"
        );
        let sum: u64 = values.values().map(|v| balance(v)).sum();
        assert_eq!(
            sum,
            self.total,
            "snapshot at {ts} ({path:?}) sums to {sum}, not {}: {}",
            self.total,
            show(&values)
        );
        values
    }

    /// Moves `amount` from `from` to `to` in one transaction, retrying aborted attempts until it
    /// commits, the debited account runs dry, or the run stops.
    async fn transfer(&self, from: &[u8], to: &[u8], amount: u64, crash: CrashPoint) {
        while !self.stop.load(Ordering::SeqCst) {
            let start_ts = self.client.tso.next();
            let keys = [from.to_vec(), to.to_vec()];
            let balances = self.client.batch_get(&keys, start_ts).await;
            let (a, b) = (balance(&balances[from]), balance(&balances[to]));
            if a < amount {
                return;
            }
            let mutations = vec![put(from, a - amount), put(to, b + amount)];
            match self.client.commit_txn(mutations, start_ts, crash).await {
                Ok(Outcome::Committed(_)) => {
                    self.ledger.lock().push(Transfer {
                        from: from.to_vec(),
                        to: to.to_vec(),
                        amount,
                    });
                    return;
                }
                Ok(Outcome::Abandoned) => {
                    self.abandoned.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Err(_) => {
                    let pause = rand::thread_rng().gen_range(5..50);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            }
        }
    }

    async fn writer(self: Arc<Self>, id: usize) {
        let _guard = FailOnPanic(self.clone());
        let mut n = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            let (from, to, amount) = {
                let mut rng = rand::thread_rng();
                let from = rng.gen_range(0..ACCOUNTS);
                let to = (from + rng.gen_range(1..ACCOUNTS)) % ACCOUNTS;
                (from, to, rng.gen_range(1..=MAX_AMOUNT))
            };
            // Writer 0 crashes now and then, leaving its locks to the others.
            let crash = match (id, n % 8) {
                (0, 3) => CrashPoint::AfterPrewrite,
                (0, 6) => CrashPoint::AfterPrimary,
                _ => CrashPoint::Never,
            };
            self.transfer(&self.accounts[from], &self.accounts[to], amount, crash)
                .await;
            n += 1;
        }
    }

    async fn reader(self: Arc<Self>, id: usize, path: ReadPath) {
        let _guard = FailOnPanic(self.clone());
        while !self.stop.load(Ordering::SeqCst) {
            self.check_snapshot(path).await;
            self.checks[id].fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Waits (polling) until `cond` holds (`true`) or a client failed (`false`); panics naming
    /// `what` once the run's deadline passed.
    async fn wait_until(
        &self,
        deadline: Instant,
        what: &str,
        cond: impl Fn(&Bank) -> bool,
    ) -> bool {
        while !cond(self) {
            if self.failed.load(Ordering::SeqCst) {
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "no progress: timed out waiting for {what} ({} transfers committed)",
                self.committed()
            );
            tokio::time::sleep(POLL).await;
        }
        true
    }
}

/// Runs the fault schedule while the clients work; returns once it is done.
async fn inject(bank: Arc<Bank>, txn: Arc<TxnCluster>, faults: Faults, deadline: Instant) {
    let cluster = txn.cluster().clone();
    if faults.lossy_network {
        cluster.add_filter(RandomDrop::new(0.1));
        cluster.add_filter(RandomDelay::new(0.1, Duration::from_millis(20)));
    }
    if !faults.store_restarts {
        return;
    }
    for _ in 0..RESTARTS {
        let before = bank.committed();
        let progressed = bank.wait_until(deadline, "commits before a restart", |b| {
            b.committed() >= before + COMMITS_PER_PHASE
        });
        if !progressed.await {
            return;
        }
        let victim = busiest_store(&cluster);
        let t = txn.clone();
        tokio::task::spawn_blocking(move || t.stop_store(victim))
            .await
            .expect("stop store task");
        let down = bank.committed();
        let progressed = bank.wait_until(deadline, "commits while a store is down", |b| {
            b.committed() >= down + COMMITS_PER_PHASE
        });
        // Restart the store even if a client failed, so the cluster shuts down whole.
        let progressed = progressed.await;
        let t = txn.clone();
        tokio::task::spawn_blocking(move || t.start_store(victim))
            .await
            .expect("start store task")
            .expect("restart the store");
        if !progressed {
            return;
        }
    }
}

/// The running store leading the most regions (as the scheduler last heard).
fn busiest_store(cluster: &Cluster) -> u64 {
    let pd = cluster.pd();
    let mut leaders: BTreeMap<u64, usize> = cluster
        .running_store_ids()
        .into_iter()
        .map(|id| (id, 0))
        .collect();
    for region in pd.regions() {
        if let Some(count) = pd
            .leader_of(region.id)
            .and_then(|l| leaders.get_mut(&l.store_id))
        {
            *count += 1;
        }
    }
    leaders
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(id, _)| id)
        .expect("a running store")
}

/// Runs one bank scenario on its own 2-thread runtime, alone among this binary's cluster tests.
pub fn run(faults: Faults) {
    let _serial = tests::serial();
    tests::init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run_async(faults));
}

async fn run_async(faults: Faults) {
    let started = Instant::now();
    let accounts: Vec<Vec<u8>> = (0..ACCOUNTS).map(account).collect();
    let splits: Vec<Vec<u8>> = (1..REGIONS)
        .map(|r| encode_bytes(&account(r * ACCOUNTS / REGIONS)))
        .collect();
    let cluster = Arc::new(
        Cluster::with_regions(STORES, ClusterConfig::new_test_config(), &splits)
            .expect("create the cluster"),
    );
    cluster.start().expect("start the cluster");
    cluster.must_wait("every region to report a leader", || {
        let regions = cluster.pd().regions();
        regions.len() == REGIONS
            && regions
                .iter()
                .all(|r| cluster.pd().leader_of(r.id).is_some())
    });
    let txn = Arc::new(TxnCluster::new(cluster.clone()));
    let bank = Arc::new(Bank {
        client: Client {
            txn: txn.clone(),
            tso: Arc::new(LocalTso::new()),
            lock_ttl: LOCK_TTL_MS,
            stats: Arc::new(Stats::default()),
        },
        accounts: accounts.clone(),
        total: INITIAL_BALANCE * ACCOUNTS as u64,
        stop: AtomicBool::new(false),
        ledger: Mutex::new(Vec::new()),
        checks: (0..2).map(|_| AtomicU64::new(0)).collect(),
        abandoned: AtomicU64::new(0),
        failed: AtomicBool::new(false),
    });

    // Open every account in one transaction spanning every region.
    let start_ts = bank.client.tso.next();
    let opening = accounts.iter().map(|a| put(a, INITIAL_BALANCE)).collect();
    let outcome = bank
        .client
        .commit_txn(opening, start_ts, CrashPoint::Never)
        .await;
    assert!(
        matches!(outcome, Ok(Outcome::Committed(_))),
        "opening the accounts: {outcome:?}"
    );
    bank.check_snapshot(ReadPath::BatchGet).await;
    // Two crashed transfers before the traffic starts, so both kinds of leftover locks are
    // certainly there to be resolved: secondaries of a committed primary, and a prewrite whose
    // owner never comes back.
    bank.transfer(
        &accounts[0],
        &accounts[ACCOUNTS - 1],
        10,
        CrashPoint::AfterPrimary,
    )
    .await;
    bank.transfer(
        &accounts[1],
        &accounts[ACCOUNTS - 2],
        10,
        CrashPoint::AfterPrewrite,
    )
    .await;
    assert_eq!(
        (bank.committed(), bank.abandoned.load(Ordering::SeqCst)),
        (1, 1)
    );

    let deadline = Instant::now() + RUN_DEADLINE;
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    for id in 0..WRITERS {
        tasks.push(tokio::spawn(bank.clone().writer(id)));
    }
    tasks.push(tokio::spawn(bank.clone().reader(0, ReadPath::BatchGet)));
    tasks.push(tokio::spawn(bank.clone().reader(1, ReadPath::Scan)));
    inject(bank.clone(), txn.clone(), faults, deadline).await;
    bank.wait_until(deadline, "the run's targets", |b| {
        b.committed() >= TARGET_COMMITS
            && b.checks
                .iter()
                .all(|c| c.load(Ordering::SeqCst) >= TARGET_CHECKS)
    })
    .await;
    bank.stop.store(true, Ordering::SeqCst);
    for task in tasks {
        // A panicking client (a broken snapshot, an unexpected error) fails the test here,
        // with its own message.
        if let Err(e) = tokio::time::timeout(RUN_DEADLINE, task)
            .await
            .expect("a client did not stop")
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }

    // Heal, clean up every leftover lock, and check the end state both ways.
    cluster.clear_filters();
    for id in cluster.store_ids() {
        txn.start_store(id).expect("every store runs again");
    }
    let (start, end) = account_range();
    bank.client.resolve_all_locks(&start, &end).await;
    let by_get = bank.check_snapshot(ReadPath::BatchGet).await;
    let by_scan = bank.check_snapshot(ReadPath::Scan).await;
    assert_eq!(by_get, by_scan, "point reads and scans disagree");
    let mut expected: BTreeMap<Vec<u8>, u64> = accounts
        .iter()
        .map(|a| (a.clone(), INITIAL_BALANCE))
        .collect();
    let ledger = bank.ledger.lock().clone();
    for t in &ledger {
        *expected.get_mut(&t.from).expect("an account") -= t.amount;
        *expected.get_mut(&t.to).expect("an account") += t.amount;
    }
    for (account, want) in &expected {
        assert_eq!(
            balance(&by_get[account]),
            *want,
            "{} differs from its committed transfers: {}",
            account.escape_ascii(),
            show(&by_get)
        );
    }
    let left = bank
        .client
        .scan_locks(&start, &end, bank.client.tso.next())
        .await;
    assert!(left.is_empty(), "locks left after resolving: {left:?}");

    let stats = &bank.client.stats;
    assert!(
        stats.resolved_committed.load(Ordering::Relaxed) >= 1
            && stats.resolved_rolled_back.load(Ordering::Relaxed) >= 1,
        "the crashed transfers' locks were resolved both ways: {stats:?}"
    );
    let net = cluster.net().stats();
    println!(
        "bank {faults:?}: {} transfers committed, {} abandoned, snapshots checked {:?}, {stats:?}, \
         messages dropped/delayed {}/{}, {:.1?}",
        ledger.len(),
        bank.abandoned.load(Ordering::SeqCst),
        bank.checks.iter().map(|c| c.load(Ordering::SeqCst)).collect::<Vec<_>>(),
        net.filtered,
        net.delayed,
        started.elapsed()
    );
}

#[test]
fn bank_transfers() {
    run(Faults {
        lossy_network: false,
        store_restarts: false,
    });
}

#[test]
fn bank_transfers_lossy_network() {
    run(Faults {
        lossy_network: true,
        store_restarts: false,
    });
}

#[test]
fn bank_transfers_store_restarts() {
    run(Faults {
        lossy_network: false,
        store_restarts: true,
    });
}

#[test]
fn bank_transfers_lossy_network_and_store_restarts() {
    run(Faults {
        lossy_network: true,
        store_restarts: true,
    });
}
