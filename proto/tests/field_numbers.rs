//! Pins the wire numbering of the messages we rely on.
//!
//! Each test builds reference bytes by hand (tag = field number << 3 | wire type), using the field
//! numbers of TiKV's kvproto as shipped in tikv-client 0.4.0 (and raft-rs 0.7's eraftpb), then
//! decodes them with our generated types. A renumbered field fails to land where it should.

use proto::Message;
use proto::{eraftpb, errorpb, kvrpcpb, metapb, pdpb, raft_cmdpb, raft_serverpb};

/// A minimal protobuf encoder, independent of prost, for building reference bytes.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn tag(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }
    /// A varint field: integers, bools and enums.
    fn u(mut self, field: u32, v: u64) -> Self {
        self.tag(field, 0);
        self.varint(v);
        self
    }
    /// A length-delimited field: bytes, strings and nested messages.
    fn b(mut self, field: u32, v: &[u8]) -> Self {
        self.tag(field, 2);
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }
    fn m(self, field: u32, nested: Enc) -> Self {
        self.b(field, &nested.0)
    }
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

fn e() -> Enc {
    Enc::default()
}

fn peer(id: u64, store: u64) -> Enc {
    e().u(1, id).u(2, store)
}

fn epoch(conf_ver: u64, version: u64) -> Enc {
    e().u(1, conf_ver).u(2, version)
}

#[test]
fn metapb_region_store_peer() {
    let region = e()
        .u(1, 7)
        .b(2, b"a")
        .b(3, b"z")
        .m(4, epoch(3, 4))
        .m(5, peer(8, 1))
        .m(5, peer(9, 2));
    let r = metapb::Region::decode(region.bytes()).unwrap();
    assert_eq!(
        (r.id, &r.start_key[..], &r.end_key[..]),
        (7, &b"a"[..], &b"z"[..])
    );
    let ep = r.region_epoch.unwrap();
    assert_eq!((ep.conf_ver, ep.version), (3, 4));
    assert_eq!(r.peers.len(), 2);
    assert_eq!((r.peers[1].id, r.peers[1].store_id), (9, 2));

    let store = e().u(1, 5).b(2, b"127.0.0.1:20160").u(3, 2).u(9, 1700);
    let s = metapb::Store::decode(store.bytes()).unwrap();
    assert_eq!(s.id, 5);
    assert_eq!(s.address, "127.0.0.1:20160");
    assert_eq!(s.state(), metapb::StoreState::Tombstone);
    assert_eq!(s.start_timestamp, 1700);
}

#[test]
fn errorpb_variants() {
    let cases: Vec<(u32, Enc)> = vec![
        (2, e().u(1, 1).m(2, peer(3, 4))),
        (3, e().u(1, 1)),
        (4, e().b(1, b"k").u(2, 1).b(3, b"a").b(4, b"b")),
        (5, e().m(1, e().u(1, 1))),
        (6, e().b(1, b"busy")),
        (7, e()),
        (8, e().u(1, 1).u(2, 2)),
        (9, e().u(1, 1).u(2, 100)),
    ];
    for (field, inner) in cases {
        let err = errorpb::Error::decode(e().b(1, b"msg").m(field, inner).bytes()).unwrap();
        assert_eq!(err.message, "msg");
        let set = [
            err.not_leader.is_some(),
            err.region_not_found.is_some(),
            err.key_not_in_region.is_some(),
            err.epoch_not_match.is_some(),
            err.server_is_busy.is_some(),
            err.stale_command.is_some(),
            err.store_not_match.is_some(),
            err.raft_entry_too_large.is_some(),
        ];
        assert!(
            set[(field - 2) as usize],
            "field {field} decoded into the wrong variant"
        );
        assert_eq!(set.iter().filter(|s| **s).count(), 1);
    }
    let nl = errorpb::Error::decode(e().m(2, e().u(1, 1).m(2, peer(3, 4))).bytes()).unwrap();
    assert_eq!(nl.not_leader.unwrap().leader.unwrap().store_id, 4);
}

#[test]
fn kvrpcpb_context() {
    let ctx = e()
        .u(1, 11)
        .m(2, epoch(2, 3))
        .m(3, peer(4, 5))
        .u(5, 6)
        .u(21, 2)
        .u(32, 9);
    let c = kvrpcpb::Context::decode(ctx.bytes()).unwrap();
    assert_eq!(c.region_id, 11);
    assert_eq!(c.region_epoch.unwrap().version, 3);
    assert_eq!(c.peer.unwrap().store_id, 5);
    assert_eq!(c.term, 6);
    assert_eq!(c.api_version(), kvrpcpb::ApiVersion::V2);
    assert_eq!(c.keyspace_id, 9);
}

#[test]
fn kvrpcpb_op_and_action_values() {
    use kvrpcpb::{Action, Op};
    // kvproto order; TinyKV's own proto swaps Lock and Rollback, we must not.
    let ops = [
        (0, Op::Put),
        (1, Op::Del),
        (2, Op::Lock),
        (3, Op::Rollback),
        (4, Op::Insert),
        (5, Op::PessimisticLock),
        (6, Op::CheckNotExists),
    ];
    for (v, op) in ops {
        let m =
            kvrpcpb::Mutation::decode(e().u(1, v).b(2, b"k").b(3, b"v").u(4, 1).bytes()).unwrap();
        assert_eq!(m.op(), op);
        assert_eq!((&m.key[..], &m.value[..]), (&b"k"[..], &b"v"[..]));
        assert_eq!(m.assertion(), kvrpcpb::Assertion::Exist);
    }
    assert_eq!(Action::TtlExpireRollback as i32, 1);
    assert_eq!(Action::LockNotExistRollback as i32, 2);
    assert_eq!(Action::MinCommitTsPushed as i32, 3);
    assert_eq!(Action::LockNotExistDoNothing as i32, 5);
}

#[test]
fn kvrpcpb_raw_requests() {
    let scan = e()
        .m(1, e().u(1, 1))
        .b(2, b"a")
        .u(3, 10)
        .u(4, 1)
        .b(5, b"write")
        .u(6, 1)
        .b(7, b"z");
    let r = kvrpcpb::RawScanRequest::decode(scan.bytes()).unwrap();
    assert_eq!(r.context.unwrap().region_id, 1);
    assert_eq!(
        (&r.start_key[..], r.limit, r.key_only),
        (&b"a"[..], 10, true)
    );
    assert_eq!(
        (r.cf.as_str(), r.reverse, &r.end_key[..]),
        ("write", true, &b"z"[..])
    );

    let put = e().b(2, b"k").b(3, b"v").b(4, b"lock").u(5, 30).u(6, 1);
    let p = kvrpcpb::RawPutRequest::decode(put.bytes()).unwrap();
    assert_eq!((p.cf.as_str(), p.ttl, p.for_cas), ("lock", 30, true));

    let cas = e()
        .b(2, b"k")
        .b(3, b"v")
        .u(4, 1)
        .b(5, b"old")
        .b(6, b"default")
        .u(7, 5);
    let c = kvrpcpb::RawCasRequest::decode(cas.bytes()).unwrap();
    assert!(c.previous_not_exist);
    assert_eq!(
        (&c.previous_value[..], c.cf.as_str(), c.ttl),
        (&b"old"[..], "default", 5)
    );

    let cas_resp = e().b(2, b"err").u(3, 1).u(4, 1).b(5, b"p");
    let cr = kvrpcpb::RawCasResponse::decode(cas_resp.bytes()).unwrap();
    assert_eq!(
        (cr.error.as_str(), cr.succeed, cr.previous_not_exist),
        ("err", true, true)
    );
    assert_eq!(&cr.previous_value[..], b"p");

    let get_resp = e().b(2, b"e").b(3, b"v").u(4, 1);
    let g = kvrpcpb::RawGetResponse::decode(get_resp.bytes()).unwrap();
    assert_eq!(
        (g.error.as_str(), &g.value[..], g.not_found),
        ("e", &b"v"[..], true)
    );

    let scan_resp = e().m(2, e().b(2, b"k").b(3, b"v"));
    let s = kvrpcpb::RawScanResponse::decode(scan_resp.bytes()).unwrap();
    assert_eq!(&s.kvs[0].key[..], b"k");

    let dr = e().b(2, b"a").b(3, b"b").b(4, b"write");
    let d = kvrpcpb::RawDeleteRangeRequest::decode(dr.bytes()).unwrap();
    assert_eq!(
        (&d.start_key[..], &d.end_key[..], d.cf.as_str()),
        (&b"a"[..], &b"b"[..], "write")
    );

    let bp = e().m(2, e().b(2, b"k")).b(3, b"lock").u(5, 1).u(6, 7);
    let b = kvrpcpb::RawBatchPutRequest::decode(bp.bytes()).unwrap();
    assert_eq!(
        (b.cf.as_str(), b.for_cas, b.ttls.clone()),
        ("lock", true, vec![7])
    );
}

#[test]
fn kvrpcpb_txn_requests() {
    let scan = e().b(2, b"a").u(3, 5).u(4, 100).u(5, 1).u(6, 1).b(7, b"b");
    let s = kvrpcpb::ScanRequest::decode(scan.bytes()).unwrap();
    assert_eq!(
        (s.limit, s.version, s.key_only, s.reverse),
        (5, 100, true, true)
    );
    assert_eq!(&s.end_key[..], b"b");

    let pw = e()
        .m(2, e().u(1, 4).b(2, b"k"))
        .b(3, b"p")
        .u(4, 10)
        .u(5, 3000)
        .u(6, 1)
        .u(7, 1)
        .u(8, u64::MAX)
        .u(9, 11)
        .u(10, 12)
        .u(11, 1)
        .b(12, b"s")
        .u(13, 1)
        .u(14, 99);
    let p = kvrpcpb::PrewriteRequest::decode(pw.bytes()).unwrap();
    assert_eq!(p.mutations[0].op(), kvrpcpb::Op::Insert);
    assert_eq!(
        (&p.primary_lock[..], p.start_version, p.lock_ttl),
        (&b"p"[..], 10, 3000)
    );
    assert!(p.skip_constraint_check && p.use_async_commit && p.try_one_pc);
    assert_eq!(
        p.pessimistic_actions().collect::<Vec<_>>(),
        vec![kvrpcpb::prewrite_request::PessimisticAction::DoPessimisticCheck]
    );
    assert_eq!(
        (p.txn_size, p.for_update_ts, p.min_commit_ts),
        (u64::MAX, 11, 12)
    );
    assert_eq!((p.secondaries.len(), p.max_commit_ts), (1, 99));

    let pl = e()
        .b(3, b"p")
        .u(4, 1)
        .u(5, 20000)
        .u(6, 2)
        .u(7, 1)
        .u(8, 0)
        .u(10, 1)
        .u(11, 3)
        .u(12, 1)
        .u(13, 1);
    let l = kvrpcpb::PessimisticLockRequest::decode(pl.bytes()).unwrap();
    assert_eq!(
        (l.start_version, l.lock_ttl, l.for_update_ts),
        (1, 20000, 2)
    );
    assert!(l.is_first_lock && l.return_values && l.check_existence && l.lock_only_if_exists);
    assert_eq!(l.min_commit_ts, 3);

    let plr = e().m(2, e().b(3, b"a")).b(5, b"v").u(6, 1);
    let lr = kvrpcpb::PessimisticLockResponse::decode(plr.bytes()).unwrap();
    assert_eq!(
        (lr.errors.len(), lr.values.len(), lr.not_founds.clone()),
        (1, 1, vec![true])
    );

    let ctr = e()
        .b(2, b"p")
        .u(3, 1)
        .u(4, 2)
        .u(5, 3)
        .u(6, 1)
        .u(7, 1)
        .u(8, 1)
        .u(9, 1);
    let c = kvrpcpb::CheckTxnStatusRequest::decode(ctr.bytes()).unwrap();
    assert_eq!((c.lock_ts, c.caller_start_ts, c.current_ts), (1, 2, 3));
    assert!(c.rollback_if_not_exist && c.force_sync_commit);
    assert!(c.resolving_pessimistic_lock && c.verify_is_primary);

    let cts = e()
        .m(2, e().b(3, b"abort"))
        .u(3, 7)
        .u(4, 8)
        .u(5, 2)
        .m(6, e().u(2, 9));
    let cr = kvrpcpb::CheckTxnStatusResponse::decode(cts.bytes()).unwrap();
    assert_eq!(cr.action(), kvrpcpb::Action::LockNotExistRollback);
    assert_eq!((cr.lock_ttl, cr.commit_version), (7, 8));
    assert_eq!(cr.error.unwrap().abort, "abort");
    assert_eq!(cr.lock_info.unwrap().lock_version, 9);

    let commit = e().u(2, 5).b(3, b"k").u(4, 6);
    let cm = kvrpcpb::CommitRequest::decode(commit.bytes()).unwrap();
    assert_eq!(
        (cm.start_version, cm.keys.len(), cm.commit_version),
        (5, 1, 6)
    );

    let resolve = e().u(2, 5).u(3, 6).m(4, e().u(1, 7).u(2, 8)).b(5, b"k");
    let rs = kvrpcpb::ResolveLockRequest::decode(resolve.bytes()).unwrap();
    assert_eq!((rs.start_version, rs.commit_version), (5, 6));
    assert_eq!(
        (rs.txn_infos[0].txn, rs.txn_infos[0].status, rs.keys.len()),
        (7, 8, 1)
    );

    let hb = e().b(2, b"p").u(3, 5).u(4, 6);
    let h = kvrpcpb::TxnHeartBeatRequest::decode(hb.bytes()).unwrap();
    assert_eq!(
        (&h.primary_lock[..], h.start_version, h.advise_lock_ttl),
        (&b"p"[..], 5, 6)
    );

    let sl = e().u(2, 5).b(3, b"a").u(4, 6).b(5, b"b");
    let s = kvrpcpb::ScanLockRequest::decode(sl.bytes()).unwrap();
    assert_eq!((s.max_version, s.limit, &s.end_key[..]), (5, 6, &b"b"[..]));

    let pr = e().u(2, 5).u(3, 6).b(4, b"k");
    let p = kvrpcpb::PessimisticRollbackRequest::decode(pr.bytes()).unwrap();
    assert_eq!((p.start_version, p.for_update_ts, p.keys.len()), (5, 6, 1));

    let bg = e().m(2, e().b(2, b"k")).m(5, e().b(2, b"x"));
    let b = kvrpcpb::BatchGetResponse::decode(bg.bytes()).unwrap();
    assert_eq!(
        (b.pairs.len(), b.error.unwrap().retryable.as_str()),
        (1, "x")
    );

    let split = e().b(3, b"a").b(3, b"b").u(4, 1);
    let sp = kvrpcpb::SplitRegionRequest::decode(split.bytes()).unwrap();
    assert_eq!((sp.split_keys.len(), sp.is_raw_kv), (2, true));
}

#[test]
fn kvrpcpb_key_errors() {
    let lock = e()
        .b(1, b"p")
        .u(2, 5)
        .b(3, b"k")
        .u(4, 3000)
        .u(5, 1)
        .u(6, 5)
        .u(7, 6)
        .u(8, 1)
        .u(9, 7);
    let l = kvrpcpb::LockInfo::decode(lock.bytes()).unwrap();
    assert_eq!(
        (&l.primary_lock[..], l.lock_version, &l.key[..]),
        (&b"p"[..], 5, &b"k"[..])
    );
    assert_eq!(
        (l.lock_ttl, l.txn_size, l.lock_type()),
        (3000, 1, kvrpcpb::Op::PessimisticLock)
    );
    assert_eq!(
        (l.lock_for_update_ts, l.use_async_commit, l.min_commit_ts),
        (6, true, 7)
    );

    let ke = e()
        .m(4, e().u(1, 1).u(2, 2).b(3, b"k").b(4, b"p").u(5, 3))
        .m(5, e().b(1, b"dup"))
        .m(7, e().u(1, 1).u(2, 2).b(3, b"k").u(4, 3))
        .m(8, e().u(1, 4).b(2, b"pk"));
    let k = kvrpcpb::KeyError::decode(ke.bytes()).unwrap();
    let c = k.conflict.unwrap();
    assert_eq!((c.start_ts, c.conflict_ts, c.conflict_commit_ts), (1, 2, 3));
    assert_eq!(&k.already_exist.unwrap().key[..], b"dup");
    assert_eq!(k.commit_ts_expired.unwrap().min_commit_ts, 3);
    assert_eq!(&k.txn_not_found.unwrap().primary_key[..], b"pk");
}

#[test]
fn pdpb_messages() {
    let header = e().u(1, 42).m(2, e().u(1, 2).b(2, b"nb"));
    let tso = e().m(1, header).u(2, 10).m(3, e().u(1, 1_700_000).u(2, 9));
    let t = pdpb::TsoResponse::decode(tso.bytes()).unwrap();
    let h = t.header.unwrap();
    assert_eq!(h.cluster_id, 42);
    assert_eq!(h.error.unwrap().r#type(), pdpb::ErrorType::NotBootstrapped);
    let ts = t.timestamp.unwrap();
    assert_eq!((t.count, ts.physical, ts.logical), (10, 1_700_000, 9));

    let members = e()
        .m(2, e().b(1, b"pd").u(2, 1).b(4, b"http://127.0.0.1:2379"))
        .m(3, e().b(1, b"pd").b(4, b"http://127.0.0.1:2379"));
    let gm = pdpb::GetMembersResponse::decode(members.bytes()).unwrap();
    assert_eq!(gm.leader.unwrap().client_urls[0], "http://127.0.0.1:2379");
    assert_eq!(gm.members[0].member_id, 1);

    let gr = e().m(2, e().u(1, 3)).m(3, peer(4, 5)).m(6, peer(6, 7));
    let r = pdpb::GetRegionResponse::decode(gr.bytes()).unwrap();
    assert_eq!((r.region.unwrap().id, r.leader.unwrap().id), (3, 4));
    assert_eq!(r.pending_peers[0].id, 6);

    let sr = e()
        .m(2, e().u(1, 1))
        .m(3, peer(2, 3))
        .m(4, e().m(1, e().u(1, 1)).m(2, peer(2, 3)));
    let s = pdpb::ScanRegionsResponse::decode(sr.bytes()).unwrap();
    assert_eq!(
        (s.region_metas.len(), s.leaders.len(), s.regions.len()),
        (1, 1, 1)
    );
    assert_eq!(s.regions[0].leader.as_ref().unwrap().store_id, 3);

    let scan_req = e().b(2, b"a").u(3, 5).b(4, b"z");
    let q = pdpb::ScanRegionsRequest::decode(scan_req.bytes()).unwrap();
    assert_eq!((q.limit, &q.end_key[..]), (5, &b"z"[..]));

    let hb = e()
        .m(2, e().u(1, 9))
        .m(3, peer(1, 1))
        .m(4, e().m(1, peer(2, 2)).u(2, 30))
        .m(5, peer(3, 3))
        .u(10, 1024)
        .u(13, 77)
        .u(14, 5);
    let h = pdpb::RegionHeartbeatRequest::decode(hb.bytes()).unwrap();
    assert_eq!((h.region.unwrap().id, h.leader.unwrap().id), (9, 1));
    assert_eq!(
        (h.down_peers[0].down_seconds, h.pending_peers[0].id),
        (30, 3)
    );
    assert_eq!(
        (h.approximate_size, h.approximate_keys, h.term),
        (1024, 77, 5)
    );

    let hr = e()
        .m(2, e().m(1, peer(5, 5)).u(2, 1))
        .m(3, e().m(1, peer(6, 6)))
        .u(4, 9)
        .m(5, epoch(1, 2))
        .m(6, peer(1, 1));
    let r = pdpb::RegionHeartbeatResponse::decode(hr.bytes()).unwrap();
    let cp = r.change_peer.unwrap();
    assert_eq!(cp.change_type(), eraftpb::ConfChangeType::RemoveNode);
    assert_eq!(r.transfer_leader.unwrap().peer.unwrap().id, 6);
    assert_eq!((r.region_id, r.region_epoch.unwrap().version), (9, 2));
    assert_eq!(r.target_peer.unwrap().id, 1);

    let split = e().m(2, e().u(1, 10).u(2, 11).u(2, 12));
    let ids = pdpb::AskBatchSplitResponse::decode(split.bytes()).unwrap();
    assert_eq!(ids.ids[0].new_region_id, 10);
    assert_eq!(ids.ids[0].new_peer_ids, vec![11, 12]);

    let ss = e().m(2, e().u(1, 3).u(4, 20).u(7, 99).u(10, 5));
    let st = pdpb::StoreHeartbeatRequest::decode(ss.bytes()).unwrap();
    let stats = st.stats.unwrap();
    assert_eq!(
        (stats.store_id, stats.region_count, stats.start_time),
        (3, 20, 99)
    );
    assert_eq!(stats.used_size, 5);
}

#[test]
fn eraftpb_matches_raft_rs_numbering() {
    let entry = e().u(1, 2).u(2, 3).u(3, 4).b(4, b"d").u(5, 1).b(6, b"c");
    let msg = e()
        .u(1, 17)
        .u(2, 1)
        .u(3, 2)
        .u(4, 3)
        .u(5, 4)
        .u(6, 5)
        .m(7, entry)
        .u(8, 6)
        .m(
            9,
            e().b(1, b"snap")
                .m(2, e().m(1, e().u(1, 1).u(2, 2)).u(2, 7).u(3, 8)),
        )
        .u(10, 1)
        .u(11, 9)
        .b(12, b"ctx")
        .u(13, 10)
        .u(14, 11)
        .u(15, 12)
        .u(16, 13);
    let m = eraftpb::Message::decode(msg.bytes()).unwrap();
    assert_eq!(m.msg_type(), eraftpb::MessageType::MsgRequestPreVote);
    assert_eq!((m.to, m.from, m.term, m.log_term, m.index), (1, 2, 3, 4, 5));
    let en = &m.entries[0];
    assert_eq!(en.entry_type(), eraftpb::EntryType::EntryConfChangeV2);
    assert_eq!(
        (en.term, en.index, &en.data[..], &en.context[..]),
        (3, 4, &b"d"[..], &b"c"[..])
    );
    assert!(en.sync_log);
    assert_eq!(m.commit, 6);
    let snap = m.snapshot.unwrap();
    let meta = snap.metadata.unwrap();
    assert_eq!(
        (meta.index, meta.term, meta.conf_state.unwrap().learners),
        (7, 8, vec![2])
    );
    assert!(m.reject);
    assert_eq!(
        (m.reject_hint, &m.context[..], m.request_snapshot),
        (9, &b"ctx"[..], 10)
    );
    assert_eq!(
        (m.deprecated_priority, m.commit_term, m.priority),
        (11, 12, 13)
    );

    let cc = e().u(1, 2).m(2, e().u(1, 2).u(2, 9)).b(3, b"x");
    let c = eraftpb::ConfChangeV2::decode(cc.bytes()).unwrap();
    assert_eq!(c.transition(), eraftpb::ConfChangeTransition::Explicit);
    assert_eq!(
        c.changes[0].change_type(),
        eraftpb::ConfChangeType::AddLearnerNode
    );
    assert_eq!(c.changes[0].node_id, 9);

    let hs = eraftpb::HardState::decode(e().u(1, 1).u(2, 2).u(3, 3).bytes()).unwrap();
    assert_eq!((hs.term, hs.vote, hs.commit), (1, 2, 3));
    let cs = e().u(1, 1).u(2, 2).u(3, 3).u(4, 4).u(5, 1);
    let c = eraftpb::ConfState::decode(cs.bytes()).unwrap();
    assert_eq!(
        (
            c.voters_outgoing.clone(),
            c.learners_next.clone(),
            c.auto_leave
        ),
        (vec![3], vec![4], true)
    );
}

#[test]
fn raft_serverpb_states_and_message() {
    let rm = e()
        .u(1, 1)
        .m(2, peer(2, 3))
        .m(3, peer(4, 5))
        .m(4, e().u(1, 3))
        .m(5, epoch(6, 7))
        .u(6, 1)
        .b(7, b"a")
        .b(8, b"b");
    let m = raft_serverpb::RaftMessage::decode(rm.bytes()).unwrap();
    assert_eq!(
        (
            m.region_id,
            m.from_peer.unwrap().id,
            m.to_peer.unwrap().store_id
        ),
        (1, 2, 5)
    );
    assert_eq!(
        m.message.unwrap().msg_type(),
        eraftpb::MessageType::MsgAppend
    );
    assert_eq!(m.region_epoch.unwrap().version, 7);
    assert!(m.is_tombstone);
    assert_eq!((&m.start_key[..], &m.end_key[..]), (&b"a"[..], &b"b"[..]));

    let rls = e().m(1, e().u(1, 5).u(2, 1).u(3, 9)).u(2, 10);
    let r = raft_serverpb::RaftLocalState::decode(rls.bytes()).unwrap();
    assert_eq!((r.hard_state.unwrap().commit, r.last_index), (9, 10));

    let ras = e().u(1, 9).m(2, e().u(1, 5).u(2, 5)).u(4, 9).u(5, 2);
    let a = raft_serverpb::RaftApplyState::decode(ras.bytes()).unwrap();
    assert_eq!(
        (
            a.applied_index,
            a.truncated_state.unwrap().term,
            a.commit_term
        ),
        (9, 5, 2)
    );

    let rgs = e().u(1, 2).m(2, e().u(1, 3));
    let g = raft_serverpb::RegionLocalState::decode(rgs.bytes()).unwrap();
    assert_eq!(g.state(), raft_serverpb::PeerState::Tombstone);
    assert_eq!(g.region.unwrap().id, 3);

    let ident = raft_serverpb::StoreIdent::decode(e().u(1, 1).u(2, 2).bytes()).unwrap();
    assert_eq!((ident.cluster_id, ident.store_id), (1, 2));

    let chunk = e().m(1, e().u(1, 3)).b(2, b"payload");
    let c = raft_serverpb::SnapshotChunk::decode(chunk.bytes()).unwrap();
    assert_eq!(
        (c.message.unwrap().region_id, &c.data[..]),
        (3, &b"payload"[..])
    );
}

#[test]
fn raft_cmdpb_commands() {
    let req = e()
        .m(1, e().u(1, 1).m(2, peer(2, 3)).m(5, epoch(4, 5)).u(6, 6))
        .m(2, e().u(1, 3).m(4, e().b(1, b"lock").b(2, b"k").b(3, b"v")))
        .m(
            3,
            e().u(1, 10)
                .m(10, e().m(1, e().b(1, b"s").u(2, 7).u(3, 8)).u(2, 1)),
        );
    let r = raft_cmdpb::RaftCmdRequest::decode(req.bytes()).unwrap();
    let h = r.header.unwrap();
    assert_eq!(
        (
            h.region_id,
            h.peer.unwrap().id,
            h.region_epoch.unwrap().version,
            h.term
        ),
        (1, 2, 5, 6)
    );
    assert_eq!(r.requests[0].cmd_type(), raft_cmdpb::CmdType::Put);
    assert_eq!(r.requests[0].put.as_ref().unwrap().cf, "lock");
    let admin = r.admin_request.unwrap();
    assert_eq!(admin.cmd_type(), raft_cmdpb::AdminCmdType::BatchSplit);
    let splits = admin.splits.unwrap();
    assert!(splits.right_derive);
    assert_eq!(
        (
            splits.requests[0].new_region_id,
            splits.requests[0].new_peer_ids.clone()
        ),
        (7, vec![8])
    );

    assert_eq!(raft_cmdpb::AdminCmdType::ChangePeer as i32, 1);
    assert_eq!(raft_cmdpb::AdminCmdType::CompactLog as i32, 3);
    assert_eq!(raft_cmdpb::AdminCmdType::TransferLeader as i32, 4);
    assert_eq!(raft_cmdpb::AdminCmdType::ChangePeerV2 as i32, 11);
    assert_eq!(raft_cmdpb::CmdType::Snap as i32, 5);
    assert_eq!(raft_cmdpb::CmdType::DeleteRange as i32, 7);

    let resp = e()
        .m(1, e().m(1, e().m(7, e())).u(3, 9))
        .m(3, e().u(1, 1).m(2, e().m(1, e().u(1, 4))));
    let r = raft_cmdpb::RaftCmdResponse::decode(resp.bytes()).unwrap();
    let h = r.header.unwrap();
    assert!(h.error.unwrap().stale_command.is_some());
    assert_eq!(h.current_term, 9);
    assert_eq!(
        r.admin_response
            .unwrap()
            .change_peer
            .unwrap()
            .region
            .unwrap()
            .id,
        4
    );
}
