//! Where each scenario's keys live, and where the key space is split.
//!
//! One cluster serves both APIs, as in TiKV API v1 they must never share keys *or region
//! boundaries*: TiKV's transactional clients memcomparable-decode every region boundary PD
//! returns, so a raw split key (arbitrary bytes) in the transactional part of the key space would
//! break them. The layout keeps the two apart:
//!
//! ```text
//!   "r/<scenario>/<nnn>"   raw keys          split at raw keys ("r/<scenario>/<mid>")
//!   enc("s")               one boundary between the parts (a valid encoding, sorts after "r/…")
//!   enc("t/<scenario>/<nnn>") transactional keys, split at encoded keys (SplitRegion encodes)
//! ```
//!
//! A transactional client only ever looks up keys after `enc("s")`, so every boundary it sees is
//! an encoded one (or empty); raw clients do not decode boundaries at all.

use std::ops::Range;

/// Prefix of every raw key.
pub const RAW_PREFIX: &str = "r/";
/// Prefix of every transactional (user) key.
pub const TXN_PREFIX: &str = "t/";
/// The transactional user key whose encoding separates the raw and transactional parts.
pub const SEPARATOR: &str = "s";
/// Keys a scenario uses by default; [`Namespace::mid`] splits them in two halves.
pub const KEYS_PER_SCENARIO: usize = 20;

/// Which API a namespace's keys belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// TiKV's raw API (`Raw*` RPCs): keys and boundaries are raw bytes.
    Raw,
    /// The transactional API (`Kv*` RPCs): boundaries are memcomparable-encoded user keys.
    Txn,
}

/// The keys of one scenario: `<api prefix><name>/<nnn>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    api: Api,
    prefix: String,
}

impl Namespace {
    /// Raw keys of scenario `name` (no `/` in it: it would nest namespaces).
    pub fn raw(name: &str) -> Namespace {
        Namespace::new(Api::Raw, name)
    }

    /// Transactional keys of scenario `name`.
    pub fn txn(name: &str) -> Namespace {
        Namespace::new(Api::Txn, name)
    }

    fn new(api: Api, name: &str) -> Namespace {
        assert!(
            !name.is_empty() && !name.contains('/'),
            "scenario names are single path segments: {name:?}"
        );
        let root = match api {
            Api::Raw => RAW_PREFIX,
            Api::Txn => TXN_PREFIX,
        };
        Namespace {
            api,
            prefix: format!("{root}{name}/"),
        }
    }

    /// The API.
    pub fn api(&self) -> Api {
        self.api
    }

    /// `<prefix><i:03>`, e.g. `r/batch/007`.
    pub fn key(&self, i: usize) -> Vec<u8> {
        format!("{}{i:03}", self.prefix).into_bytes()
    }

    /// A key named by a word instead of a number, e.g. `t/lock/primary`.
    pub fn named(&self, word: &str) -> Vec<u8> {
        format!("{}{word}", self.prefix).into_bytes()
    }

    /// The conventional value of key `i` in this namespace, tagged with `tag` so a stale value
    /// is told apart from a fresh one.
    pub fn value(&self, i: usize, tag: &str) -> Vec<u8> {
        format!("{}{i:03}={tag}", self.prefix).into_bytes()
    }

    /// Every key of the namespace: `[<prefix>, <prefix with '/' bumped to '0'>)`.
    pub fn range(&self) -> Range<Vec<u8>> {
        let start = self.prefix.clone().into_bytes();
        let mut end = start.clone();
        *end.last_mut().expect("prefix ends with '/'") += 1;
        start..end
    }

    /// The prefix, e.g. `r/batch/`.
    pub fn prefix(&self) -> &[u8] {
        self.prefix.as_bytes()
    }

    /// The key splitting the default keys in two halves: `key(KEYS_PER_SCENARIO / 2)`. A user
    /// key: for a transactional namespace, `SplitRegion` (without `is_raw_kv`) encodes it.
    pub fn mid(&self) -> Vec<u8> {
        self.key(KEYS_PER_SCENARIO / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_nest_nothing_and_sort_apart() {
        let raw = Namespace::raw("batch");
        let txn = Namespace::txn("batch");
        assert_eq!(raw.key(7), b"r/batch/007".to_vec());
        assert_eq!(txn.named("primary"), b"t/batch/primary".to_vec());
        assert_eq!(raw.range(), b"r/batch/".to_vec()..b"r/batch0".to_vec());
        assert!(raw.range().contains(&raw.key(999)));
        assert!(!raw.range().contains(&Namespace::raw("batchx").key(0)));
        assert_eq!(raw.mid(), raw.key(10));
        // Raw keys sort below the separator's encoding, transactional keys' encodings above.
        let sep = client::codec::encode_bytes(SEPARATOR.as_bytes());
        assert!(raw.range().end < sep);
        assert!(client::codec::encode_bytes(&txn.key(0)) > sep);
    }

    #[test]
    #[should_panic(expected = "single path segments")]
    fn a_slash_in_a_name_is_refused() {
        Namespace::raw("a/b");
    }
}
