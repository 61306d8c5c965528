//! KvPrewrite.

use std::collections::HashMap;

use proto::kvrpcpb::Context;
use tracing::debug;

use crate::errors::{Error, Result, TxnError};
use crate::mvcc::Key;
use crate::storage::Storage;
use crate::txn::actions::{prewrite, Mutation, TxnProps};
use crate::txn::executor::Executor;

/// Locks every mutated key of transaction `start_ts` (the first phase of two-phase commit).
#[derive(Debug, Clone)]
pub struct Prewrite {
    /// Start ts of the transaction.
    pub start_ts: u64,
    /// Transaction-wide settings.
    pub props: TxnProps,
    /// The keys to lock; for a key listed twice, the last mutation wins.
    pub mutations: Vec<Mutation>,
}

/// Outcome of a prewrite that ran.
#[derive(Debug, Default)]
pub struct PrewriteResult {
    /// Per-key failures. Empty: every key is locked. Otherwise nothing was written: either every
    /// lock of another transaction that was met (the client resolves them all and retries), or
    /// the single other error that stopped the prewrite.
    pub errors: Vec<Error>,
}

/// Keeps the last mutation of each key, in order of first appearance.
fn last_mutation_per_key(mutations: Vec<Mutation>) -> Vec<Mutation> {
    let mut index: HashMap<Vec<u8>, usize> = HashMap::with_capacity(mutations.len());
    let mut out: Vec<Mutation> = Vec::with_capacity(mutations.len());
    for m in mutations {
        match index.get(&m.key) {
            Some(&i) => out[i] = m,
            None => {
                index.insert(m.key.clone(), out.len());
                out.push(m);
            }
        }
    }
    out
}

impl Prewrite {
    /// Prewrites all mutations or none.
    pub async fn execute<S: Storage>(
        self,
        exec: &Executor<'_, S>,
        ctx: &Context,
    ) -> Result<PrewriteResult> {
        let mutations = last_mutation_per_key(self.mutations);
        let keys = mutations.iter().map(|m| Key::from_raw(&m.key)).collect();
        let props = self.props;
        let start_ts = self.start_ts;
        let result = exec
            .write(ctx, start_ts, keys, move |reader, txn| {
                let mut errors = Vec::new();
                for m in &mutations {
                    match prewrite(txn, reader, &props, m) {
                        Ok(()) => {}
                        Err(e @ Error::Txn(TxnError::KeyIsLocked(_))) => errors.push(e),
                        Err(e @ Error::Txn(_)) => {
                            txn.clear();
                            return Ok(PrewriteResult { errors: vec![e] });
                        }
                        Err(e) => return Err(e),
                    }
                }
                if !errors.is_empty() {
                    txn.clear();
                }
                Ok(PrewriteResult { errors })
            })
            .await?;
        if !result.errors.is_empty() {
            debug!(region_id = ctx.region_id, start_ts, errors = result.errors.len(), first = %result.errors[0], "prewrite failed");
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::actions::{MutationOp, PessimisticAction};

    fn m(key: &[u8], op: MutationOp) -> Mutation {
        Mutation {
            op,
            key: key.to_vec(),
            value: vec![],
            pessimistic_action: PessimisticAction::Skip,
        }
    }

    #[test]
    fn duplicate_keys_keep_the_last_mutation() {
        let out = last_mutation_per_key(vec![
            m(b"a", MutationOp::Put),
            m(b"b", MutationOp::Put),
            m(b"a", MutationOp::Delete),
            m(b"a", MutationOp::Lock),
        ]);
        let got: Vec<_> = out.iter().map(|m| (m.key.clone(), m.op)).collect();
        assert_eq!(
            got,
            vec![
                (b"a".to_vec(), MutationOp::Lock),
                (b"b".to_vec(), MutationOp::Put)
            ]
        );
    }
}
