//! The `tikv-client` wheel (PyPI 0.0.4, a PyO3 binding of client-rust `b12f95e`):
//! `txn_tikv_client.py` reads what our client committed, then commits, rolls back, conflicts,
//! inserts, reads a snapshot at an older timestamp, locks pessimistically and scans; the harness
//! reads the result back.

use super::{report_pairs, run_script, Phase};
use crate::cluster::CompatCluster;
use crate::errors::Result;
use crate::keys::{Namespace, KEYS_PER_SCENARIO};
use crate::scenarios::{our_txn_pairs, show, Pairs};

/// The script, in `python/`.
pub const SCRIPT: &str = "txn_tikv_client.py";

/// What the script leaves under its prefix: 20 keys committed as `c1-<i>`; key 2 won by the
/// first of two conflicting writers (`t1`); `inserted` by an insert; 10-19 rewritten as
/// `c2-<i>` and 9 deleted (the snapshot step); 4 rewritten and 5 deleted by the pessimistic
/// transaction. The rolled-back and refused transactions leave nothing.
pub fn expected(writes: &Namespace) -> Pairs {
    let mut pairs: Pairs = (0..KEYS_PER_SCENARIO)
        .map(|i| {
            let round = if i >= 10 { "c2" } else { "c1" };
            (writes.key(i), format!("{round}-{i:03}").into_bytes())
        })
        .collect();
    pairs.insert(writes.key(2), b"t1".to_vec());
    pairs.insert(writes.named("inserted"), b"insert".to_vec());
    pairs.remove(&writes.key(9));
    pairs.insert(writes.key(4), b"pessimistic".to_vec());
    pairs.remove(&writes.key(5));
    pairs
}

/// Commits `phase.seed` through our client, runs the script, and checks its report and our
/// read-back against [`expected`]; the seeds must be untouched.
pub async fn run(c: &CompatCluster, phase: &Phase) -> Result<()> {
    let seeds = phase.seeds();
    let mut txn = c.txn().begin_optimistic().await?;
    for (k, v) in &seeds {
        txn.put(k.clone(), v.clone()).await?;
    }
    txn.commit().await?;
    assert_eq!(
        show(&our_txn_pairs(c, &phase.seed).await?),
        show(&seeds),
        "seeds committed"
    );

    let report = run_script(c, SCRIPT, &phase.args()).await?;
    let want = expected(&phase.writes);
    assert_eq!(
        show(&report_pairs(SCRIPT, &report)?),
        show(&want),
        "what the tikv-client wheel reports it left"
    );
    assert_eq!(
        show(&our_txn_pairs(c, &phase.writes).await?),
        show(&want),
        "the wheel's commits read back through our client"
    );
    assert_eq!(
        show(&our_txn_pairs(c, &phase.seed).await?),
        show(&seeds),
        "the seeds, after the wheel read them"
    );
    Ok(())
}
