//! `SqlStorage` properties the GlueSQL suite does not check: what lands in the keyspace (index
//! entries and guards follow every row change, DROP TABLE leaves nothing), paging across many
//! pages in both index directions, namespaces and the format-version check, and statements
//! over tables that span regions. By default on a real 3-store cluster split along
//! [`SPLIT_PLAN`] (see `common`).

mod common;

use tinykv_sql::gluesql_core::executor::Payload;
use tinykv_sql::gluesql_core::prelude::Value;
use tinykv_sql::keys::KeySpace;
use tinykv_sql::{Config, Error, KvBackend, Session, SqlStorage, FORMAT_VERSION};

/// Region boundaries of this binary's cluster: the tables of these tests are cut between
/// regions at the primary keys given (see `common::SplitPlan`); the namespaces of the
/// isolation test start regions of their own.
const SPLIT_PLAN: common::SplitPlan = common::SplitPlan {
    namespace_starts: &["one", "three", "two"],
    tables: &[
        ("lifecycle", &[10]),
        ("paging", &[20, 40]),
        ("renames", &[2]),
        ("spread", &[10, 20, 30]),
    ],
};

/// Every key of `config`'s namespace, read in one snapshot.
fn keys_in(backend: &dyn KvBackend, config: &Config) -> Vec<Vec<u8>> {
    let (start, end) = KeySpace::new(&config.namespace).all();
    let mut txn = backend.begin().unwrap();
    let pairs = txn.scan(&start, &end, 10_000, false).unwrap();
    txn.rollback().unwrap();
    pairs.into_iter().map(|(k, _)| k).collect()
}

fn ints(session: &mut Session, sql: &str) -> Vec<i64> {
    match session.execute(sql).unwrap().pop() {
        Some(Payload::Select { rows, .. }) => rows
            .into_iter()
            .map(|row| match row.as_slice() {
                [Value::I64(n)] => *n,
                other => panic!("{sql}: {other:?}"),
            })
            .collect(),
        other => panic!("{sql}: {other:?}"),
    }
}

/// A session in `namespace` on the shared backend, with that backend and the namespace's
/// configuration for direct key-space checks.
fn fresh(namespace: &str) -> (std::sync::Arc<dyn KvBackend>, Config, Session) {
    (
        common::backend(),
        common::config(namespace),
        common::session(namespace),
    )
}

#[test]
fn index_entries_and_guards_follow_row_changes_and_drop_leaves_nothing() {
    let (backend, config, mut s) = fresh("lifecycle");
    let baseline = keys_in(&*backend, &config).len();
    s.execute("CREATE TABLE t (id INT PRIMARY KEY, u INT UNIQUE, v INT)")
        .unwrap();
    s.execute("CREATE INDEX t_v ON t (v)").unwrap();
    let values: Vec<String> = (0..20).map(|i| format!("({i}, {i}, {})", i % 3)).collect();
    s.execute(&format!("INSERT INTO t VALUES {}", values.join(", ")))
        .unwrap();
    // Table record + id allocator + 20 rows + 20 index entries + 20 guards.
    let populated = keys_in(&*backend, &config).len();
    assert_eq!(populated, baseline + 2 + 60);

    // Moving unique values and index values rewrites entries in place: no stale ones.
    s.execute("UPDATE t SET u = u + 100, v = v + 10 WHERE id < 10")
        .unwrap();
    assert_eq!(keys_in(&*backend, &config).len(), populated);
    assert_eq!(
        ints(&mut s, "SELECT id FROM t WHERE v = 10 ORDER BY id").len(),
        4
    );
    s.execute("INSERT INTO t VALUES (50, 5, 0)").unwrap(); // 5 was freed by the update
    s.execute("DELETE FROM t WHERE id >= 10").unwrap();
    assert_eq!(
        keys_in(&*backend, &config).len(),
        baseline + 2 + 3 * 10,
        "deleted rows took their entries and guards along"
    );

    s.execute("DROP TABLE t").unwrap();
    assert_eq!(
        keys_in(&*backend, &config).len(),
        baseline + 1,
        "only the table id allocator remains"
    );
}

#[test]
fn index_scans_page_in_both_directions() {
    let (_, _, mut s) = fresh("paging");
    // 7 rows per page (test config): 60 rows span many pages.
    s.execute("CREATE TABLE p (id INT PRIMARY KEY, k INT)")
        .unwrap();
    let values: Vec<String> = (0..60)
        .map(|i| format!("({i}, {})", (i * 37) % 60))
        .collect();
    s.execute(&format!("INSERT INTO p VALUES {}", values.join(", ")))
        .unwrap();
    s.execute("CREATE INDEX p_k ON p (k)").unwrap();
    let asc = ints(&mut s, "SELECT k FROM p ORDER BY k ASC");
    assert_eq!(asc, (0..60).collect::<Vec<_>>());
    let desc = ints(&mut s, "SELECT k FROM p ORDER BY k DESC");
    assert_eq!(desc, (0..60).rev().collect::<Vec<_>>());
    let range = ints(&mut s, "SELECT k FROM p WHERE k > 40 ORDER BY k DESC");
    assert_eq!(range, (41..60).rev().collect::<Vec<_>>());
    let ids = ints(&mut s, "SELECT id FROM p");
    assert_eq!(
        ids,
        (0..60).collect::<Vec<_>>(),
        "table scans are in primary-key order"
    );
}

#[test]
fn renames_keep_data_indexes_and_guards() {
    let (_, _, mut s) = fresh("renames");
    s.execute("CREATE TABLE a (id INT PRIMARY KEY, u TEXT UNIQUE, n INT)")
        .unwrap();
    s.execute("CREATE INDEX a_n ON a (n * 2)").unwrap();
    s.execute("INSERT INTO a VALUES (1, 'x', 5), (2, 'y', 6)")
        .unwrap();
    s.execute("ALTER TABLE a RENAME TO b").unwrap();
    s.execute("ALTER TABLE b RENAME COLUMN n TO m").unwrap();
    assert_eq!(ints(&mut s, "SELECT id FROM b WHERE m * 2 = 12"), vec![2]);
    assert!(
        s.execute("INSERT INTO b VALUES (3, 'x', 1)").is_err(),
        "the unique value is still taken after the renames"
    );
    s.execute("ALTER TABLE b DROP COLUMN u").unwrap();
    s.execute("INSERT INTO b VALUES (3, 1)").unwrap();
    assert_eq!(ints(&mut s, "SELECT id FROM b ORDER BY id"), vec![1, 2, 3]);
}

#[test]
fn namespaces_are_isolated_and_format_versions_checked() {
    let backend = common::backend();
    let config = common::config;
    let mut one = Session::open(backend.clone(), &config("one")).unwrap();
    let mut two = Session::open(backend.clone(), &config("two")).unwrap();
    one.execute("CREATE TABLE t (id INT)").unwrap();
    two.execute("CREATE TABLE t (id TEXT)").unwrap();
    one.execute("INSERT INTO t VALUES (1)").unwrap();
    assert_eq!(ints(&mut two, "SELECT COUNT(*) FROM t"), vec![0]);

    let key = common::keyspace("three").format_version();
    let mut txn = backend.begin().unwrap();
    txn.put(key, (FORMAT_VERSION + 1).to_be_bytes().to_vec())
        .unwrap();
    txn.commit().unwrap();
    match SqlStorage::open(backend, &config("three")) {
        Err(Error::FormatVersion { found, supported }) => {
            assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("opened a namespace of another format"),
    }
}

#[test]
fn bad_sql_is_an_error_never_a_panic() {
    let mut s = common::session("bad-sql");
    for sql in [
        "SELEC 1",
        "SELECT * FROM nowhere",
        "INSERT INTO nowhere VALUES (1)",
        "CREATE TABLE f (x FLOAT PRIMARY KEY); INSERT INTO f VALUES (1.5)",
        "COMMIT",
        "ROLLBACK",
    ] {
        let _ = s.execute(sql);
    }
    assert!(s.execute("SELEC 1").is_err());
    s.execute("CREATE TABLE ok (id INT)").unwrap();
    s.execute("INSERT INTO ok VALUES (1)").unwrap();
    assert_eq!(ints(&mut s, "SELECT id FROM ok"), vec![1]);
}

/// A table cut into several regions (index entries, rows in four parts, UNIQUE guards): scans
/// come back whole and in order, a statement writing every region commits all of it, a
/// rolled-back or losing transaction leaves nothing, and no stray keys remain.
#[test]
fn statements_over_a_table_spanning_regions_are_all_or_nothing() {
    let (backend, config, mut s) = fresh("spread");
    let baseline = keys_in(&*backend, &config).len();
    s.execute("CREATE TABLE s (id INT PRIMARY KEY, u INT UNIQUE, v INT)")
        .unwrap();
    s.execute("CREATE INDEX s_v ON s (v)").unwrap();
    let values: Vec<String> = (0..40).map(|i| format!("({i}, {i}, {})", i % 4)).collect();
    s.execute(&format!("INSERT INTO s VALUES {}", values.join(", ")))
        .unwrap();
    let (table_start, _) = common::keyspace("spread").table(1);
    let (next_table, _) = common::keyspace("spread").table(2);
    if let Some(regions) = common::regions_spanned(&table_start, &next_table) {
        // Index entries, rows cut at 10, 20 and 30, guards.
        assert!(regions >= 6, "table s spans only {regions} regions");
    }
    assert_eq!(
        keys_in(&*backend, &config).len(),
        baseline + 2 + 3 * 40,
        "record, id allocator, and a row, an index entry and a guard per row"
    );
    assert_eq!(
        ints(&mut s, "SELECT id FROM s"),
        (0..40).collect::<Vec<_>>()
    );
    assert_eq!(
        ints(&mut s, "SELECT id FROM s WHERE v = 3 ORDER BY id DESC"),
        (0..40).filter(|i| i % 4 == 3).rev().collect::<Vec<_>>()
    );

    // One statement writing rows, entries and guards in every region.
    s.execute("UPDATE s SET u = u + 1000, v = v + 10").unwrap();
    assert_eq!(ints(&mut s, "SELECT SUM(v) FROM s"), vec![40 * 10 + 60]);
    assert_eq!(
        ints(&mut s, "SELECT COUNT(*) FROM s WHERE v = 10"),
        vec![10]
    );

    // A transaction touching every region, rolled back: nothing of it is visible.
    s.execute("BEGIN").unwrap();
    s.execute("DELETE FROM s WHERE id < 5 OR id > 35").unwrap();
    s.execute("UPDATE s SET v = 0").unwrap();
    s.execute("INSERT INTO s VALUES (100, 5, 1)").unwrap();
    s.execute("ROLLBACK").unwrap();
    assert_eq!(ints(&mut s, "SELECT COUNT(*) FROM s"), vec![40]);
    assert_eq!(ints(&mut s, "SELECT SUM(v) FROM s"), vec![40 * 10 + 60]);

    // Two transactions writing the far ends of the table: the second to commit loses whole.
    let mut other = common::session("spread");
    s.execute("BEGIN").unwrap();
    other.execute("BEGIN").unwrap();
    s.execute("UPDATE s SET v = 1 WHERE id = 0 OR id = 39")
        .unwrap();
    other
        .execute("UPDATE s SET v = 2 WHERE id = 15 OR id = 39")
        .unwrap();
    s.execute("COMMIT").unwrap();
    let lost = other.execute("COMMIT").unwrap_err();
    assert!(lost.is_retryable(), "expected a write conflict, got {lost}");
    assert_eq!(
        ints(
            &mut s,
            "SELECT v FROM s WHERE id IN (0, 15, 39) ORDER BY id"
        ),
        vec![1, 15 % 4 + 10, 1]
    );
    assert_eq!(
        keys_in(&*backend, &config).len(),
        baseline + 2 + 3 * 40,
        "no stray keys from the rolled-back or losing transactions"
    );
}
