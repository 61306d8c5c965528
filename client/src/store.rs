//! Store connections: one gRPC channel per store address, reused by every request.
//!
//! Channels connect lazily and reconnect by themselves, so an entry stays valid across store
//! restarts. When a store moves to a new address PD reports the new one (the store cache is
//! invalidated on transport failures) and a new entry is made; the old one is dropped on the
//! next failure through it.

use std::collections::HashMap;

use parking_lot::Mutex;
use proto::tikvpb::tikv_client::TikvClient;
use tonic::transport::Channel;

use crate::channel::{lazy_channel, normalize_url, MAX_DECODING_MESSAGE_SIZE};
use crate::config::Config;
use crate::errors::Result;

/// The generated store stub over a tonic channel.
pub(crate) type TikvGrpc = TikvClient<Channel>;

/// Channels by store address.
pub(crate) struct StorePool {
    config: Config,
    clients: Mutex<HashMap<String, TikvGrpc>>,
}

impl StorePool {
    pub fn new(config: &Config) -> StorePool {
        StorePool {
            config: config.clone(),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The stub for `addr`, creating its channel on first use.
    pub fn client(&self, addr: &str) -> Result<TikvGrpc> {
        let mut clients = self.clients.lock();
        if let Some(c) = clients.get(addr) {
            return Ok(c.clone());
        }
        let channel = lazy_channel(&normalize_url(addr)?, &self.config)?;
        let client = TikvClient::new(channel).max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE);
        clients.insert(addr.to_owned(), client.clone());
        Ok(client)
    }

    /// Forgets the channel to `addr` (after a transport failure), so a store that came back
    /// elsewhere or a wedged connection is not reused.
    pub fn remove(&self, addr: &str) {
        self.clients.lock().remove(addr);
    }

    /// Channels currently open (for tests and diagnostics).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn channels_are_reused_per_address() {
        let pool = StorePool::new(&Config::new_test_config());
        pool.client("127.0.0.1:1").unwrap();
        pool.client("127.0.0.1:1").unwrap();
        pool.client("127.0.0.1:2").unwrap();
        assert_eq!(pool.len(), 2);
        pool.remove("127.0.0.1:1");
        assert_eq!(pool.len(), 1);
        assert!(pool.client("https://secure:1").is_err());
    }
}
