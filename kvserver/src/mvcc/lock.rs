//! The `lock` CF record: one per locked key, at key `enc(user_key)`.
//!
//! ```text
//! lock  = type:u8  start_ts:u64  ttl:u64  for_update_ts:u64  min_commit_ts:u64  txn_size:u64
//!         primary_len:u32  primary  field*                     (integers big-endian)
//! type  = 'P' Put | 'D' Delete | 'L' Lock | 'S' Pessimistic
//! field = 'v' len:u32 short_value       value of a Put no longer than SHORT_VALUE_MAX_LEN
//! ```
//!
//! Optional fields are tagged so the format can grow; an unknown tag is a decode error rather
//! than silently ignored data.

use proto::kvrpcpb::{LockInfo, Op};

use super::codec::{put_len_prefixed, RecordReader};
use crate::errors::Result;

/// Values up to this many bytes are stored inline in the lock (then in the write record) instead
/// of in the `default` CF, saving a read per get for small values.
pub const SHORT_VALUE_MAX_LEN: usize = 255;

const TAG_SHORT_VALUE: u8 = b'v';

/// Whether `value` is stored inline.
pub fn is_short_value(value: &[u8]) -> bool {
    value.len() <= SHORT_VALUE_MAX_LEN
}

/// What a lock will commit as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockType {
    /// Writes a value.
    Put,
    /// Deletes the key.
    Delete,
    /// Only locks the key (read-for-update in an optimistic txn); commits as a `Lock` record.
    Lock,
    /// A pessimistic lock taken before prewrite; carries no value yet.
    Pessimistic,
}

impl LockType {
    fn to_byte(self) -> u8 {
        match self {
            LockType::Put => b'P',
            LockType::Delete => b'D',
            LockType::Lock => b'L',
            LockType::Pessimistic => b'S',
        }
    }

    fn from_byte(b: u8) -> Option<LockType> {
        Some(match b {
            b'P' => LockType::Put,
            b'D' => LockType::Delete,
            b'L' => LockType::Lock,
            b'S' => LockType::Pessimistic,
            _ => return None,
        })
    }

    /// The `kvrpcpb.Op` clients see in `LockInfo.lock_type`.
    pub fn to_op(self) -> Op {
        match self {
            LockType::Put => Op::Put,
            LockType::Delete => Op::Del,
            LockType::Lock => Op::Lock,
            LockType::Pessimistic => Op::PessimisticLock,
        }
    }
}

/// A Percolator lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// Kind of lock.
    pub lock_type: LockType,
    /// Raw primary key of the transaction.
    pub primary: Vec<u8>,
    /// Start ts of the transaction.
    pub ts: u64,
    /// Milliseconds after the physical part of `ts` until the lock may be rolled back by others.
    pub ttl: u64,
    /// The value of a `Put` if short (see [`SHORT_VALUE_MAX_LEN`]); long values live in `default`.
    pub short_value: Option<Vec<u8>>,
    /// `for_update_ts` of a pessimistic transaction; 0 for optimistic ones.
    pub for_update_ts: u64,
    /// Number of keys the transaction writes (a hint from the client).
    pub txn_size: u64,
    /// The transaction may not commit below this ts (0: no bound).
    pub min_commit_ts: u64,
}

impl Lock {
    /// A lock with no short value, no `for_update_ts`, `txn_size` or `min_commit_ts`.
    pub fn new(lock_type: LockType, primary: Vec<u8>, ts: u64, ttl: u64) -> Lock {
        Lock {
            lock_type,
            primary,
            ts,
            ttl,
            short_value: None,
            for_update_ts: 0,
            txn_size: 0,
            min_commit_ts: 0,
        }
    }

    /// Whether this lock belongs to a pessimistic transaction.
    pub fn is_pessimistic_txn(&self) -> bool {
        self.for_update_ts != 0
    }

    /// Whether this is a pessimistic lock (not yet prewritten).
    pub fn is_pessimistic_lock(&self) -> bool {
        self.lock_type == LockType::Pessimistic
    }

    /// Serializes the lock.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            1 + 5 * 8
                + 4
                + self.primary.len()
                + self.short_value.as_ref().map_or(0, |v| 5 + v.len()),
        );
        out.push(self.lock_type.to_byte());
        for n in [
            self.ts,
            self.ttl,
            self.for_update_ts,
            self.min_commit_ts,
            self.txn_size,
        ] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        put_len_prefixed(&mut out, &self.primary);
        if let Some(v) = &self.short_value {
            out.push(TAG_SHORT_VALUE);
            put_len_prefixed(&mut out, v);
        }
        out
    }

    /// Parses a stored lock.
    pub fn parse(data: &[u8]) -> Result<Lock> {
        let mut r = RecordReader::new(data, "lock");
        let lock_type = LockType::from_byte(r.u8()?).ok_or_else(|| r.error("unknown lock type"))?;
        let ts = r.u64()?;
        let ttl = r.u64()?;
        let for_update_ts = r.u64()?;
        let min_commit_ts = r.u64()?;
        let txn_size = r.u64()?;
        let primary = r.len_prefixed()?.to_vec();
        let mut short_value = None;
        while !r.is_empty() {
            match r.u8()? {
                TAG_SHORT_VALUE => short_value = Some(r.len_prefixed()?.to_vec()),
                _ => return Err(r.error("unknown field tag")),
            }
        }
        Ok(Lock {
            lock_type,
            primary,
            ts,
            ttl,
            short_value,
            for_update_ts,
            txn_size,
            min_commit_ts,
        })
    }

    /// What a client learns about this lock on raw key `key` (in `KeyError.locked`, check-txn-
    /// status, scan-lock).
    pub fn into_lock_info(self, key: Vec<u8>) -> LockInfo {
        LockInfo {
            primary_lock: self.primary,
            lock_version: self.ts,
            key,
            lock_ttl: self.ttl,
            txn_size: self.txn_size,
            lock_type: self.lock_type.to_op() as i32,
            lock_for_update_ts: self.for_update_ts,
            min_commit_ts: self.min_commit_ts,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lock_type() -> impl Strategy<Value = LockType> {
        prop_oneof![
            Just(LockType::Put),
            Just(LockType::Delete),
            Just(LockType::Lock),
            Just(LockType::Pessimistic),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(
            lock_type in lock_type(),
            primary in proptest::collection::vec(any::<u8>(), 0..32),
            nums in any::<[u64; 5]>(),
            short_value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=SHORT_VALUE_MAX_LEN)),
        ) {
            let lock = Lock {
                lock_type,
                primary,
                ts: nums[0],
                ttl: nums[1],
                short_value,
                for_update_ts: nums[2],
                txn_size: nums[3],
                min_commit_ts: nums[4],
            };
            prop_assert_eq!(Lock::parse(&lock.to_bytes()).unwrap(), lock);
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = Lock::parse(&data);
        }
    }

    #[test]
    fn truncated_and_unknown_fields_are_errors() {
        let mut lock = Lock::new(LockType::Put, b"pk".to_vec(), 10, 3000);
        lock.short_value = Some(b"v".to_vec());
        let bytes = lock.to_bytes();
        for cut in 0..bytes.len() {
            // Every strict prefix is malformed except the one that ends right before the
            // optional short-value field, which is a valid lock without a value.
            let parsed = Lock::parse(&bytes[..cut]);
            if cut == bytes.len() - 6 {
                assert_eq!(parsed.unwrap().short_value, None);
            } else {
                assert!(parsed.is_err(), "prefix of {cut} bytes parsed");
            }
        }
        let mut unknown = bytes.clone();
        unknown.push(b'?');
        assert!(Lock::parse(&unknown).is_err());
    }

    #[test]
    fn lock_info_carries_what_clients_read() {
        let mut lock = Lock::new(LockType::Pessimistic, b"pk".to_vec(), 7, 20000);
        lock.for_update_ts = 9;
        let info = lock.into_lock_info(b"k".to_vec());
        assert_eq!(info.key, b"k");
        assert_eq!(info.primary_lock, b"pk");
        assert_eq!(
            (info.lock_version, info.lock_ttl, info.lock_for_update_ts),
            (7, 20000, 9)
        );
        assert_eq!(info.lock_type, Op::PessimisticLock as i32);
    }
}
