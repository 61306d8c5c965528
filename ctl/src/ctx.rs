//! What every command runs with: the endpoints, the output settings and the client tuning.

use std::ops::Bound;
use std::time::Duration;

use client::{BackoffConfig, BoundRange, Config, PdClient, RawClient, TransactionClient};

use crate::cli::Cli;
use crate::errors::Result;
use crate::format::Codec;

/// Endpoints, output settings and client configuration of one invocation.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Scheduler endpoints.
    pub pd: Vec<String>,
    /// How keys and values are read and shown.
    pub codec: Codec,
    /// JSON output.
    pub json: bool,
    /// Client tuning.
    pub config: Config,
}

impl Ctx {
    /// Settings from the global flags. A command-line tool should fail fast when the scheduler
    /// is down, so PD retries are few (about 2 s in all) instead of a library's patient default.
    pub fn from_cli(cli: &Cli) -> Ctx {
        let mut config = Config {
            pd_backoff: BackoffConfig::new(
                Duration::from_millis(100),
                Duration::from_millis(800),
                4,
            ),
            ..Config::default()
        };
        if let Some(t) = cli.timeout {
            config.timeout = t;
        }
        Ctx {
            pd: cli.pd.clone(),
            codec: Codec { hex: cli.hex },
            json: cli.json,
            config,
        }
    }

    /// A raw client on column family `cf`.
    pub async fn raw(&self, cf: &str) -> Result<RawClient> {
        let raw = RawClient::new_with_config(self.pd.clone(), self.config.clone()).await?;
        Ok(raw.with_cf(cf))
    }

    /// A transactional client.
    pub async fn txn(&self) -> Result<TransactionClient> {
        Ok(TransactionClient::new_with_config(self.pd.clone(), self.config.clone()).await?)
    }

    /// A PD client.
    pub async fn pd(&self) -> Result<PdClient> {
        Ok(PdClient::connect(&self.pd, self.config.clone()).await?)
    }
}

/// `[from, to)` where an absent or empty bound is open.
pub fn key_range(from: Option<Vec<u8>>, to: Option<Vec<u8>>) -> BoundRange {
    let start = match from {
        Some(k) if !k.is_empty() => Bound::Included(k.into()),
        _ => Bound::Unbounded,
    };
    let end = match to {
        Some(k) if !k.is_empty() => Bound::Excluded(k.into()),
        _ => Bound::Unbounded,
    };
    BoundRange::new(start, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn flags_shape_the_client() {
        let cli =
            Cli::try_parse_from(["tinykv-ctl", "--timeout", "750ms", "--hex", "tso"]).unwrap();
        let ctx = Ctx::from_cli(&cli);
        assert!(ctx.codec.hex && !ctx.json);
        assert_eq!(ctx.config.timeout, Duration::from_millis(750));
        ctx.config.validate().unwrap();
    }

    #[test]
    fn empty_bounds_are_open() {
        assert_eq!(key_range(None, Some(vec![])), BoundRange::all());
        assert_eq!(
            key_range(Some(b"a".to_vec()), Some(b"c".to_vec())),
            BoundRange::from(b"a".to_vec()..b"c".to_vec())
        );
    }
}
