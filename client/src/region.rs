//! Regions as the client routes with them: bounds in the caller's key space, epoch, leader.

use proto::{kvrpcpb, metapb};

use crate::codec::decode_bytes;
use crate::errors::{Error, Result};
use crate::pd::RegionWithLeader;

/// Which key space region bounds live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    /// Raw API: region bounds are raw keys.
    Raw,
    /// Transactional API: PD's region bounds are memcomparable-encoded user keys; the client
    /// encodes keys before asking PD and keeps decoded bounds.
    Txn,
}

/// A region's identity at one point of its history: any split, merge or membership change
/// bumps the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RegionVerId {
    /// Region id.
    pub id: u64,
    /// Membership version.
    pub conf_ver: u64,
    /// Range version.
    pub version: u64,
}

/// A region with bounds in the client's key space (decoded in transactional mode).
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// Region id.
    pub id: u64,
    /// First key of the region (inclusive); empty = start of the key space.
    pub start_key: Vec<u8>,
    /// End of the region (exclusive); empty = end of the key space.
    pub end_key: Vec<u8>,
    /// The epoch stores check requests against.
    pub epoch: metapb::RegionEpoch,
    /// Replicas.
    pub peers: Vec<metapb::Peer>,
    /// The peer requests go to, when known.
    pub leader: Option<metapb::Peer>,
}

impl Region {
    /// Converts PD's view, decoding the bounds in transactional mode. Undecodable bounds are an
    /// error: routing with them would send keys to the wrong region.
    pub(crate) fn from_pd(r: RegionWithLeader, mode: KeyMode) -> Result<Region> {
        Region::from_meta(r.region, r.leader, mode)
    }

    pub(crate) fn from_meta(
        region: metapb::Region,
        leader: Option<metapb::Peer>,
        mode: KeyMode,
    ) -> Result<Region> {
        let epoch = region.region_epoch.ok_or_else(|| {
            Error::invalid_response("region", format!("region {} has no epoch", region.id))
        })?;
        let (start_key, end_key) = match mode {
            KeyMode::Raw => (region.start_key, region.end_key),
            KeyMode::Txn => (
                decode_bound(&region.start_key)?,
                decode_bound(&region.end_key)?,
            ),
        };
        Ok(Region {
            id: region.id,
            start_key,
            end_key,
            epoch,
            peers: region.peers,
            leader,
        })
    }

    /// True when `key` lies in `[start_key, end_key)`.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start_key.as_slice()
            && (self.end_key.is_empty() || key < self.end_key.as_slice())
    }

    /// The region's id and epoch.
    pub fn ver_id(&self) -> RegionVerId {
        RegionVerId {
            id: self.id,
            conf_ver: self.epoch.conf_ver,
            version: self.epoch.version,
        }
    }

    /// The end bound as an option: `None` for the end of the key space.
    pub(crate) fn end(&self) -> Option<&[u8]> {
        (!self.end_key.is_empty()).then_some(self.end_key.as_slice())
    }

    /// The routing context for a request to `leader`.
    pub(crate) fn context(&self, leader: &metapb::Peer) -> kvrpcpb::Context {
        kvrpcpb::Context {
            region_id: self.id,
            region_epoch: Some(self.epoch),
            peer: Some(*leader),
            api_version: kvrpcpb::ApiVersion::V1 as i32,
            ..Default::default()
        }
    }
}

/// Empty bounds mean "unbounded" in both spaces and are not encoded.
fn decode_bound(bound: &[u8]) -> Result<Vec<u8>> {
    if bound.is_empty() {
        Ok(Vec::new())
    } else {
        decode_bytes(bound)
    }
}

/// `min(a, b)` of two end bounds where `None` is +infinity.
pub(crate) fn min_end<'a>(a: Option<&'a [u8]>, b: Option<&'a [u8]>) -> Option<&'a [u8]> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_bytes;

    fn meta(start: &[u8], end: &[u8]) -> metapb::Region {
        metapb::Region {
            id: 7,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            region_epoch: Some(metapb::RegionEpoch {
                conf_ver: 1,
                version: 2,
            }),
            peers: vec![],
        }
    }

    #[test]
    fn txn_bounds_are_decoded() {
        let r = Region::from_meta(meta(&encode_bytes(b"b"), b""), None, KeyMode::Txn).unwrap();
        assert_eq!(r.start_key, b"b");
        assert!(r.end_key.is_empty());
        assert!(r.contains(b"b") && r.contains(b"zzz") && !r.contains(b"a"));
        assert_eq!(
            r.ver_id(),
            RegionVerId {
                id: 7,
                conf_ver: 1,
                version: 2
            }
        );
    }

    #[test]
    fn undecodable_txn_bounds_are_errors() {
        let err = Region::from_meta(meta(b"", b"y"), None, KeyMode::Txn).unwrap_err();
        assert!(matches!(err, Error::Codec { .. }));
        // The same bounds are fine as raw keys.
        let r = Region::from_meta(meta(b"", b"y"), None, KeyMode::Raw).unwrap();
        assert!(r.contains(b"x") && !r.contains(b"y"));
    }

    #[test]
    fn missing_epoch_is_an_error() {
        let mut m = meta(b"", b"");
        m.region_epoch = None;
        assert!(Region::from_meta(m, None, KeyMode::Raw).is_err());
    }

    #[test]
    fn min_end_treats_none_as_infinity() {
        assert_eq!(min_end(None, None), None);
        assert_eq!(min_end(Some(b"a"), None), Some(&b"a"[..]));
        assert_eq!(min_end(Some(b"b"), Some(b"a")), Some(&b"a"[..]));
    }
}
