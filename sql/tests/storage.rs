//! `SqlStorage` properties the GlueSQL suite does not check: what lands in the keyspace (index
//! entries and guards follow every row change, DROP TABLE leaves nothing), paging across many
//! pages in both index directions, and the format-version check.

mod common;

use std::sync::Arc;

use tinykv_sql::gluesql_core::executor::Payload;
use tinykv_sql::gluesql_core::prelude::Value;
use tinykv_sql::keys::KeySpace;
use tinykv_sql::{Config, Error, KvBackend, MemoryBackend, Session, SqlStorage, FORMAT_VERSION};

/// Every key of `namespace` on `backend`, read in one snapshot.
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

fn fresh(namespace: &str) -> (Arc<MemoryBackend>, Config, Session) {
    let backend = Arc::new(MemoryBackend::new());
    let config = Config {
        namespace: namespace.to_owned(),
        ..Config::new_test_config()
    };
    let session = Session::open(backend.clone(), &config).unwrap();
    (backend, config, session)
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
    let backend = Arc::new(MemoryBackend::new());
    let config = |ns: &str| Config {
        namespace: ns.to_owned(),
        ..Config::new_test_config()
    };
    let mut one = Session::open(backend.clone(), &config("one")).unwrap();
    let mut two = Session::open(backend.clone(), &config("two")).unwrap();
    one.execute("CREATE TABLE t (id INT)").unwrap();
    two.execute("CREATE TABLE t (id TEXT)").unwrap();
    one.execute("INSERT INTO t VALUES (1)").unwrap();
    assert_eq!(ints(&mut two, "SELECT COUNT(*) FROM t"), vec![0]);

    let key = KeySpace::new("three").format_version();
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
