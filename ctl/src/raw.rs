//! `tinykv-ctl raw get|put|delete|scan`: the raw API through [`client::RawClient`].

use serde_json::json;

use crate::cli::{RawCommand, ScanArgs};
use crate::ctx::{key_range, Ctx};
use crate::errors::Result;
use crate::format::{Codec, Output};
use crate::kv::{pairs_output, value_output};

/// Runs one raw command.
pub async fn run(ctx: &Ctx, cmd: RawCommand) -> Result<Output> {
    let codec = ctx.codec;
    match cmd {
        RawCommand::Get { key, cf } => {
            let key = codec.parse("key", &key)?;
            let value = ctx.raw(cf.cf.name()).await?.get(key.clone()).await?;
            Ok(value_output(codec, &key, value.as_deref()))
        }
        RawCommand::Put { key, value, cf } => {
            let key = codec.parse("key", &key)?;
            let value = codec.parse("value", &value)?;
            ctx.raw(cf.cf.name()).await?.put(key.clone(), value).await?;
            Ok(written(codec, "put", &key, cf.cf.name()))
        }
        RawCommand::Delete { key, cf } => {
            let key = codec.parse("key", &key)?;
            ctx.raw(cf.cf.name()).await?.delete(key.clone()).await?;
            Ok(written(codec, "delete", &key, cf.cf.name()))
        }
        RawCommand::Scan { scan, cf } => {
            let ScanArgs {
                from,
                to,
                limit,
                reverse,
                keys_only,
            } = scan;
            let from = from.map(|k| codec.parse("from", &k)).transpose()?;
            let to = to.map(|k| codec.parse("to", &k)).transpose()?;
            let raw = ctx.raw(cf.cf.name()).await?;
            let range = key_range(from, to);
            let pairs = match (reverse, keys_only) {
                (false, true) => raw
                    .scan_keys(range, limit)
                    .await?
                    .into_iter()
                    .map(|k| client::KvPair::new(k, Vec::new()))
                    .collect(),
                (false, false) => raw.scan(range, limit).await?,
                (true, _) => raw.scan_reverse(range, limit).await?,
            };
            Ok(pairs_output(codec, &pairs, keys_only))
        }
    }
}

/// The acknowledgement of a write: `OK`.
fn written(codec: Codec, op: &str, key: &[u8], cf: &str) -> Output {
    Output::ok(
        "OK",
        json!({"op": op, "key": codec.json(key), "cf": cf, "ok": true}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_acknowledged() {
        let out = written(Codec::default(), "put", b"a", "default");
        assert_eq!(out.text, "OK");
        assert_eq!(
            out.json,
            json!({"op": "put", "key": "a", "cf": "default", "ok": true})
        );
    }
}
