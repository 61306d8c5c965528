//! `tinykv-ctl txn get|put|delete|scan|exec`: the transactional API through
//! [`client::TransactionClient`]. Reads run on a snapshot at a fresh timestamp; each write is
//! its own transaction; `exec` runs a script (see [`crate::session`]).

use client::{Snapshot, TransactionClient};
use serde_json::json;

use crate::cli::{ScanArgs, TxnCommand};
use crate::ctx::{key_range, Ctx};
use crate::errors::Result;
use crate::format::{Codec, Output};
use crate::kv::{pairs_output, value_output};
use crate::session;

/// Runs one transactional command. `exec` prints as it goes and returns an empty output.
pub async fn run(ctx: &Ctx, cmd: TxnCommand) -> Result<Output> {
    let codec = ctx.codec;
    match cmd {
        TxnCommand::Get { key } => {
            let key = codec.parse("key", &key)?;
            let value = snapshot(&ctx.txn().await?).await?.get(key.clone()).await?;
            Ok(value_output(codec, &key, value.as_deref()))
        }
        TxnCommand::Put { key, value } => {
            let key = codec.parse("key", &key)?;
            let value = codec.parse("value", &value)?;
            let client = ctx.txn().await?;
            let mut txn = client.begin_optimistic().await?;
            txn.put(key.clone(), value).await?;
            let commit_ts = txn.commit().await?;
            Ok(committed(
                codec,
                "put",
                &key,
                commit_ts.map(|t| t.version()),
            ))
        }
        TxnCommand::Delete { key } => {
            let key = codec.parse("key", &key)?;
            let client = ctx.txn().await?;
            let mut txn = client.begin_optimistic().await?;
            txn.delete(key.clone()).await?;
            let commit_ts = txn.commit().await?;
            Ok(committed(
                codec,
                "delete",
                &key,
                commit_ts.map(|t| t.version()),
            ))
        }
        TxnCommand::Scan { scan } => {
            let ScanArgs {
                from,
                to,
                limit,
                reverse,
                keys_only,
            } = scan;
            let from = from.map(|k| codec.parse("from", &k)).transpose()?;
            let to = to.map(|k| codec.parse("to", &k)).transpose()?;
            let snap = snapshot(&ctx.txn().await?).await?;
            let range = key_range(from, to);
            let pairs = match (reverse, keys_only) {
                (false, true) => snap
                    .scan_keys(range, limit)
                    .await?
                    .into_iter()
                    .map(|k| client::KvPair::new(k, Vec::new()))
                    .collect(),
                (false, false) => snap.scan(range, limit).await?,
                (true, _) => snap.scan_reverse(range, limit).await?,
            };
            Ok(pairs_output(codec, &pairs, keys_only))
        }
        TxnCommand::Exec { file, pessimistic } => {
            session::exec(ctx, file.as_deref(), pessimistic).await?;
            Ok(Output::ok(String::new(), serde_json::Value::Null))
        }
    }
}

/// A read-only view at a timestamp taken now.
async fn snapshot(client: &TransactionClient) -> Result<Snapshot> {
    let ts = client.current_timestamp().await?;
    Ok(client.snapshot(ts))
}

/// The acknowledgement of a single-write transaction.
fn committed(codec: Codec, op: &str, key: &[u8], commit_ts: Option<u64>) -> Output {
    let text = match commit_ts {
        Some(ts) => format!("OK (committed at {ts})"),
        None => "OK".to_string(),
    };
    Output::ok(
        text,
        json!({"op": op, "key": codec.json(key), "commit_ts": commit_ts}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_report_their_timestamp() {
        let out = committed(Codec::default(), "put", b"k", Some(42));
        assert_eq!(out.text, "OK (committed at 42)");
        assert_eq!(out.json, json!({"op": "put", "key": "k", "commit_ts": 42}));
    }
}
