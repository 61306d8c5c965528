//! Transactional key encoding: memcomparable user keys, with a descending timestamp suffix.
//!
//! ```text
//! enc(user_key) = for each 8-byte group g of user_key (the last one zero-padded, plus an empty
//!                 group when the length is a multiple of 8):  g ++ [0xFF - pad_len]
//! lock CF key   = enc(user_key)
//! default / write CF key = enc(user_key) ++ be_u64(!ts)       (!ts: newest version sorts first)
//! ```
//!
//! `enc` preserves order (`a < b` ⇔ `enc(a) < enc(b)`) and is prefix-free (no encoding is a prefix
//! of another), so every version of a user key sorts after `enc(key)` and before the encoding of
//! any greater key. Regions of transactional data are therefore bounded by encoded user keys, and
//! "is this key in the region" is a byte comparison on `enc(key)`. A split checker picking a split
//! key from MVCC data must drop the timestamp first: [`truncate_ts_if_mvcc`].

use std::fmt;

use crate::errors::{Result, TxnError};

const GROUP_SIZE: usize = 8;
const ENC_GROUP_SIZE: usize = GROUP_SIZE + 1;
const MARKER: u8 = 0xFF;
const PAD: u8 = 0x00;
/// Length of the timestamp suffix of a `default` / `write` CF key.
pub const TS_LEN: usize = 8;

/// Length of `enc(raw)` for a raw key of `raw_len` bytes.
pub fn encoded_len(raw_len: usize) -> usize {
    (raw_len / GROUP_SIZE + 1) * ENC_GROUP_SIZE
}

/// Appends the memcomparable encoding of `raw` to `out`.
pub fn encode_bytes_to(raw: &[u8], out: &mut Vec<u8>) {
    out.reserve(encoded_len(raw.len()));
    let mut chunks = raw.chunks_exact(GROUP_SIZE);
    for group in &mut chunks {
        out.extend_from_slice(group);
        out.push(MARKER);
    }
    // The final group is always padded (possibly entirely), which is what makes the encoding
    // prefix-free: its marker is the only one below 0xFF.
    let rest = chunks.remainder();
    let pad = GROUP_SIZE - rest.len();
    out.extend_from_slice(rest);
    out.extend(std::iter::repeat_n(PAD, pad));
    out.push(MARKER - pad as u8);
}

/// The memcomparable encoding of `raw`.
pub fn encode_bytes(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(raw.len()));
    encode_bytes_to(raw, &mut out);
    out
}

fn bad(what: &str, data: &[u8]) -> crate::errors::Error {
    TxnError::BadFormat(format!("{what}: {:?}", data.escape_ascii().to_string())).into()
}

/// Decodes one memcomparable-encoded key from the front of `data`; returns the raw key and the
/// number of bytes consumed.
pub fn decode_bytes(data: &[u8]) -> Result<(Vec<u8>, usize)> {
    let mut raw = Vec::with_capacity(data.len() / ENC_GROUP_SIZE * GROUP_SIZE);
    let mut offset = 0;
    loop {
        let Some(group) = data.get(offset..offset + ENC_GROUP_SIZE) else {
            return Err(bad("truncated memcomparable key", data));
        };
        offset += ENC_GROUP_SIZE;
        let marker = group[GROUP_SIZE];
        let pad = usize::from(MARKER - marker);
        if pad == 0 {
            raw.extend_from_slice(&group[..GROUP_SIZE]);
            continue;
        }
        if pad > GROUP_SIZE {
            return Err(bad("invalid memcomparable marker", data));
        }
        let real = GROUP_SIZE - pad;
        if group[real..GROUP_SIZE].iter().any(|&b| b != PAD) {
            return Err(bad("invalid memcomparable padding", data));
        }
        raw.extend_from_slice(&group[..real]);
        return Ok((raw, offset));
    }
}

/// Whether `data` is exactly one valid memcomparable encoding (no timestamp, nothing after).
pub fn is_encoded_key(data: &[u8]) -> bool {
    // Cheap structural check first: whole groups, all markers 0xFF but the last.
    if data.is_empty() || !data.len().is_multiple_of(ENC_GROUP_SIZE) {
        return false;
    }
    matches!(decode_bytes(data), Ok((_, used)) if used == data.len())
}

/// Strips the timestamp suffix from `key` if it is an MVCC key (`enc(user_key) ++ ts`); returns
/// any other key unchanged. Split checkers use this to turn a key read from the `default` or
/// `write` CF into a region boundary that never separates two versions of one user key.
pub fn truncate_ts_if_mvcc(key: &[u8]) -> &[u8] {
    // An encoded key is a whole number of 9-byte groups, so with the 8-byte ts the length is
    // 8 mod 9; a bare encoded key (lock CF) never is.
    if key.len() > TS_LEN && (key.len() - TS_LEN).is_multiple_of(ENC_GROUP_SIZE) {
        let user = &key[..key.len() - TS_LEN];
        if is_encoded_key(user) {
            return user;
        }
    }
    key
}

/// Encodes a timestamp as a key suffix: bit-inverted big-endian, so newer versions sort first.
pub fn encode_ts(ts: u64) -> [u8; TS_LEN] {
    (!ts).to_be_bytes()
}

/// Splits an MVCC key into its encoded user key and timestamp.
pub fn split_ts(key: &[u8]) -> Result<(&[u8], u64)> {
    if key.len() < ENC_GROUP_SIZE + TS_LEN {
        return Err(bad("mvcc key too short", key));
    }
    let (user, ts) = key.split_at(key.len() - TS_LEN);
    let mut buf = [0u8; TS_LEN];
    buf.copy_from_slice(ts);
    Ok((user, !u64::from_be_bytes(buf)))
}

/// `enc(raw) ++ ts`: the `default` / `write` CF key of version `ts` of raw user key `raw`.
pub fn encode_key(raw: &[u8], ts: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(raw.len()) + TS_LEN);
    encode_bytes_to(raw, &mut out);
    out.extend_from_slice(&encode_ts(ts));
    out
}

/// Decodes the raw user key of an MVCC key (`enc(user_key) ++ ts`).
pub fn decode_user_key(mvcc_key: &[u8]) -> Result<Vec<u8>> {
    let (user, _) = split_ts(mvcc_key)?;
    let (raw, used) = decode_bytes(user)?;
    if used != user.len() {
        return Err(bad("trailing bytes after mvcc user key", mvcc_key));
    }
    Ok(raw)
}

/// A transactional user key in encoded form (`enc(user_key)`), the unit the lock CF, latches and
/// region checks work on. Build it with [`Key::from_raw`]; versions with [`Key::append_ts`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(Vec<u8>);

impl Key {
    /// Encodes a raw (client) key.
    pub fn from_raw(raw: &[u8]) -> Key {
        Key(encode_bytes(raw))
    }

    /// Wraps bytes that already are an encoded user key (read from the lock CF, or the user part
    /// of an MVCC key). Decoding is checked lazily by [`Key::to_raw`].
    pub fn from_encoded(encoded: Vec<u8>) -> Key {
        Key(encoded)
    }

    /// The encoded bytes.
    pub fn as_encoded(&self) -> &[u8] {
        &self.0
    }

    /// The encoded bytes, by value.
    pub fn into_encoded(self) -> Vec<u8> {
        self.0
    }

    /// Decodes back to the raw (client) key.
    pub fn to_raw(&self) -> Result<Vec<u8>> {
        let (raw, used) = decode_bytes(&self.0)?;
        if used != self.0.len() {
            return Err(bad("trailing bytes after encoded key", &self.0));
        }
        Ok(raw)
    }

    /// The `default` / `write` CF key of version `ts` of this key.
    pub fn append_ts(&self, ts: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() + TS_LEN);
        out.extend_from_slice(&self.0);
        out.extend_from_slice(&encode_ts(ts));
        out
    }

    /// Whether `mvcc_key` is a version (`self ++ ts`) of this key.
    pub fn is_user_key_of(&self, mvcc_key: &[u8]) -> bool {
        // Prefix-freeness of the encoding makes "starts with, plus exactly a ts" sufficient.
        mvcc_key.len() == self.0.len() + TS_LEN && mvcc_key.starts_with(&self.0)
    }

    /// The smallest byte string greater than this encoded key: where a lock-CF scan resumes
    /// after it.
    pub fn successor(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() + 1);
        out.extend_from_slice(&self.0);
        out.push(0);
        out
    }

    /// The smallest key greater than every version of this key and not greater than the encoding
    /// of any greater user key: bump the final marker (always < 0xFF, so it cannot overflow).
    pub fn versions_end(&self) -> Vec<u8> {
        let mut out = self.0.clone();
        if let Some(last) = out.last_mut() {
            *last = last.saturating_add(1);
        }
        out
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_raw() {
            Ok(raw) => write!(f, "Key(\"{}\")", raw.escape_ascii()),
            Err(_) => write!(f, "Key(enc \"{}\")", self.0.escape_ascii()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        assert_eq!(encode_bytes(b""), [0, 0, 0, 0, 0, 0, 0, 0, 0xF7]);
        assert_eq!(
            encode_bytes(b"abc"),
            [b'a', b'b', b'c', 0, 0, 0, 0, 0, 0xFA]
        );
        let eight = encode_bytes(b"12345678");
        assert_eq!(eight.len(), 18);
        assert_eq!(&eight[..9], b"12345678\xFF");
        assert_eq!(&eight[9..], [0, 0, 0, 0, 0, 0, 0, 0, 0xF7]);
    }

    #[test]
    fn malformed_encodings_are_errors_not_panics() {
        assert!(decode_bytes(b"").is_err());
        assert!(decode_bytes(b"abc").is_err());
        // Marker says 9 bytes of padding.
        assert!(decode_bytes(&[0, 0, 0, 0, 0, 0, 0, 0, 0xF6]).is_err());
        // Non-zero padding.
        assert!(decode_bytes(&[b'a', 0, 0, 0, 0, 0, 0, 1, 0xFE]).is_err());
        // Full group but nothing after it.
        assert!(decode_bytes(b"12345678\xFF").is_err());
        assert!(split_ts(b"short").is_err());
        assert!(decode_user_key(&[0u8; 16]).is_err());
        assert!(Key::from_encoded(b"zz".to_vec()).to_raw().is_err());
    }

    #[test]
    fn truncate_ts_only_touches_mvcc_keys() {
        let k = Key::from_raw(b"key");
        assert_eq!(truncate_ts_if_mvcc(&k.append_ts(42)), k.as_encoded());
        // A lock-CF key (no ts) and raw garbage are returned unchanged.
        assert_eq!(truncate_ts_if_mvcc(k.as_encoded()), k.as_encoded());
        assert_eq!(truncate_ts_if_mvcc(b"raw-key"), b"raw-key");
        let fake = [0xAAu8; 17];
        assert_eq!(truncate_ts_if_mvcc(&fake), &fake[..]);
    }

    #[test]
    fn versions_end_bounds_all_versions() {
        let a = Key::from_raw(b"a");
        let end = a.versions_end();
        assert!(a.append_ts(0).as_slice() < end.as_slice());
        assert!(end.as_slice() <= Key::from_raw(b"a\0").as_encoded());
        assert!(end.as_slice() <= Key::from_raw(b"b").as_encoded());
        assert!(a.successor().as_slice() > a.as_encoded());
        assert!(a.successor().as_slice() < Key::from_raw(b"a\0").as_encoded());
    }

    proptest! {
        #[test]
        fn round_trip(raw in proptest::collection::vec(any::<u8>(), 0..40), ts in any::<u64>()) {
            let enc = encode_bytes(&raw);
            prop_assert_eq!(enc.len(), encoded_len(raw.len()));
            prop_assert_eq!(decode_bytes(&enc).unwrap(), (raw.clone(), enc.len()));
            prop_assert!(is_encoded_key(&enc));
            let key = Key::from_raw(&raw);
            prop_assert_eq!(key.to_raw().unwrap(), raw.clone());
            let mvcc = key.append_ts(ts);
            prop_assert_eq!(&mvcc, &encode_key(&raw, ts));
            prop_assert_eq!(split_ts(&mvcc).unwrap(), (key.as_encoded(), ts));
            prop_assert_eq!(decode_user_key(&mvcc).unwrap(), raw);
            prop_assert_eq!(truncate_ts_if_mvcc(&mvcc), key.as_encoded());
            prop_assert!(key.is_user_key_of(&mvcc));
        }

        #[test]
        fn order_is_preserved(
            a in proptest::collection::vec(any::<u8>(), 0..24),
            b in proptest::collection::vec(any::<u8>(), 0..24),
            ta in any::<u64>(),
            tb in any::<u64>(),
        ) {
            let (ea, eb) = (encode_bytes(&a), encode_bytes(&b));
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
            // Versions: user key first, then newest (largest ts) first.
            let (ka, kb) = (encode_key(&a, ta), encode_key(&b, tb));
            let expected = a.cmp(&b).then(tb.cmp(&ta));
            prop_assert_eq!(ka.cmp(&kb), expected);
            // Every version of `a` lies in [enc(a), versions_end(a)), so a region boundary at an
            // encoded user key never separates two versions of one key.
            let key_a = Key::from_raw(&a);
            prop_assert!(ka.as_slice() > key_a.as_encoded());
            prop_assert!(ka.as_slice() < key_a.versions_end().as_slice());
            if a < b {
                prop_assert!(ka.as_slice() < eb.as_slice());
                prop_assert!(key_a.versions_end().as_slice() <= eb.as_slice());
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode_bytes(&data);
            let _ = decode_user_key(&data);
            let _ = truncate_ts_if_mvcc(&data);
        }
    }
}
