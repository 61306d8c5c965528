//! `tikv-python` (PyPI 0.1.1, an independent pure-Python raw client): `raw_tikv_python.py`
//! reads what our client seeded, writes, scans (prefix, bounded, open-ended, limited, reverse),
//! deletes, compare-and-swaps and is refused a TTL; the harness reads the result back.
//!
//! This client is the oracle for raw scans: TiKV's Rust client 0.4 gets multi-region raw scans
//! wrong in API v1 (reference notes §5.1).

use super::{report_pairs, run_script, Phase};
use crate::cluster::CompatCluster;
use crate::errors::Result;
use crate::keys::Namespace;
use crate::scenarios::{our_raw_pairs, show, Pairs};

/// The script, in `python/`.
pub const SCRIPT: &str = "raw_tikv_python.py";

/// What the script leaves under its prefix: of the 20 keys `py-<i>` it writes, 0-2 are deleted
/// one by one, 8-11 by a range, 12-19 by a prefix range, 4 is overwritten; the atomic client's
/// `cas/x` ends at `3`; the refused TTL write leaves nothing.
pub fn expected(writes: &Namespace) -> Pairs {
    let mut pairs: Pairs = (3..8)
        .map(|i| (writes.key(i), format!("py-{i:03}").into_bytes()))
        .collect();
    pairs.insert(writes.key(4), b"overwritten".to_vec());
    pairs.insert(writes.named("cas/x"), b"3".to_vec());
    pairs
}

/// Seeds `phase.seed` through our client, runs the script, and checks its report and our
/// read-back against [`expected`]; the seeds must be untouched.
pub async fn run(c: &CompatCluster, phase: &Phase) -> Result<()> {
    let seeds = phase.seeds();
    c.raw().batch_put(seeds.clone()).await?;
    assert_eq!(
        show(&our_raw_pairs(c, &phase.seed).await?),
        show(&seeds),
        "seeds written"
    );

    let report = run_script(c, SCRIPT, &phase.args()).await?;
    let want = expected(&phase.writes);
    assert_eq!(
        show(&report_pairs(SCRIPT, &report)?),
        show(&want),
        "what tikv-python reports it left"
    );
    assert_eq!(
        show(&our_raw_pairs(c, &phase.writes).await?),
        show(&want),
        "tikv-python's writes read back through our client"
    );
    assert_eq!(
        show(&our_raw_pairs(c, &phase.seed).await?),
        show(&seeds),
        "the seeds, after tikv-python read them"
    );
    Ok(())
}
