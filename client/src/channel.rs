//! gRPC channels to PD members and stores.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::config::Config;
use crate::errors::{Error, Result};

/// Largest response the client decodes. Raw scans of 10240 large values exceed tonic's 4 MiB
/// default; the stores cap a single write at 8 MiB, so this leaves room for batch reads.
pub(crate) const MAX_DECODING_MESSAGE_SIZE: usize = 64 << 20;

/// Turns `host:port` or `http://host:port` into a URL tonic accepts. PD reports member URLs with
/// a scheme; stores register bare addresses. TLS is not supported.
pub(crate) fn normalize_url(addr: &str) -> Result<String> {
    let addr = addr.trim().trim_end_matches('/');
    if addr.is_empty() {
        return Err(Error::InvalidAddress {
            addr: addr.to_owned(),
            reason: "empty address".into(),
        });
    }
    if addr.starts_with("https://") {
        return Err(Error::InvalidAddress {
            addr: addr.to_owned(),
            reason: "TLS is not supported".into(),
        });
    }
    if addr.starts_with("http://") {
        Ok(addr.to_owned())
    } else {
        Ok(format!("http://{addr}"))
    }
}

/// A channel that connects on first use and reconnects by itself after failures, so a dead peer
/// shows up as an UNAVAILABLE status on the call rather than here.
pub(crate) fn lazy_channel(url: &str, config: &Config) -> Result<Channel> {
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| Error::InvalidAddress {
        addr: url.to_owned(),
        reason: e.to_string(),
    })?;
    // No `Endpoint::timeout`: it would also cut the long-lived TSO stream. Unary calls get
    // their deadline per request instead.
    Ok(endpoint
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(3))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized() {
        assert_eq!(
            normalize_url("127.0.0.1:2379").unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(normalize_url("http://pd:2379/").unwrap(), "http://pd:2379");
        assert!(normalize_url("https://pd:2379").is_err());
        assert!(normalize_url("  ").is_err());
    }
}
