//! `tinykv-ctl` against a whole process cluster: 1 scheduler and 3 stores started by
//! `tinykv_playground::ProcessCluster`, as `make playground` runs them.
//!
//! Raw keys live under `raw/` and transactional keys under `txn/`, so the two APIs never
//! share a key range (TiKV API v1's rule, which the client documents).

use tinykv_playground::{ClusterConfig, ProcessCluster};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_txn_and_cluster_commands_on_a_process_cluster() {
    let dir = tempfile::tempdir().unwrap();
    // One replica per region: this test is about the command line, not replication (which
    // tests/tests/e2e.rs covers), and a single replica makes the cluster ready sooner.
    let config = ClusterConfig {
        data_dir: dir.path().join("cluster"),
        binaries: Some(binaries().clone()),
        max_replicas: Some(1),
        ..ClusterConfig::new_test_config()
    };
    let cluster = ProcessCluster::start(config).await.expect("cluster starts");
    let pd = cluster.pd_endpoint();
    // Each call is a separate process; the blocking waits are fine on a worker thread.
    let run = |args: &[&str]| ctl(&[&["--pd", pd.as_str()], args].concat());

    // The README's quick start.
    let put = run(&["raw", "put", "raw/a", "1"]);
    assert_code(&put, 0);
    assert_eq!(stdout(&put).trim(), "OK");
    let get = run(&["raw", "get", "raw/a"]);
    assert_code(&get, 0);
    assert_eq!(stdout(&get), "1\n");

    let missing = run(&["raw", "get", "raw/nope"]);
    assert_code(&missing, 3);
    assert!(stdout(&missing).is_empty());
    assert!(
        stderr(&missing).contains("raw/nope not found"),
        "{}",
        stderr(&missing)
    );
    let missing = run(&["--json", "raw", "get", "raw/nope"]);
    assert_code(&missing, 3);
    assert_eq!(json(&missing)["found"], Json::Bool(false));

    // Column families are separate key spaces.
    assert_code(&run(&["raw", "put", "raw/cf", "w", "--cf", "write"]), 0);
    assert_code(&run(&["raw", "get", "raw/cf"]), 3);
    assert_eq!(
        stdout(&run(&["raw", "get", "raw/cf", "--cf", "write"])),
        "w\n"
    );

    for (k, v) in [("raw/b", "2"), ("raw/c", "3")] {
        assert_code(&run(&["raw", "put", k, v]), 0);
    }
    let scan = run(&["--json", "raw", "scan", "raw/", "raw0", "--limit", "2"]);
    assert_code(&scan, 0);
    let s = json(&scan);
    assert_eq!(s["count"], 2);
    assert_eq!(s["pairs"][0]["key"], "raw/a");
    assert_eq!(s["pairs"][1]["value"], "2");
    let rev = json(&run(&[
        "--json",
        "raw",
        "scan",
        "raw/",
        "raw0",
        "--reverse",
    ]));
    let keys: Vec<&str> = rev["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["raw/c", "raw/b", "raw/a"]);
    let table = run(&["raw", "scan", "raw/", "raw0", "--keys-only"]);
    assert!(
        stdout(&table).contains("| raw/b |") && stdout(&table).contains("(3 pairs)"),
        "{}",
        stdout(&table)
    );

    assert_code(&run(&["raw", "delete", "raw/a"]), 0);
    assert_code(&run(&["raw", "get", "raw/a"]), 3);

    // Binary keys and values with --hex.
    assert_code(&run(&["--hex", "raw", "put", "7261772f00ff", "6869"]), 0);
    assert_eq!(
        stdout(&run(&["--hex", "raw", "get", "7261772f00ff"])),
        "6869\n"
    );

    // Transactions: single writes, snapshot reads, a script.
    let put = run(&["txn", "put", "txn/k", "v"]);
    assert_code(&put, 0);
    assert!(
        stdout(&put).starts_with("OK (committed at "),
        "{}",
        stdout(&put)
    );
    assert_eq!(stdout(&run(&["txn", "get", "txn/k"])), "v\n");

    let dir_path = dir.path().to_path_buf();
    let script = script_file(
        &dir_path,
        "# two keys in one transaction\nput txn/x 1\nput \"txn/y\" \"two words\"\ncommit\nget txn/y\n",
    );
    let out = run(&["--json", "txn", "exec", script.to_str().unwrap()]);
    assert_code(&out, 0);
    let lines: Vec<Json> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{}", stdout(&out));
    assert_eq!(lines[2]["op"], "commit");
    assert!(lines[2]["commit_ts"].as_u64().unwrap() > 0);
    assert_eq!(lines[3]["value"], "two words");
    assert_eq!(lines[3]["line"], 5);

    let scan = json(&run(&["--json", "txn", "scan", "txn/x", "txn/z"]));
    assert_eq!(scan["count"], 2);

    // A statement that fails at run time stops the script and rolls back: `insert` of an
    // existing key fails at commit, and nothing of that transaction is written.
    let out = ctl_with_stdin(
        &["--pd", &pd, "txn", "exec"],
        "put txn/z 9\ninsert txn/x again\ncommit\n",
    );
    assert_code(&out, 1);
    assert!(stderr(&out).contains("line 3: "), "{}", stderr(&out));
    assert_code(&run(&["txn", "get", "txn/z"]), 3);

    assert_code(&run(&["txn", "delete", "txn/k"]), 0);
    assert_code(&run(&["txn", "get", "txn/k"]), 3);

    // What the scheduler knows.
    let stores = json(&run(&["--json", "cluster", "stores"]));
    let stores = stores["stores"].as_array().unwrap();
    assert_eq!(stores.len(), 3);
    for i in 0..3 {
        let addr = cluster.store_addr(i).unwrap();
        let s = stores
            .iter()
            .find(|s| s["address"] == addr.as_str())
            .unwrap_or_else(|| panic!("store {addr} missing: {stores:?}"));
        assert_eq!(s["state"], "Up");
        assert_eq!(s["id"].as_u64(), cluster.store_id(i).unwrap());
        assert!(s["start_time"].is_string(), "{s}");
    }
    let regions = json(&run(&["--json", "cluster", "regions"]));
    let regions = regions["regions"].as_array().unwrap();
    assert!(!regions.is_empty());
    assert!(
        regions.iter().all(|r| r["leader"].is_object()),
        "{regions:?}"
    );
    let region = json(&run(&["--json", "cluster", "region", "raw/b"]));
    assert!(region["id"].as_u64().is_some(), "{region}");
    assert_code(&run(&["cluster", "members"]), 0);

    cluster.stop().await.expect("clean stop");
}
