//! Store connections: one gRPC channel per store address, reused by every request, and (with
//! `batch-commands`) one `BatchCommands` stream over it that the requests share
//! ([`crate::batch`]).
//!
//! Channels connect lazily and reconnect by themselves, so an entry stays valid across store
//! restarts. When a store moves to a new address PD reports the new one (the store cache is
//! invalidated on transport failures) and a new entry is made; the old one is dropped on the
//! next failure through it.

use std::collections::HashMap;

use parking_lot::Mutex;
use proto::tikvpb::tikv_client::TikvClient;
use tonic::transport::Channel;

use crate::batch::{BatchLimits, BatchSender};
use crate::channel::{lazy_channel, normalize_url, MAX_DECODING_MESSAGE_SIZE};
use crate::config::Config;
use crate::errors::Result;

/// The generated store stub over a tonic channel.
pub(crate) type TikvGrpc = TikvClient<Channel>;

/// How requests reach one store.
#[derive(Clone)]
pub(crate) struct StoreConn {
    /// Unary calls.
    pub grpc: TikvGrpc,
    /// The shared `BatchCommands` stream (`None` when batching is off).
    pub batch: Option<BatchSender>,
}

/// Channels by store address.
pub(crate) struct StorePool {
    config: Config,
    clients: Mutex<HashMap<String, StoreConn>>,
}

impl StorePool {
    pub fn new(config: &Config) -> StorePool {
        StorePool {
            config: config.clone(),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The connection to `addr`, creating its channel (and batch stream driver) on first use.
    pub fn client(&self, addr: &str) -> Result<StoreConn> {
        let mut clients = self.clients.lock();
        if let Some(c) = clients.get(addr) {
            return Ok(c.clone());
        }
        let channel = lazy_channel(&normalize_url(addr)?, &self.config)?;
        let grpc = TikvClient::new(channel).max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE);
        let batch = self.config.batch_commands.then(|| {
            BatchSender::spawn(
                grpc.clone(),
                BatchLimits {
                    max_requests: self.config.batch_max_requests,
                    max_bytes: self.config.batch_max_bytes,
                },
            )
        });
        let conn = StoreConn { grpc, batch };
        clients.insert(addr.to_owned(), conn.clone());
        Ok(conn)
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
