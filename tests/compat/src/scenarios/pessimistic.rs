//! Pessimistic transactions with TiKV's Rust client: `get_for_update` and
//! `batch_get_for_update` (`KvPessimisticLock` returning values), pessimistic puts, a second
//! locker refused while the lock lives, and `KVPessimisticRollback` releasing locks.

use tikv_client::{CheckLevel, TransactionOptions};

use super::{our_txn_pairs, show, tikv_pairs, Clients, Ctx, Pairs};
use crate::cluster::CompatCluster;
use crate::errors::Result;
use crate::keys::{Namespace, KEYS_PER_SCENARIO};

const PESSIMISTIC: &str = "pessimistic";

/// The namespaces of the pessimistic scenarios.
pub fn namespaces() -> Vec<Namespace> {
    vec![Namespace::txn(PESSIMISTIC)]
}

/// Every pessimistic scenario.
pub async fn run(c: &CompatCluster, t: &Clients) -> Result<()> {
    lock_write_commit(c, t).await
}

fn may_fail() -> TransactionOptions {
    TransactionOptions::new_pessimistic().drop_check(CheckLevel::Warn)
}

/// One pessimistic transaction locks and reads keys in both halves of the namespace, writes
/// them and commits; meanwhile a second one cannot lock the same key. A third locks a key and
/// rolls back, after which the key is free at once.
pub async fn lock_write_commit(c: &CompatCluster, t: &Clients) -> Result<()> {
    let ns = Namespace::txn(PESSIMISTIC);
    let (a, b, absent, d) = (
        ns.key(0),
        ns.key(KEYS_PER_SCENARIO - 1),
        ns.key(5),
        ns.key(KEYS_PER_SCENARIO - 2),
    );
    let mut model: Pairs = [
        (a.clone(), b"a0".to_vec()),
        (b.clone(), b"b0".to_vec()),
        (d.clone(), b"d0".to_vec()),
    ]
    .into();
    super::txn::commit_pairs(t, &model).await?;

    let mut t1 = t.txn.begin_pessimistic().await.ctx("begin t1")?;
    assert_eq!(
        t1.get_for_update(a.clone()).await.ctx("get_for_update")?,
        Some(b"a0".to_vec())
    );
    let got = tikv_pairs(
        t1.batch_get_for_update(vec![b.clone(), absent.clone()])
            .await
            .ctx("batch_get_for_update")?,
    );
    let want: Pairs = [(b.clone(), b"b0".to_vec())].into();
    assert_eq!(show(&got), show(&want), "batch_get_for_update");

    // The key is locked: another pessimistic transaction cannot lock it (the client sends
    // wait_timeout 0 and its lock backoff ends long before the 20 s lock TTL).
    let mut t2 = t.txn.begin_with_options(may_fail()).await.ctx("begin t2")?;
    let err = t2
        .get_for_update(a.clone())
        .await
        .expect_err("a key locked by t1 cannot be locked by t2");
    assert!(
        format!("{err:?}").to_lowercase().contains("lock"),
        "{err:?}"
    );
    t2.rollback().await.ctx("rollback t2")?;

    t1.put(a.clone(), b"a1".to_vec()).await.ctx("put")?;
    t1.put(absent.clone(), b"new".to_vec()).await.ctx("put")?;
    t1.delete(b.clone()).await.ctx("delete")?;
    t1.commit().await.ctx("commit t1")?;
    model.insert(a, b"a1".to_vec());
    model.insert(absent, b"new".to_vec());
    model.remove(&b);
    assert_eq!(
        show(&our_txn_pairs(c, &ns).await?),
        show(&model),
        "read back t1"
    );

    // A pessimistic put locks at once; rollback releases it for the next transaction.
    let mut t3 = t.txn.begin_pessimistic().await.ctx("begin t3")?;
    t3.put(d.clone(), b"never".to_vec())
        .await
        .ctx("pessimistic put")?;
    t3.rollback().await.ctx("rollback t3")?;
    let mut t4 = t.txn.begin_pessimistic().await.ctx("begin t4")?;
    assert_eq!(
        t4.get_for_update(d.clone())
            .await
            .ctx("get_for_update after rollback")?,
        Some(b"d0".to_vec())
    );
    t4.put(d.clone(), b"d1".to_vec()).await.ctx("put")?;
    t4.commit().await.ctx("commit t4")?;
    model.insert(d, b"d1".to_vec());
    assert_eq!(
        show(&our_txn_pairs(c, &ns).await?),
        show(&model),
        "read back t4"
    );
    Ok(())
}
