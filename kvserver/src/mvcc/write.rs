//! The `write` CF record: one per commit or rollback, at key `enc(user_key) ++ ts`.
//!
//! A commit of transaction `start_ts` at `commit_ts` is stored at `commit_ts`; a rollback is
//! stored at the transaction's own `start_ts`.
//!
//! ```text
//! write = type:u8  start_ts:u64  field*                       (integers big-endian)
//! type  = 'P' Put | 'D' Delete | 'L' Lock | 'R' Rollback
//! field = 'v' len:u32 short_value       the committed value when short (no default-CF entry)
//!       | 'R'                           has_overlapped_rollback (see below)
//! ```
//!
//! `has_overlapped_rollback`: a rollback of transaction T must be recorded at `(key, T)`, but a
//! commit record of another transaction may already sit at exactly that key (its commit ts
//! equals T). Overwriting it would lose committed data, so the flag is set on the commit record
//! instead; readers treat it as "T is rolled back on this key too".

use super::codec::{put_len_prefixed, RecordReader};
use crate::errors::Result;

const TAG_SHORT_VALUE: u8 = b'v';
const TAG_OVERLAPPED_ROLLBACK: u8 = b'R';

/// Kind of a write record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteType {
    /// A committed value.
    Put,
    /// A committed deletion.
    Delete,
    /// A committed lock-only key: changes no data.
    Lock,
    /// The transaction was rolled back on this key; blocks a late prewrite of it.
    Rollback,
}

impl WriteType {
    fn to_byte(self) -> u8 {
        match self {
            WriteType::Put => b'P',
            WriteType::Delete => b'D',
            WriteType::Lock => b'L',
            WriteType::Rollback => b'R',
        }
    }

    fn from_byte(b: u8) -> Option<WriteType> {
        Some(match b {
            b'P' => WriteType::Put,
            b'D' => WriteType::Delete,
            b'L' => WriteType::Lock,
            b'R' => WriteType::Rollback,
            _ => return None,
        })
    }

    /// Whether a record of this type changes the key's value (Put or Delete).
    pub fn is_data_change(self) -> bool {
        matches!(self, WriteType::Put | WriteType::Delete)
    }
}

/// A commit or rollback record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Kind of record.
    pub write_type: WriteType,
    /// Start ts of the transaction that wrote it.
    pub start_ts: u64,
    /// The committed value of a short `Put`.
    pub short_value: Option<Vec<u8>>,
    /// Another transaction whose start ts equals this record's commit ts was rolled back here.
    pub has_overlapped_rollback: bool,
}

impl Write {
    /// A record with no short value and no overlapped rollback.
    pub fn new(write_type: WriteType, start_ts: u64, short_value: Option<Vec<u8>>) -> Write {
        Write {
            write_type,
            start_ts,
            short_value,
            has_overlapped_rollback: false,
        }
    }

    /// The rollback record of transaction `start_ts`.
    pub fn new_rollback(start_ts: u64) -> Write {
        Write::new(WriteType::Rollback, start_ts, None)
    }

    /// Serializes the record.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(1 + 8 + 1 + self.short_value.as_ref().map_or(0, |v| 5 + v.len()));
        out.push(self.write_type.to_byte());
        out.extend_from_slice(&self.start_ts.to_be_bytes());
        if let Some(v) = &self.short_value {
            out.push(TAG_SHORT_VALUE);
            put_len_prefixed(&mut out, v);
        }
        if self.has_overlapped_rollback {
            out.push(TAG_OVERLAPPED_ROLLBACK);
        }
        out
    }

    /// Parses a stored record.
    pub fn parse(data: &[u8]) -> Result<Write> {
        let mut r = RecordReader::new(data, "write");
        let write_type =
            WriteType::from_byte(r.u8()?).ok_or_else(|| r.error("unknown write type"))?;
        let start_ts = r.u64()?;
        let mut write = Write::new(write_type, start_ts, None);
        while !r.is_empty() {
            match r.u8()? {
                TAG_SHORT_VALUE => write.short_value = Some(r.len_prefixed()?.to_vec()),
                TAG_OVERLAPPED_ROLLBACK => write.has_overlapped_rollback = true,
                _ => return Err(r.error("unknown field tag")),
            }
        }
        Ok(write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn write_type() -> impl Strategy<Value = WriteType> {
        prop_oneof![
            Just(WriteType::Put),
            Just(WriteType::Delete),
            Just(WriteType::Lock),
            Just(WriteType::Rollback),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(
            write_type in write_type(),
            start_ts in any::<u64>(),
            short_value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            has_overlapped_rollback in any::<bool>(),
        ) {
            let write = Write { write_type, start_ts, short_value, has_overlapped_rollback };
            prop_assert_eq!(Write::parse(&write.to_bytes()).unwrap(), write);
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Write::parse(&data);
        }
    }

    #[test]
    fn malformed_records_are_errors() {
        assert!(Write::parse(b"").is_err());
        assert!(Write::parse(b"X\0\0\0\0\0\0\0\x01").is_err());
        assert!(Write::parse(b"P\0\0\0").is_err());
        assert!(Write::parse(b"P\0\0\0\0\0\0\0\x01v\0\0\0\x05ab").is_err());
        assert!(Write::parse(b"P\0\0\0\0\0\0\0\x01?").is_err());
        let w = Write::parse(b"R\0\0\0\0\0\0\0\x07").unwrap();
        assert_eq!(w, Write::new_rollback(7));
    }
}
