//! Store and cluster bootstrap: the store identity and the first region.
//!
//! A fresh store writes its `StoreIdent` (cluster id, store id). The first store of a cluster
//! also creates the first region (all keys, one peer on itself): it *prepares* the region
//! (region and raft states plus a prepare marker, in the engines), asks the scheduler to
//! bootstrap the cluster with it, and clears the marker. A crash in between is finished on the
//! next start from the marker; losing the race to another store removes the prepared region.
//! The test harness skips the scheduler round trip with [`prepare_bootstrap_region`].

use proto::metapb::{Region, RegionEpoch};
use proto::raft_serverpb::{PeerState, StoreIdent};
use raft_core::engine::{Engines, Iterable, KvEngine, Mutable, Peekable, CF_DEFAULT};
use raft_core::keys;
use raft_core::storage::state;

use crate::errors::{Error, Result};
use crate::pd_client::PdClient;

/// Writes the store identity into a store's empty engines.
pub fn bootstrap_store(engines: &Engines, cluster_id: u64, store_id: u64) -> Result<()> {
    if store_id == 0 {
        return Err(Error::Other("store id 0 is reserved".into()));
    }
    if let Some(ident) = load_store_ident(engines)? {
        return Err(Error::Other(format!(
            "store already bootstrapped as store {} of cluster {}",
            ident.store_id, ident.cluster_id
        )));
    }
    if !load_regions(engines)?.is_empty() {
        return Err(Error::Other(
            "store is not empty: it already holds regions".into(),
        ));
    }
    let mut wb = engines.kv.write_batch();
    wb.put_msg_cf(
        CF_DEFAULT,
        keys::STORE_IDENT_KEY,
        &StoreIdent {
            cluster_id,
            store_id,
        },
    )?;
    engines.kv.write(&mut wb, true)?;
    tracing::info!(store_id, cluster_id, "bootstrapped store");
    Ok(())
}

/// The store identity, if the store was bootstrapped.
pub fn load_store_ident(engines: &Engines) -> Result<Option<StoreIdent>> {
    Ok(engines.kv.get_msg_cf(CF_DEFAULT, keys::STORE_IDENT_KEY)?)
}

fn validate_first_region(region: &Region) -> Result<()> {
    if region.id == 0 || region.peers.is_empty() {
        return Err(Error::Other(
            "the first region needs an id and at least one peer".into(),
        ));
    }
    if region.peers.iter().any(|p| p.id == 0 || p.store_id == 0) {
        return Err(Error::Other(
            "every peer of the first region needs an id and a store".into(),
        ));
    }
    Ok(())
}

/// Writes `region` with its initial states (log truncated at index 5 term 5, applied and
/// committed there) into a store's engines, so the store starts with it. Both writes are synced.
pub fn prepare_bootstrap_region(engines: &Engines, region: &Region) -> Result<()> {
    validate_first_region(region)?;
    if state::load_region_state(&engines.kv, region.id)?.is_some() {
        return Err(Error::Other(format!("region {} already exists", region.id)));
    }
    let (mut kv_wb, mut raft_wb) = (engines.kv.write_batch(), engines.raft.write_batch());
    state::write_initial_states(&mut kv_wb, &mut raft_wb, region)?;
    // Raft first: an apply/region state without raft state would be corruption, while a
    // raft state alone is ignored (no region state points at it).
    engines.raft.write(&mut raft_wb, true)?;
    engines.kv.write(&mut kv_wb, true)?;
    Ok(())
}

/// Every region state in the kv engine (live and tombstones).
pub(crate) fn load_regions(engines: &Engines) -> Result<Vec<(Region, PeerState)>> {
    let (start, end) = keys::region_state_range();
    let mut out = vec![];
    let mut decode_err = None;
    engines
        .kv
        .scan_cf(CF_DEFAULT, &start, &end, false, |k, v| {
            if keys::region_id_from_state_key(k).is_none() {
                return Ok(true);
            }
            match <proto::raft_serverpb::RegionLocalState as prost::Message>::decode(v) {
                Ok(s) => {
                    let st = s.state();
                    if let Some(r) = s.region {
                        out.push((r, st));
                    }
                    Ok(true)
                }
                Err(e) => {
                    decode_err = Some(e);
                    Ok(false)
                }
            }
        })?;
    if let Some(e) = decode_err {
        return Err(raft_core::Error::from(e).into());
    }
    Ok(out)
}

/// Bootstraps the cluster through `pd` if nobody did yet and this store holds no region
/// (see the module docs). Returns the first region if this store created it.
pub(crate) fn maybe_bootstrap_cluster<P: PdClient + ?Sized>(
    engines: &Engines,
    store: &proto::metapb::Store,
    pd: &P,
) -> Result<Option<Region>> {
    let prepared: Option<Region> = engines
        .kv
        .get_msg_cf(CF_DEFAULT, keys::PREPARE_BOOTSTRAP_KEY)?;
    let region = match prepared {
        Some(r) => {
            // A crash may have come between the marker and the region's states.
            if state::load_region_state(&engines.kv, r.id)?.is_none() {
                prepare_bootstrap_region(engines, &r)?;
            }
            r
        }
        None => {
            if pd.is_cluster_bootstrapped()? || !load_regions(engines)?.is_empty() {
                return Ok(None);
            }
            let region = Region {
                id: pd.alloc_id()?,
                start_key: vec![],
                end_key: vec![],
                region_epoch: Some(RegionEpoch {
                    conf_ver: 1,
                    version: 1,
                }),
                peers: vec![proto::metapb::Peer {
                    id: pd.alloc_id()?,
                    store_id: store.id,
                    ..Default::default()
                }],
            };
            let mut wb = engines.kv.write_batch();
            wb.put_msg_cf(CF_DEFAULT, keys::PREPARE_BOOTSTRAP_KEY, &region)?;
            engines.kv.write(&mut wb, true)?;
            prepare_bootstrap_region(engines, &region)?;
            region
        }
    };
    let won = match pd.bootstrap_cluster(store.clone(), region.clone()) {
        Ok(()) => true,
        Err(e) => {
            // Lost the race, or we won before a crash and the scheduler already has it.
            let ours = pd
                .get_region_by_id(region.id)
                .ok()
                .flatten()
                .is_some_and(|(r, _)| r.id == region.id);
            if !ours {
                tracing::info!(region_id = region.id, error = %e, "cluster bootstrapped by another store");
            }
            ours
        }
    };
    let mut wb = engines.kv.write_batch();
    wb.delete_cf(CF_DEFAULT, keys::PREPARE_BOOTSTRAP_KEY)?;
    if !won {
        let (mut kv_wb, mut raft_wb) = (engines.kv.write_batch(), engines.raft.write_batch());
        kv_wb.delete_cf(CF_DEFAULT, &keys::region_state_key(region.id))?;
        kv_wb.delete_cf(CF_DEFAULT, &keys::apply_state_key(region.id))?;
        raft_wb.delete_cf(CF_DEFAULT, &keys::raft_state_key(region.id))?;
        engines.kv.write(&mut kv_wb, true)?;
        engines.raft.write(&mut raft_wb, true)?;
    }
    engines.kv.write(&mut wb, true)?;
    if won {
        tracing::info!(
            region_id = region.id,
            store_id = store.id,
            "bootstrapped cluster"
        );
        Ok(Some(region))
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use raft_core::config::EngineConfig;

    use super::*;

    fn engines() -> (tempfile::TempDir, Engines) {
        let dir = tempfile::tempdir().unwrap();
        let e = Engines::open(dir.path(), &EngineConfig::new_test_config()).unwrap();
        (dir, e)
    }

    fn region(id: u64) -> Region {
        Region {
            id,
            region_epoch: Some(RegionEpoch {
                conf_ver: 1,
                version: 1,
            }),
            peers: (1..=3)
                .map(|i| proto::metapb::Peer {
                    id: i,
                    store_id: i,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn store_ident_round_trip_and_refusals() {
        let (_d, e) = engines();
        assert_eq!(load_store_ident(&e).unwrap(), None);
        assert!(bootstrap_store(&e, 1, 0).is_err());
        bootstrap_store(&e, 7, 3).unwrap();
        let ident = load_store_ident(&e).unwrap().unwrap();
        assert_eq!((ident.cluster_id, ident.store_id), (7, 3));
        assert!(bootstrap_store(&e, 7, 3).is_err());
    }

    #[test]
    fn prepared_region_has_the_tinykv_initial_states() {
        let (_d, e) = engines();
        prepare_bootstrap_region(&e, &region(1)).unwrap();
        let rs = state::load_raft_state(&e.raft, 1).unwrap().unwrap();
        assert_eq!(rs.last_index, 5);
        assert_eq!(rs.hard_state.unwrap().term, 5);
        let apply = state::load_apply_state(&e.kv, 1).unwrap().unwrap();
        assert_eq!(apply.applied_index, 5);
        let t = apply.truncated_state.unwrap();
        assert_eq!((t.index, t.term), (5, 5));
        let regions = load_regions(&e).unwrap();
        assert_eq!(regions, vec![(region(1), PeerState::Normal)]);
        // Twice, or a region without peers, is refused; a non-empty store cannot be bootstrapped.
        assert!(prepare_bootstrap_region(&e, &region(1)).is_err());
        assert!(prepare_bootstrap_region(
            &e,
            &Region {
                id: 2,
                ..Default::default()
            }
        )
        .is_err());
        assert!(bootstrap_store(&e, 1, 1).is_err());
    }
}
