//! `tinykv-ctl cluster members|stores|regions|region KEY` and `tinykv-ctl tso`: what the
//! scheduler knows, asked over `pdpb.PD` (so they work against any PD-compatible scheduler).

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use client::{PdClient, RegionWithLeader};
use proto::pdpb::pd_client::PdClient as PdRpc;
use proto::{metapb, pdpb};
use serde_json::{json, Value as Json};
use tonic::transport::Endpoint;

use crate::cli::ClusterCommand;
use crate::ctx::Ctx;
use crate::errors::{Error, Result};
use crate::format::{count, human_bytes, table, Codec, Output};

/// Runs one cluster command.
pub async fn run(ctx: &Ctx, cmd: ClusterCommand) -> Result<Output> {
    let pd = ctx.pd().await?;
    match cmd {
        ClusterCommand::Members => Ok(members_output(&pd.get_members().await?)),
        ClusterCommand::Stores => {
            let stores = pd.get_all_stores().await?;
            let regions = pd.scan_regions(b"", b"", 0).await?;
            let stats = store_stats(&pd, ctx, stores.iter().map(|s| s.id)).await?;
            Ok(stores_output(&stores, &stats, &regions))
        }
        ClusterCommand::Regions { limit, txn } => {
            let limit = i32::try_from(limit).unwrap_or(i32::MAX);
            let regions = pd.scan_regions(b"", b"", limit).await?;
            Ok(regions_output(ctx.codec, &regions, txn))
        }
        ClusterCommand::Region { key, txn } => {
            let key = ctx.codec.parse("key", &key)?;
            // Transactional keys are indexed memcomparable-encoded.
            let lookup = if txn {
                client::codec::encode_bytes(&key)
            } else {
                key
            };
            let region = pd.get_region(&lookup).await?;
            let mut out = regions_output(ctx.codec, std::slice::from_ref(&region), txn);
            out.json = out.json["regions"][0].take();
            Ok(out)
        }
    }
}

/// Runs `tso`.
pub async fn tso(ctx: &Ctx) -> Result<Output> {
    let ts = ctx.pd().await?.get_timestamp().await?;
    Ok(tso_output(ts))
}

fn tso_output(ts: client::Timestamp) -> Output {
    let time = u64::try_from(ts.physical)
        .ok()
        .map(|ms| {
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        })
        .unwrap_or_default();
    let mut t = table(["TSO", "PHYSICAL (MS)", "LOGICAL", "TIME"]);
    t.add_row([
        ts.version().to_string(),
        ts.physical.to_string(),
        ts.logical.to_string(),
        time.clone(),
    ]);
    Output::ok(
        t.to_string(),
        json!({"tso": ts.version(), "physical": ts.physical, "logical": ts.logical, "time": time}),
    )
}

fn members_output(resp: &pdpb::GetMembersResponse) -> Output {
    let leader = resp.leader.as_ref().map(|m| m.member_id);
    let mut t = table(["NAME", "MEMBER ID", "CLIENT URLS", "LEADER"]);
    let mut rows = Vec::new();
    for m in &resp.members {
        let is_leader = Some(m.member_id) == leader;
        t.add_row([
            m.name.clone(),
            m.member_id.to_string(),
            m.client_urls.join(", "),
            if is_leader { "yes" } else { "" }.to_string(),
        ]);
        rows.push(json!({
            "name": m.name,
            "member_id": m.member_id,
            "client_urls": m.client_urls,
            "peer_urls": m.peer_urls,
            "leader": is_leader,
        }));
    }
    Output::ok(t.to_string(), json!({"leader": leader, "members": rows}))
}

/// The last heartbeat's statistics of each store, asked of the scheduler's leader directly:
/// the client library keeps only store addresses.
async fn store_stats(
    pd: &PdClient,
    ctx: &Ctx,
    ids: impl Iterator<Item = u64>,
) -> Result<HashMap<u64, pdpb::StoreStats>> {
    let addr = pd.leader_url();
    let err = |rpc: &'static str, message: String| Error::Pd {
        rpc,
        addr: addr.clone(),
        message,
    };
    let channel = Endpoint::from_shared(addr.clone())
        .map_err(|e| err("connect", e.to_string()))?
        .connect_timeout(ctx.config.connect_timeout)
        .timeout(ctx.config.timeout)
        .connect()
        .await
        .map_err(|e| err("connect", e.to_string()))?;
    let mut rpc = PdRpc::new(channel);
    let header = pdpb::RequestHeader {
        cluster_id: pd.cluster_id(),
        ..Default::default()
    };
    let mut stats = HashMap::new();
    for id in ids {
        let resp = rpc
            .get_store(pdpb::GetStoreRequest {
                header: Some(header),
                store_id: id,
            })
            .await
            .map_err(|s| err("GetStore", s.message().to_string()))?
            .into_inner();
        if let Some(e) = resp.header.and_then(|h| h.error) {
            if e.r#type != pdpb::ErrorType::Ok as i32 {
                return Err(err("GetStore", e.message));
            }
        }
        stats.insert(id, resp.stats.unwrap_or_default());
    }
    Ok(stats)
}

fn state_name(state: i32) -> &'static str {
    metapb::StoreState::try_from(state)
        .map(|s| s.as_str_name())
        .unwrap_or("Unknown")
}

fn stores_output(
    stores: &[metapb::Store],
    stats: &HashMap<u64, pdpb::StoreStats>,
    regions: &[RegionWithLeader],
) -> Output {
    // Region and leader counts from the region list: the same snapshot for every store.
    let mut region_count: HashMap<u64, usize> = HashMap::new();
    let mut leader_count: HashMap<u64, usize> = HashMap::new();
    for r in regions {
        for p in &r.region.peers {
            *region_count.entry(p.store_id).or_default() += 1;
        }
        if let Some(l) = &r.leader {
            *leader_count.entry(l.store_id).or_default() += 1;
        }
    }
    let mut sorted: Vec<&metapb::Store> = stores.iter().collect();
    sorted.sort_by_key(|s| s.id);
    let mut t = table([
        "ID",
        "ADDRESS",
        "STATE",
        "REGIONS",
        "LEADERS",
        "CAPACITY",
        "AVAILABLE",
        "STARTED",
    ]);
    let mut rows = Vec::new();
    for s in sorted {
        let st = stats.get(&s.id).cloned().unwrap_or_default();
        let regions = region_count.get(&s.id).copied().unwrap_or(0);
        let leaders = leader_count.get(&s.id).copied().unwrap_or(0);
        // A zero start time means no heartbeat has arrived since the scheduler started.
        let started = (st.start_time != 0).then(|| {
            humantime::format_rfc3339_seconds(
                UNIX_EPOCH + Duration::from_secs(st.start_time.into()),
            )
            .to_string()
        });
        t.add_row([
            s.id.to_string(),
            s.address.clone(),
            state_name(s.state).to_string(),
            regions.to_string(),
            leaders.to_string(),
            human_bytes(st.capacity),
            human_bytes(st.available),
            started.clone().unwrap_or_else(|| "-".into()),
        ]);
        rows.push(json!({
            "id": s.id,
            "address": s.address,
            "state": state_name(s.state),
            "region_count": regions,
            "leader_count": leaders,
            "capacity": st.capacity,
            "available": st.available,
            "start_time": started,
        }));
    }
    let text = format!("{t}\n{}", count(rows.len(), "store", "stores"));
    Output::ok(text, json!({"stores": rows}))
}

/// A region bound for display: decoded when the cluster's keys are transactional and the
/// bound decodes; empty bounds are the ends of the key space.
fn bound(codec: Codec, raw: &[u8], txn: bool, open: &str) -> (String, Json) {
    if raw.is_empty() {
        return (open.to_string(), Json::String(String::new()));
    }
    if txn {
        if let Ok(key) = client::codec::decode_bytes(raw) {
            return (codec.text(&key), codec.json(&key));
        }
        // A raw-mode split key in a transactional view: show it as it is, marked.
        return (format!("{} (raw)", codec.text(raw)), codec.json(raw));
    }
    (codec.text(raw), codec.json(raw))
}

fn regions_output(codec: Codec, regions: &[RegionWithLeader], txn: bool) -> Output {
    let mut t = table([
        "ID",
        "START",
        "END",
        "VERSION",
        "CONF VER",
        "STORES (* leader)",
    ]);
    let mut rows = Vec::new();
    for r in regions {
        let region = &r.region;
        let epoch = region.region_epoch.unwrap_or_default();
        let (start, start_json) = bound(codec, &region.start_key, txn, "-inf");
        let (end, end_json) = bound(codec, &region.end_key, txn, "+inf");
        let leader = r.leader.as_ref().map(|l| l.id);
        let stores: Vec<String> = region
            .peers
            .iter()
            .map(|p| {
                let star = if Some(p.id) == leader { "*" } else { "" };
                format!("{}{star}", p.store_id)
            })
            .collect();
        t.add_row([
            region.id.to_string(),
            start,
            end,
            epoch.version.to_string(),
            epoch.conf_ver.to_string(),
            stores.join(", "),
        ]);
        rows.push(json!({
            "id": region.id,
            "start_key": start_json,
            "end_key": end_json,
            "version": epoch.version,
            "conf_ver": epoch.conf_ver,
            "peers": region.peers.iter().map(|p| json!({"id": p.id, "store_id": p.store_id})).collect::<Vec<_>>(),
            "leader": r.leader.as_ref().map(|l| json!({"id": l.id, "store_id": l.store_id})),
        }));
    }
    let text = format!("{t}\n{}", count(rows.len(), "region", "regions"));
    Output::ok(text, json!({"regions": rows}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: u64, store_id: u64) -> metapb::Peer {
        metapb::Peer {
            id,
            store_id,
            ..Default::default()
        }
    }

    fn region(id: u64, start: &[u8], end: &[u8], leader_store: Option<u64>) -> RegionWithLeader {
        let peers = vec![
            peer(id * 10 + 1, 1),
            peer(id * 10 + 2, 2),
            peer(id * 10 + 3, 3),
        ];
        let leader = leader_store.map(|s| peers[(s - 1) as usize]);
        RegionWithLeader {
            region: metapb::Region {
                id,
                start_key: start.to_vec(),
                end_key: end.to_vec(),
                region_epoch: Some(metapb::RegionEpoch {
                    conf_ver: 3,
                    version: id,
                }),
                peers,
            },
            leader,
        }
    }

    #[test]
    fn regions_show_bounds_and_the_leader() {
        let regions = vec![region(1, b"", b"m", Some(2)), region(2, b"m", b"", None)];
        let out = regions_output(Codec::default(), &regions, false);
        assert!(
            out.text.contains("| 1  | -inf  | m    | 1 "),
            "{}",
            out.text
        );
        assert!(out.text.contains("1, 2*, 3"), "{}", out.text);
        assert!(out.text.ends_with("(2 regions)"));
        assert_eq!(
            out.json["regions"][0]["leader"],
            json!({"id": 12, "store_id": 2})
        );
        assert_eq!(out.json["regions"][1]["leader"], Json::Null);
        assert_eq!(out.json["regions"][1]["start_key"], json!("m"));
    }

    #[test]
    fn transactional_bounds_are_decoded() {
        let enc = client::codec::encode_bytes(b"user/7");
        let regions = vec![region(1, &enc, b"raw-split", Some(1))];
        let out = regions_output(Codec::default(), &regions, true);
        assert!(out.text.contains("| user/7 "), "{}", out.text);
        assert!(out.text.contains("raw-split (raw)"), "{}", out.text);
        assert_eq!(out.json["regions"][0]["start_key"], json!("user/7"));
    }

    #[test]
    fn stores_count_regions_and_leaders() {
        let stores = vec![
            metapb::Store {
                id: 2,
                address: "127.0.0.1:20161".into(),
                ..Default::default()
            },
            metapb::Store {
                id: 1,
                address: "127.0.0.1:20160".into(),
                state: metapb::StoreState::Offline as i32,
                ..Default::default()
            },
        ];
        let mut stats = HashMap::new();
        stats.insert(
            1,
            pdpb::StoreStats {
                capacity: 10 << 30,
                available: 5 << 30,
                start_time: 1_700_000_000,
                ..Default::default()
            },
        );
        let regions = vec![region(1, b"", b"m", Some(1)), region(2, b"m", b"", Some(1))];
        let out = stores_output(&stores, &stats, &regions);
        let rows = &out.json["stores"];
        assert_eq!(rows[0]["id"], json!(1), "sorted by id");
        assert_eq!(rows[0]["state"], json!("Offline"));
        assert_eq!(rows[0]["leader_count"], json!(2));
        assert_eq!(rows[1]["leader_count"], json!(0));
        assert_eq!(rows[1]["region_count"], json!(2));
        assert_eq!(rows[0]["start_time"], json!("2023-11-14T22:13:20Z"));
        assert_eq!(rows[1]["start_time"], Json::Null);
        assert!(
            out.text.contains("10.0 GiB") && out.text.contains("(2 stores)"),
            "{}",
            out.text
        );
    }

    #[test]
    fn members_mark_the_leader() {
        let m = |id: u64, name: &str| pdpb::Member {
            name: name.into(),
            member_id: id,
            client_urls: vec![format!("http://127.0.0.1:{id}")],
            ..Default::default()
        };
        let resp = pdpb::GetMembersResponse {
            members: vec![m(1, "a"), m(2, "b")],
            leader: Some(m(2, "b")),
            ..Default::default()
        };
        let out = members_output(&resp);
        assert_eq!(out.json["leader"], json!(2));
        assert_eq!(out.json["members"][1]["leader"], json!(true));
        assert!(
            out.text
                .contains("| b    | 2         | http://127.0.0.1:2 | yes    |"),
            "{}",
            out.text
        );
    }

    #[test]
    fn timestamps_show_their_parts() {
        let ts = client::Timestamp {
            physical: 1_700_000_000_123,
            logical: 5,
        };
        let out = tso_output(ts);
        assert_eq!(out.json["tso"], json!(ts.version()));
        assert_eq!(out.json["time"], json!("2023-11-14T22:13:20.123Z"));
        assert!(out.text.contains(&ts.version().to_string()));
    }
}
