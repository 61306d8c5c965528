//! Builders of `raft_cmdpb` requests, so suites read as what they do.

use proto::metapb::{Peer, Region};
use proto::raft_cmdpb::{
    CmdType, DeleteRequest, GetRequest, PutRequest, RaftCmdRequest, RaftRequestHeader, Request,
    SnapRequest,
};

/// A Get of `key` in `cf`.
pub fn get(cf: &str, key: &[u8]) -> Request {
    Request {
        cmd_type: CmdType::Get as i32,
        get: Some(GetRequest {
            cf: cf.to_owned(),
            key: key.to_vec(),
        }),
        ..Default::default()
    }
}

/// A Put of `key` = `value` in `cf`.
pub fn put(cf: &str, key: &[u8], value: &[u8]) -> Request {
    Request {
        cmd_type: CmdType::Put as i32,
        put: Some(PutRequest {
            cf: cf.to_owned(),
            key: key.to_vec(),
            value: value.to_vec(),
        }),
        ..Default::default()
    }
}

/// A Delete of `key` in `cf`.
pub fn delete(cf: &str, key: &[u8]) -> Request {
    Request {
        cmd_type: CmdType::Delete as i32,
        delete: Some(DeleteRequest {
            cf: cf.to_owned(),
            key: key.to_vec(),
        }),
        ..Default::default()
    }
}

/// A Snap (a consistent read view of the whole region).
pub fn snap() -> Request {
    Request {
        cmd_type: CmdType::Snap as i32,
        snap: Some(SnapRequest {}),
        ..Default::default()
    }
}

/// A command for `region` addressed to `peer`, carrying the region's current epoch.
pub fn request(region: &Region, peer: Peer, requests: Vec<Request>) -> RaftCmdRequest {
    RaftCmdRequest {
        header: Some(RaftRequestHeader {
            region_id: region.id,
            peer: Some(peer),
            region_epoch: region.region_epoch,
            ..Default::default()
        }),
        requests,
        ..Default::default()
    }
}
