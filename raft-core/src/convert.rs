//! Lossless conversion between raft-rs's rust-protobuf types (`raft::eraftpb`) and our prost
//! types (`proto::eraftpb`).
//!
//! Raft messages cross gRPC inside `raft_serverpb.RaftMessage.message`, a prost
//! `proto::eraftpb::Message`, while raft-rs only speaks its own rust-protobuf types. Both are
//! generated from `.proto` files with identical numbering, so encoding with one and decoding
//! with the other would work, but a field-by-field copy avoids a serialisation round trip on the
//! hottest path of the store (every append and heartbeat). Byte fields move without copying where
//! the buffers allow it.
//!
//! raft → prost is infallible ([`IntoProto`]). prost → raft is fallible ([`TryIntoRaft`]):
//! a prost message decoded from the wire may carry an enum value raft-rs does not know, which is
//! reported as [`Error::InvalidMessage`] instead of being silently mapped to a default.

use protobuf::{ProtobufEnum, RepeatedField, SingularPtrField};
use raft::eraftpb as rpb;

use crate::errors::{Error, Result};
use proto::eraftpb as ppb;

/// Converts a raft-rs (rust-protobuf) value into its prost twin.
pub trait IntoProto {
    /// The prost type.
    type Proto;
    /// Converts, moving byte buffers where possible.
    fn into_proto(self) -> Self::Proto;
}

/// Converts a prost value into its raft-rs (rust-protobuf) twin.
pub trait TryIntoRaft {
    /// The raft-rs type.
    type Raft;
    /// Converts; fails on enum values raft-rs does not define.
    fn try_into_raft(self) -> Result<Self::Raft>;
}

fn optional<T: TryIntoRaft>(v: Option<T>) -> Result<SingularPtrField<T::Raft>> {
    Ok(SingularPtrField::from_option(
        v.map(TryIntoRaft::try_into_raft).transpose()?,
    ))
}

fn repeated<T: TryIntoRaft>(v: Vec<T>) -> Result<RepeatedField<T::Raft>> {
    Ok(RepeatedField::from_vec(
        v.into_iter()
            .map(TryIntoRaft::try_into_raft)
            .collect::<Result<Vec<_>>>()?,
    ))
}

fn enum_from_i32<E: ProtobufEnum>(what: &str, v: i32) -> Result<E> {
    E::from_i32(v).ok_or_else(|| Error::InvalidMessage(format!("unknown {what} {v}")))
}

impl IntoProto for rpb::Entry {
    type Proto = ppb::Entry;
    fn into_proto(self) -> ppb::Entry {
        ppb::Entry {
            entry_type: self.entry_type.value(),
            term: self.term,
            index: self.index,
            data: self.data.into(),
            context: self.context.into(),
            sync_log: self.sync_log,
        }
    }
}

impl TryIntoRaft for ppb::Entry {
    type Raft = rpb::Entry;
    fn try_into_raft(self) -> Result<rpb::Entry> {
        Ok(rpb::Entry {
            entry_type: enum_from_i32("entry type", self.entry_type)?,
            term: self.term,
            index: self.index,
            data: self.data.into(),
            context: self.context.into(),
            sync_log: self.sync_log,
            ..Default::default()
        })
    }
}

impl IntoProto for rpb::ConfState {
    type Proto = ppb::ConfState;
    fn into_proto(self) -> ppb::ConfState {
        ppb::ConfState {
            voters: self.voters,
            learners: self.learners,
            voters_outgoing: self.voters_outgoing,
            learners_next: self.learners_next,
            auto_leave: self.auto_leave,
        }
    }
}

impl TryIntoRaft for ppb::ConfState {
    type Raft = rpb::ConfState;
    fn try_into_raft(self) -> Result<rpb::ConfState> {
        Ok(rpb::ConfState {
            voters: self.voters,
            learners: self.learners,
            voters_outgoing: self.voters_outgoing,
            learners_next: self.learners_next,
            auto_leave: self.auto_leave,
            ..Default::default()
        })
    }
}

impl IntoProto for rpb::SnapshotMetadata {
    type Proto = ppb::SnapshotMetadata;
    fn into_proto(self) -> ppb::SnapshotMetadata {
        ppb::SnapshotMetadata {
            conf_state: self.conf_state.into_option().map(IntoProto::into_proto),
            index: self.index,
            term: self.term,
        }
    }
}

impl TryIntoRaft for ppb::SnapshotMetadata {
    type Raft = rpb::SnapshotMetadata;
    fn try_into_raft(self) -> Result<rpb::SnapshotMetadata> {
        Ok(rpb::SnapshotMetadata {
            conf_state: optional(self.conf_state)?,
            index: self.index,
            term: self.term,
            ..Default::default()
        })
    }
}

impl IntoProto for rpb::Snapshot {
    type Proto = ppb::Snapshot;
    fn into_proto(self) -> ppb::Snapshot {
        ppb::Snapshot {
            data: self.data.into(),
            metadata: self.metadata.into_option().map(IntoProto::into_proto),
        }
    }
}

impl TryIntoRaft for ppb::Snapshot {
    type Raft = rpb::Snapshot;
    fn try_into_raft(self) -> Result<rpb::Snapshot> {
        Ok(rpb::Snapshot {
            data: self.data.into(),
            metadata: optional(self.metadata)?,
            ..Default::default()
        })
    }
}

impl IntoProto for rpb::Message {
    type Proto = ppb::Message;
    fn into_proto(self) -> ppb::Message {
        ppb::Message {
            msg_type: self.msg_type.value(),
            to: self.to,
            from: self.from,
            term: self.term,
            log_term: self.log_term,
            index: self.index,
            entries: self
                .entries
                .into_vec()
                .into_iter()
                .map(IntoProto::into_proto)
                .collect(),
            commit: self.commit,
            commit_term: self.commit_term,
            snapshot: self.snapshot.into_option().map(IntoProto::into_proto),
            request_snapshot: self.request_snapshot,
            reject: self.reject,
            reject_hint: self.reject_hint,
            context: self.context.into(),
            deprecated_priority: self.deprecated_priority,
            priority: self.priority,
        }
    }
}

impl TryIntoRaft for ppb::Message {
    type Raft = rpb::Message;
    fn try_into_raft(self) -> Result<rpb::Message> {
        Ok(rpb::Message {
            msg_type: enum_from_i32("message type", self.msg_type)?,
            to: self.to,
            from: self.from,
            term: self.term,
            log_term: self.log_term,
            index: self.index,
            entries: repeated(self.entries)?,
            commit: self.commit,
            commit_term: self.commit_term,
            snapshot: optional(self.snapshot)?,
            request_snapshot: self.request_snapshot,
            reject: self.reject,
            reject_hint: self.reject_hint,
            context: self.context.into(),
            deprecated_priority: self.deprecated_priority,
            priority: self.priority,
            ..Default::default()
        })
    }
}

impl IntoProto for rpb::HardState {
    type Proto = ppb::HardState;
    fn into_proto(self) -> ppb::HardState {
        ppb::HardState {
            term: self.term,
            vote: self.vote,
            commit: self.commit,
        }
    }
}

impl TryIntoRaft for ppb::HardState {
    type Raft = rpb::HardState;
    fn try_into_raft(self) -> Result<rpb::HardState> {
        Ok(rpb::HardState {
            term: self.term,
            vote: self.vote,
            commit: self.commit,
            ..Default::default()
        })
    }
}

impl IntoProto for rpb::ConfChange {
    type Proto = ppb::ConfChange;
    fn into_proto(self) -> ppb::ConfChange {
        ppb::ConfChange {
            id: self.id,
            change_type: self.change_type.value(),
            node_id: self.node_id,
            context: self.context.into(),
        }
    }
}

impl TryIntoRaft for ppb::ConfChange {
    type Raft = rpb::ConfChange;
    fn try_into_raft(self) -> Result<rpb::ConfChange> {
        Ok(rpb::ConfChange {
            id: self.id,
            change_type: enum_from_i32("conf change type", self.change_type)?,
            node_id: self.node_id,
            context: self.context.into(),
            ..Default::default()
        })
    }
}

impl IntoProto for rpb::ConfChangeSingle {
    type Proto = ppb::ConfChangeSingle;
    fn into_proto(self) -> ppb::ConfChangeSingle {
        ppb::ConfChangeSingle {
            change_type: self.change_type.value(),
            node_id: self.node_id,
        }
    }
}

impl TryIntoRaft for ppb::ConfChangeSingle {
    type Raft = rpb::ConfChangeSingle;
    fn try_into_raft(self) -> Result<rpb::ConfChangeSingle> {
        Ok(rpb::ConfChangeSingle {
            change_type: enum_from_i32("conf change type", self.change_type)?,
            node_id: self.node_id,
            ..Default::default()
        })
    }
}

impl IntoProto for rpb::ConfChangeV2 {
    type Proto = ppb::ConfChangeV2;
    fn into_proto(self) -> ppb::ConfChangeV2 {
        ppb::ConfChangeV2 {
            transition: self.transition.value(),
            changes: self
                .changes
                .into_vec()
                .into_iter()
                .map(IntoProto::into_proto)
                .collect(),
            context: self.context.into(),
        }
    }
}

impl TryIntoRaft for ppb::ConfChangeV2 {
    type Raft = rpb::ConfChangeV2;
    fn try_into_raft(self) -> Result<rpb::ConfChangeV2> {
        Ok(rpb::ConfChangeV2 {
            transition: enum_from_i32("conf change transition", self.transition)?,
            changes: repeated(self.changes)?,
            context: self.context.into(),
            ..Default::default()
        })
    }
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;
    use prost::Message as _;
    use protobuf::Message as _;

    use super::*;

    fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
        vec(any::<u8>(), 0..16)
    }

    fn arb_conf_state() -> impl Strategy<Value = rpb::ConfState> {
        (
            vec(any::<u64>(), 0..4),
            vec(any::<u64>(), 0..4),
            vec(any::<u64>(), 0..4),
            vec(any::<u64>(), 0..4),
            any::<bool>(),
        )
            .prop_map(|(v, l, vo, ln, auto)| {
                let mut cs = rpb::ConfState::default();
                cs.voters = v;
                cs.learners = l;
                cs.voters_outgoing = vo;
                cs.learners_next = ln;
                cs.auto_leave = auto;
                cs
            })
    }

    fn arb_entry() -> impl Strategy<Value = rpb::Entry> {
        (
            0i32..3,
            any::<u64>(),
            any::<u64>(),
            arb_bytes(),
            arb_bytes(),
            any::<bool>(),
        )
            .prop_map(|(t, term, index, data, ctx, sync)| {
                let mut e = rpb::Entry::default();
                e.entry_type = rpb::EntryType::from_i32(t).unwrap();
                e.term = term;
                e.index = index;
                e.data = data.into();
                e.context = ctx.into();
                e.sync_log = sync;
                e
            })
    }

    fn arb_snapshot() -> impl Strategy<Value = Option<rpb::Snapshot>> {
        proptest::option::of(
            (
                arb_bytes(),
                proptest::option::of((
                    proptest::option::of(arb_conf_state()),
                    any::<u64>(),
                    any::<u64>(),
                )),
            )
                .prop_map(|(data, meta)| {
                    let mut s = rpb::Snapshot::default();
                    s.data = data.into();
                    s.metadata = SingularPtrField::from_option(meta.map(|(cs, index, term)| {
                        let mut m = rpb::SnapshotMetadata::default();
                        m.conf_state = SingularPtrField::from_option(cs);
                        m.index = index;
                        m.term = term;
                        m
                    }));
                    s
                }),
        )
    }

    prop_compose! {
        fn arb_message()(
            t in 0i32..19,
            ids in (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
            entries in vec(arb_entry(), 0..4),
            commits in (any::<u64>(), any::<u64>(), any::<u64>()),
            snapshot in arb_snapshot(),
            reject in (any::<bool>(), any::<u64>()),
            context in arb_bytes(),
            prio in (any::<u64>(), any::<i64>()),
        ) -> rpb::Message {
            let mut m = rpb::Message::default();
            m.msg_type = rpb::MessageType::from_i32(t).unwrap();
            (m.to, m.from, m.term, m.log_term, m.index) = ids;
            m.entries = entries.into();
            (m.commit, m.commit_term, m.request_snapshot) = commits;
            m.snapshot = SingularPtrField::from_option(snapshot);
            (m.reject, m.reject_hint) = reject;
            m.context = context.into();
            (m.deprecated_priority, m.priority) = prio;
            m
        }
    }

    proptest! {
        #[test]
        fn message_round_trip_is_lossless(m in arb_message()) {
            let wire = m.write_to_bytes().unwrap();
            let p = m.clone().into_proto();
            // The field-by-field copy agrees with decoding raft-rs's own encoding.
            prop_assert_eq!(&p, &ppb::Message::decode(wire.as_slice()).unwrap());
            let back = p.clone().try_into_raft().unwrap();
            prop_assert_eq!(&back, &m);
            // And prost's encoding decodes back into the same raft-rs message.
            let again = rpb::Message::parse_from_bytes(&p.encode_to_vec()).unwrap();
            prop_assert_eq!(again, m);
        }

        #[test]
        fn conf_changes_round_trip(
            changes in vec((0i32..3, any::<u64>()), 0..4),
            transition in 0i32..3,
            ctx in arb_bytes(),
            v1 in (0i32..3, any::<u64>(), any::<u64>()),
        ) {
            let mut cc = rpb::ConfChangeV2::default();
            cc.transition = rpb::ConfChangeTransition::from_i32(transition).unwrap();
            for (t, id) in changes {
                let mut s = rpb::ConfChangeSingle::default();
                s.change_type = rpb::ConfChangeType::from_i32(t).unwrap();
                s.node_id = id;
                cc.changes.push(s);
            }
            cc.context = ctx.clone().into();
            prop_assert_eq!(cc.clone().into_proto().try_into_raft().unwrap(), cc.clone());
            prop_assert_eq!(
                ppb::ConfChangeV2::decode(cc.write_to_bytes().unwrap().as_slice()).unwrap(),
                cc.into_proto()
            );

            let mut old = rpb::ConfChange::default();
            old.change_type = rpb::ConfChangeType::from_i32(v1.0).unwrap();
            old.id = v1.1;
            old.node_id = v1.2;
            old.context = ctx.into();
            prop_assert_eq!(old.clone().into_proto().try_into_raft().unwrap(), old);
        }

        #[test]
        fn hard_state_round_trips(term in any::<u64>(), vote in any::<u64>(), commit in any::<u64>()) {
            let mut hs = rpb::HardState::default();
            hs.term = term;
            hs.vote = vote;
            hs.commit = commit;
            prop_assert_eq!(hs.clone().into_proto().try_into_raft().unwrap(), hs);
        }
    }

    #[test]
    fn unknown_enum_values_are_errors_not_defaults() {
        let m = ppb::Message {
            msg_type: 99,
            ..Default::default()
        };
        assert!(matches!(m.try_into_raft(), Err(Error::InvalidMessage(_))));
        let m = ppb::Message {
            msg_type: ppb::MessageType::MsgAppend as i32,
            entries: vec![ppb::Entry {
                entry_type: 7,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(matches!(m.try_into_raft(), Err(Error::InvalidMessage(_))));
        let cc = ppb::ConfChangeV2 {
            transition: -1,
            ..Default::default()
        };
        assert!(matches!(cc.try_into_raft(), Err(Error::InvalidMessage(_))));
    }
}
