//! User-facing key, value, pair and range types.
//!
//! Protobuf types stay out of the data API: callers pass anything that converts into [`Key`] /
//! [`Value`] and ranges written with Rust range syntax (`"a".."c"`, `"k"..`, `..=b"z".to_vec()`).

use std::fmt;
use std::ops::{Bound, Range, RangeFrom, RangeFull, RangeInclusive, RangeTo, RangeToInclusive};

/// Largest `limit` a scan accepts, the same cap as TiKV's clients and servers.
pub const MAX_SCAN_LIMIT: u32 = 10240;

/// A key: arbitrary bytes, ordered bytewise.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(Vec<u8>);

/// A value: arbitrary bytes.
pub type Value = Vec<u8>;

impl Key {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Unwraps the bytes.
    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }

    /// True for the empty key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(\"{}\")", self.0.escape_ascii())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.escape_ascii())
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Key {
    fn from(v: Vec<u8>) -> Key {
        Key(v)
    }
}

impl From<&[u8]> for Key {
    fn from(v: &[u8]) -> Key {
        Key(v.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for Key {
    fn from(v: &[u8; N]) -> Key {
        Key(v.to_vec())
    }
}

impl From<String> for Key {
    fn from(v: String) -> Key {
        Key(v.into_bytes())
    }
}

impl From<&str> for Key {
    fn from(v: &str) -> Key {
        Key(v.as_bytes().to_vec())
    }
}

impl From<&String> for Key {
    fn from(v: &String) -> Key {
        Key(v.as_bytes().to_vec())
    }
}

impl From<&Key> for Key {
    fn from(v: &Key) -> Key {
        v.clone()
    }
}

impl From<Key> for Vec<u8> {
    fn from(k: Key) -> Vec<u8> {
        k.0
    }
}

/// A key and its value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KvPair {
    /// The key.
    pub key: Key,
    /// The value.
    pub value: Value,
}

impl KvPair {
    /// A pair from anything key-like and value-like.
    pub fn new(key: impl Into<Key>, value: impl Into<Value>) -> KvPair {
        KvPair {
            key: key.into(),
            value: value.into(),
        }
    }
}

impl<K: Into<Key>, V: Into<Value>> From<(K, V)> for KvPair {
    fn from((k, v): (K, V)) -> KvPair {
        KvPair::new(k, v)
    }
}

impl From<KvPair> for (Key, Value) {
    fn from(p: KvPair) -> (Key, Value) {
        (p.key, p.value)
    }
}

/// A range of keys with inclusive, exclusive or open ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundRange {
    start: Bound<Key>,
    end: Bound<Key>,
}

/// A byte range `[start, end)` where `end == None` means "to the end of the key space".
pub(crate) type HalfOpen = (Vec<u8>, Option<Vec<u8>>);

impl BoundRange {
    /// A range from two bounds.
    pub fn new(start: Bound<Key>, end: Bound<Key>) -> BoundRange {
        BoundRange { start, end }
    }

    /// The whole key space.
    pub fn all() -> BoundRange {
        BoundRange::new(Bound::Unbounded, Bound::Unbounded)
    }

    /// Lowers the range to `[start, end)`; `None` when it holds no key at all. Inclusive ends and
    /// exclusive starts become the next key (`k + "\0"`), the smallest key after `k`.
    pub(crate) fn into_half_open(self) -> Option<HalfOpen> {
        let start = match self.start {
            Bound::Included(k) => k.0,
            Bound::Excluded(k) => next_key(k.0),
            Bound::Unbounded => Vec::new(),
        };
        let end = match self.end {
            Bound::Included(k) => Some(next_key(k.0)),
            Bound::Excluded(k) => Some(k.0),
            Bound::Unbounded => None,
        };
        match &end {
            Some(e) if *e <= start => None,
            _ => Some((start, end)),
        }
    }
}

/// The smallest key greater than `key`.
pub(crate) fn next_key(mut key: Vec<u8>) -> Vec<u8> {
    key.push(0);
    key
}

impl<K: Into<Key>> From<Range<K>> for BoundRange {
    fn from(r: Range<K>) -> BoundRange {
        BoundRange::new(
            Bound::Included(r.start.into()),
            Bound::Excluded(r.end.into()),
        )
    }
}

impl<K: Into<Key>> From<RangeInclusive<K>> for BoundRange {
    fn from(r: RangeInclusive<K>) -> BoundRange {
        let (s, e) = r.into_inner();
        BoundRange::new(Bound::Included(s.into()), Bound::Included(e.into()))
    }
}

impl<K: Into<Key>> From<RangeFrom<K>> for BoundRange {
    fn from(r: RangeFrom<K>) -> BoundRange {
        BoundRange::new(Bound::Included(r.start.into()), Bound::Unbounded)
    }
}

impl<K: Into<Key>> From<RangeTo<K>> for BoundRange {
    fn from(r: RangeTo<K>) -> BoundRange {
        BoundRange::new(Bound::Unbounded, Bound::Excluded(r.end.into()))
    }
}

impl<K: Into<Key>> From<RangeToInclusive<K>> for BoundRange {
    fn from(r: RangeToInclusive<K>) -> BoundRange {
        BoundRange::new(Bound::Unbounded, Bound::Included(r.end.into()))
    }
}

impl From<RangeFull> for BoundRange {
    fn from(_: RangeFull) -> BoundRange {
        BoundRange::all()
    }
}

impl<K: Into<Key>> From<(Bound<K>, Bound<K>)> for BoundRange {
    fn from((s, e): (Bound<K>, Bound<K>)) -> BoundRange {
        BoundRange::new(s.map(Into::into), e.map(Into::into))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(r: impl Into<BoundRange>) -> Option<HalfOpen> {
        r.into().into_half_open()
    }

    #[test]
    fn ranges_lower_to_half_open() {
        assert_eq!(lower("a".."c"), Some((b"a".to_vec(), Some(b"c".to_vec()))));
        assert_eq!(
            lower("a"..="c"),
            Some((b"a".to_vec(), Some(b"c\0".to_vec())))
        );
        assert_eq!(lower("a"..), Some((b"a".to_vec(), None)));
        assert_eq!(lower(..), Some((vec![], None)));
        assert_eq!(lower(..="z"), Some((vec![], Some(b"z\0".to_vec()))));
        assert_eq!(
            lower((Bound::Excluded("a"), Bound::Excluded("b"))),
            Some((b"a\0".to_vec(), Some(b"b".to_vec())))
        );
    }

    #[test]
    fn empty_ranges_are_detected() {
        assert_eq!(lower("c".."a"), None);
        assert_eq!(lower("a".."a"), None);
        assert_eq!(lower(..""), None);
        assert_eq!(lower((Bound::Excluded("a"), Bound::Included("a"))), None);
        assert!(lower("a"..="a").is_some());
    }

    #[test]
    fn key_conversions_and_display() {
        assert_eq!(Key::from("ab"), Key::from(b"ab"));
        assert_eq!(Key::from(vec![0u8, 255]).to_string(), "\\x00\\xff");
        assert_eq!(KvPair::from(("k", "v")), KvPair::new("k", b"v".to_vec()));
    }
}
