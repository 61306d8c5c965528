//! Concurrency through SQL, which GlueSQL's single-session suite cannot see:
//!
//! - scripted interleavings of several sessions (`slt/*.slt`, sqllogictest `connection`
//!   records): conflicting updates, unique/primary-key/foreign-key races, failed statements;
//! - threads racing for real: increments that must not be lost, a unique value claimed by many
//!   at once, and a bank whose total must never change while transfers run.
//!
//! By default on a real 3-store cluster split along [`SPLIT_PLAN`]: every table here has its
//! rows cut between regions, and its UNIQUE guards and index entries in regions of their own,
//! so the races below are decided by multi-region two-phase commits.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use sqllogictest::{DBOutput, DefaultColumnType};
use tinykv_sql::gluesql_core::executor::Payload;
use tinykv_sql::gluesql_core::prelude::Value;
use tinykv_sql::{Error, Session};

/// Region boundaries of this binary's cluster: each test's namespace gets its tables split
/// (see `common::SplitPlan`), rows cut at the primary keys the test uses.
const SPLIT_PLAN: common::SplitPlan = common::SplitPlan {
    namespace_starts: &["increments", "slt-", "unique-race"],
    tables: &[
        ("bank", &[2, 4]),
        ("increments", &[]),
        ("unique-race", &[100, 200]),
        ("slt-conflicting_updates", &[2]),
        ("slt-unique_races", &[3]),
        ("slt-failed_statements", &[3]),
    ],
};

/// One sqllogictest connection: a SQL session.
struct SltSession(Session);

impl sqllogictest::DB for SltSession {
    type Error = Error;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Error> {
        let payload = self.0.execute(sql)?.pop();
        Ok(match payload {
            Some(Payload::Select { labels, rows }) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; labels.len()],
                rows: rows
                    .iter()
                    .map(|row| row.iter().map(String::from).collect())
                    .collect(),
            },
            Some(Payload::Insert(n) | Payload::Update(n) | Payload::Delete(n)) => {
                DBOutput::StatementComplete(n as u64)
            }
            _ => DBOutput::StatementComplete(0),
        })
    }
}

fn run_slt(name: &str) {
    let path = format!("{}/tests/slt/{name}.slt", env!("CARGO_MANIFEST_DIR"));
    let namespace = format!("slt-{name}");
    let mut runner = sqllogictest::Runner::new(move || {
        let session = common::session(&namespace);
        async move { Ok(SltSession(session)) }
    });
    if let Err(e) = runner.run_file(&path) {
        panic!("{path}: {}", e.display(true));
    }
}

#[test]
fn slt_conflicting_updates() {
    run_slt("conflicting_updates");
}

#[test]
fn slt_unique_races() {
    run_slt("unique_races");
}

#[test]
fn slt_failed_statements() {
    run_slt("failed_statements");
}

fn int(session: &mut Session, sql: &str) -> i64 {
    match session.execute(sql).unwrap().pop() {
        Some(Payload::Select { rows, .. }) => match rows.as_slice() {
            [row] => match row.as_slice() {
                [Value::I64(n)] => *n,
                other => panic!("{sql}: expected one integer, got {other:?}"),
            },
            other => panic!("{sql}: expected one row, got {other:?}"),
        },
        other => panic!("{sql}: expected rows, got {other:?}"),
    }
}

/// Autocommit `v = v + 1` from several threads at once: every increment lands (conflicts are
/// retried by the session, which re-reads).
#[test]
fn concurrent_increments_are_never_lost() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 15;
    common::session("increments")
        .execute(
            "CREATE TABLE counter (id INT PRIMARY KEY, n INT); INSERT INTO counter VALUES (1, 0)",
        )
        .unwrap();
    let start = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let start = start.clone();
            thread::spawn(move || {
                let mut session = common::session("increments");
                start.wait();
                for _ in 0..PER_THREAD {
                    session
                        .execute("UPDATE counter SET n = n + 1 WHERE id = 1")
                        .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let n = int(
        &mut common::session("increments"),
        "SELECT n FROM counter WHERE id = 1",
    );
    assert_eq!(n, (THREADS * PER_THREAD) as i64);
}

/// Many sessions insert the same UNIQUE value at the same moment: exactly one row results, and
/// every loser gets an error (a duplicate found by the executor, or a conflict at commit).
#[test]
fn unique_value_claimed_by_many_commits_once() {
    const THREADS: usize = 6;
    common::session("unique-race")
        .execute("CREATE TABLE u (id INT PRIMARY KEY, email TEXT UNIQUE)")
        .unwrap();
    for round in 0..3 {
        let start = Arc::new(Barrier::new(THREADS));
        let winners = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..THREADS)
            .map(|i| {
                let (start, winners) = (start.clone(), winners.clone());
                thread::spawn(move || {
                    let mut session = common::session("unique-race");
                    let sql = format!(
                        "INSERT INTO u VALUES ({}, 'same-{round}@example.com')",
                        round * 100 + i
                    );
                    start.wait();
                    if session.execute(&sql).is_ok() {
                        winners.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(winners.load(Ordering::SeqCst), 1, "round {round}");
        let rows = int(
            &mut common::session("unique-race"),
            &format!("SELECT COUNT(*) FROM u WHERE email = 'same-{round}@example.com'"),
        );
        assert_eq!(rows, 1, "round {round}");
    }
}

/// Transfers between accounts in explicit transactions, retried on conflict, while an auditor
/// keeps summing the balances: every snapshot sees the same total, and so does the end.
#[test]
fn bank_total_is_invariant_under_concurrent_transfers() {
    const ACCOUNTS: i64 = 5;
    const INITIAL: i64 = 100;
    const THREADS: usize = 3;
    const TRANSFERS: usize = 12;
    let mut setup = common::session("bank");
    setup
        .execute("CREATE TABLE bank (id INT PRIMARY KEY, balance INT NOT NULL)")
        .unwrap();
    let values: Vec<String> = (0..ACCOUNTS).map(|i| format!("({i}, {INITIAL})")).collect();
    setup
        .execute(&format!("INSERT INTO bank VALUES {}", values.join(", ")))
        .unwrap();
    let total = ACCOUNTS * INITIAL;

    let done = Arc::new(AtomicBool::new(false));
    let auditor = {
        let done = done.clone();
        thread::spawn(move || {
            let mut session = common::session("bank");
            let mut audits = 0;
            while !done.load(Ordering::SeqCst) || audits == 0 {
                assert_eq!(int(&mut session, "SELECT SUM(balance) FROM bank"), total);
                audits += 1;
            }
            audits
        })
    };
    let committed = Arc::new(AtomicUsize::new(0));
    let conflicts = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (committed, conflicts) = (committed.clone(), conflicts.clone());
            thread::spawn(move || {
                let mut session = common::session("bank");
                for i in 0..TRANSFERS {
                    let from = (t + i) as i64 % ACCOUNTS;
                    let to = (from + 1 + (i as i64 % (ACCOUNTS - 1))) % ACCOUNTS;
                    loop {
                        match transfer(&mut session, from, to, 7) {
                            Ok(()) => break,
                            Err(e) if e.is_retryable() => {
                                conflicts.fetch_add(1, Ordering::SeqCst);
                                if session.in_transaction() {
                                    session.execute("ROLLBACK").unwrap();
                                }
                            }
                            Err(e) => panic!("transfer failed: {e}"),
                        }
                    }
                    committed.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let audits = auditor.join().unwrap();
    assert_eq!(committed.load(Ordering::SeqCst), THREADS * TRANSFERS);
    let mut session = common::session("bank");
    assert_eq!(int(&mut session, "SELECT SUM(balance) FROM bank"), total);
    assert_eq!(
        int(&mut session, "SELECT COUNT(*) FROM bank"),
        ACCOUNTS,
        "no account appeared or vanished"
    );
    eprintln!(
        "bank: {} transfers, {} conflicts retried, {audits} audits",
        committed.load(Ordering::SeqCst),
        conflicts.load(Ordering::SeqCst)
    );
}

/// Moves `amount` from `from` to `to` in one explicit transaction; balances may go negative.
fn transfer(session: &mut Session, from: i64, to: i64, amount: i64) -> tinykv_sql::Result<()> {
    session.execute("BEGIN")?;
    let balance = |session: &mut Session, id: i64| -> tinykv_sql::Result<i64> {
        match session
            .execute(&format!("SELECT balance FROM bank WHERE id = {id}"))?
            .pop()
        {
            Some(Payload::Select { rows, .. }) => match rows.first().map(Vec::as_slice) {
                Some([Value::I64(n)]) => Ok(*n),
                other => panic!("account {id}: {other:?}"),
            },
            other => panic!("account {id}: {other:?}"),
        }
    };
    let a = balance(session, from)?;
    let b = balance(session, to)?;
    session.execute(&format!(
        "UPDATE bank SET balance = {} WHERE id = {from}",
        a - amount
    ))?;
    session.execute(&format!(
        "UPDATE bank SET balance = {} WHERE id = {to}",
        b + amount
    ))?;
    session.execute("COMMIT")?;
    Ok(())
}
