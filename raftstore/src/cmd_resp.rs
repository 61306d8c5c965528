//! The one mapping of [`Error`] into `errorpb::Error`, and the helpers that put it into a
//! `RaftCmdResponse` header. Every region error a client sees from this store is built here.

use proto::errorpb;
use proto::raft_cmdpb::{RaftCmdResponse, RaftResponseHeader};

use crate::errors::Error;

impl From<Error> for errorpb::Error {
    fn from(err: Error) -> errorpb::Error {
        let message = err.to_string();
        let mut e = errorpb::Error {
            message,
            ..Default::default()
        };
        match err {
            Error::NotLeader { region_id, leader } => {
                e.not_leader = Some(errorpb::NotLeader { region_id, leader });
            }
            Error::RegionNotFound(region_id) => {
                e.region_not_found = Some(errorpb::RegionNotFound { region_id });
            }
            Error::StoreNotMatch { requested, actual } => {
                e.store_not_match = Some(errorpb::StoreNotMatch {
                    request_store_id: requested,
                    actual_store_id: actual,
                });
            }
            Error::EpochNotMatch { regions, .. } => {
                e.epoch_not_match = Some(errorpb::EpochNotMatch {
                    current_regions: regions,
                });
            }
            Error::KeyNotInRegion { key, region } => {
                e.key_not_in_region = Some(errorpb::KeyNotInRegion {
                    key,
                    region_id: region.id,
                    start_key: region.start_key,
                    end_key: region.end_key,
                });
            }
            Error::StaleCommand => e.stale_command = Some(errorpb::StaleCommand {}),
            Error::RaftEntryTooLarge {
                region_id,
                entry_size,
            } => {
                e.raft_entry_too_large = Some(errorpb::RaftEntryTooLarge {
                    region_id,
                    entry_size,
                });
            }
            Error::ServerIsBusy(reason) => {
                e.server_is_busy = Some(errorpb::ServerIsBusy {
                    reason,
                    ..Default::default()
                });
            }
            // The rest carry only the message: the client retries (shutdown, timeout) or gives
            // up (invalid request, engine failure) based on it.
            Error::InvalidRequest(_)
            | Error::Timeout(_)
            | Error::Transport(_)
            | Error::Pd(_)
            | Error::Core(_)
            | Error::Shutdown
            | Error::Other(_) => {}
        }
        e
    }
}

/// Stamps the responder's current term into `resp`'s header.
pub fn bind_term(resp: &mut RaftCmdResponse, term: u64) {
    if term != 0 {
        resp.header
            .get_or_insert_with(Default::default)
            .current_term = term;
    }
}

/// Puts `err` into `resp`'s header.
pub fn bind_error(resp: &mut RaftCmdResponse, err: Error) {
    resp.header.get_or_insert_with(Default::default).error = Some(err.into());
}

/// A response carrying only `err` (and `term`, if known).
pub fn err_resp(err: Error, term: u64) -> RaftCmdResponse {
    let mut resp = RaftCmdResponse {
        header: Some(RaftResponseHeader::default()),
        ..Default::default()
    };
    bind_error(&mut resp, err);
    bind_term(&mut resp, term);
    resp
}

/// A successful, empty response stamped with `term`.
pub fn new_resp(term: u64) -> RaftCmdResponse {
    let mut resp = RaftCmdResponse {
        header: Some(RaftResponseHeader::default()),
        ..Default::default()
    };
    bind_term(&mut resp, term);
    resp
}

#[cfg(test)]
mod tests {
    use proto::metapb::{Peer, Region};

    use super::*;

    #[test]
    fn each_region_error_maps_to_its_errorpb_variant() {
        let leader = Peer {
            id: 2,
            store_id: 2,
            ..Default::default()
        };
        let e: errorpb::Error = Error::NotLeader {
            region_id: 1,
            leader: Some(leader),
        }
        .into();
        assert_eq!(e.not_leader.unwrap().leader, Some(leader));

        let e: errorpb::Error = Error::RegionNotFound(7).into();
        assert_eq!(e.region_not_found.unwrap().region_id, 7);

        let e: errorpb::Error = Error::StoreNotMatch {
            requested: 1,
            actual: 2,
        }
        .into();
        let snm = e.store_not_match.unwrap();
        assert_eq!((snm.request_store_id, snm.actual_store_id), (1, 2));

        let region = Region {
            id: 3,
            start_key: b"a".to_vec(),
            end_key: b"c".to_vec(),
            ..Default::default()
        };
        let e: errorpb::Error = Error::EpochNotMatch {
            message: "stale".into(),
            regions: vec![region.clone()],
        }
        .into();
        assert_eq!(
            e.epoch_not_match.unwrap().current_regions,
            vec![region.clone()]
        );

        let e: errorpb::Error = Error::KeyNotInRegion {
            key: b"z".to_vec(),
            region: Box::new(region),
        }
        .into();
        let knr = e.key_not_in_region.unwrap();
        assert_eq!(
            (
                knr.region_id,
                knr.start_key.as_slice(),
                knr.end_key.as_slice()
            ),
            (3, &b"a"[..], &b"c"[..])
        );

        let e: errorpb::Error = Error::StaleCommand.into();
        assert!(e.stale_command.is_some());
        let e: errorpb::Error = Error::RaftEntryTooLarge {
            region_id: 1,
            entry_size: 99,
        }
        .into();
        assert_eq!(e.raft_entry_too_large.unwrap().entry_size, 99);
        let e: errorpb::Error = Error::ServerIsBusy("full".into()).into();
        assert_eq!(e.server_is_busy.unwrap().reason, "full");

        let e: errorpb::Error = Error::Shutdown.into();
        assert!(e.message.contains("shutting down"));
        assert!(e.not_leader.is_none() && e.stale_command.is_none());
    }

    #[test]
    fn err_resp_sets_header_error_and_term() {
        let resp = err_resp(Error::StaleCommand, 9);
        let header = resp.header.unwrap();
        assert_eq!(header.current_term, 9);
        assert!(header.error.unwrap().stale_command.is_some());
        assert!(new_resp(3).header.unwrap().error.is_none());
    }
}
