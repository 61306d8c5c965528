//! Unary RPCs about regions: lookups, scans, split ids, split reports, operators.

use proto::pdpb::*;

use super::PdService;
use crate::cluster::Outcome;
use crate::core::RegionInfo;
use crate::errors::{Error, Result};

fn region_response(r: &RegionInfo) -> GetRegionResponse {
    GetRegionResponse {
        header: None,
        region: Some(r.meta.clone()),
        leader: r.leader,
        down_peers: r.down_peers.clone(),
        pending_peers: r.pending_peers.clone(),
    }
}

pub fn get_region(svc: &PdService, req: GetRegionRequest) -> Result<GetRegionResponse> {
    Ok(region_response(
        &*svc.cluster.region_by_key(&req.region_key)?,
    ))
}

pub fn get_prev_region(svc: &PdService, req: GetRegionRequest) -> Result<GetRegionResponse> {
    Ok(region_response(&*svc.cluster.prev_region(&req.region_key)?))
}

pub fn get_region_by_id(svc: &PdService, req: GetRegionByIdRequest) -> Result<GetRegionResponse> {
    Ok(region_response(&*svc.cluster.region_by_id(req.region_id)?))
}

pub fn scan_regions(svc: &PdService, req: ScanRegionsRequest) -> Result<ScanRegionsResponse> {
    let limit = usize::try_from(req.limit).unwrap_or(0);
    let regions = svc
        .cluster
        .scan_regions(&req.start_key, &req.end_key, limit)?;
    // Both layouts: `regions` for current clients, the parallel `region_metas`/`leaders` arrays
    // for older ones (an unknown leader is an empty peer, keeping the arrays aligned).
    Ok(ScanRegionsResponse {
        header: None,
        region_metas: regions.iter().map(|r| r.meta.clone()).collect(),
        leaders: regions
            .iter()
            .map(|r| r.leader.unwrap_or_default())
            .collect(),
        regions: regions.iter().map(|r| r.to_pd_region()).collect(),
    })
}

pub fn ask_split(svc: &PdService, req: AskSplitRequest) -> Result<AskSplitResponse> {
    let mut ids = svc.cluster.ask_split(req.region.as_ref(), 1)?;
    let split = ids.pop().expect("one split asked, one allocated");
    Ok(AskSplitResponse {
        header: None,
        new_region_id: split.new_region_id,
        new_peer_ids: split.new_peer_ids,
    })
}

pub fn ask_batch_split(
    svc: &PdService,
    req: AskBatchSplitRequest,
) -> Result<AskBatchSplitResponse> {
    Ok(AskBatchSplitResponse {
        header: None,
        ids: svc
            .cluster
            .ask_split(req.region.as_ref(), req.split_count)?,
    })
}

pub fn report_split(svc: &PdService, req: ReportSplitRequest) -> Result<ReportSplitResponse> {
    let (Some(left), Some(right)) = (req.left, req.right) else {
        return Err(Error::InvalidRequest(
            "a split report needs both halves".into(),
        ));
    };
    svc.cluster.report_split(&[left, right])?;
    Ok(ReportSplitResponse::default())
}

pub fn report_batch_split(
    svc: &PdService,
    req: ReportBatchSplitRequest,
) -> Result<ReportBatchSplitResponse> {
    svc.cluster.report_split(&req.regions)?;
    Ok(ReportBatchSplitResponse::default())
}

pub fn get_operator(svc: &PdService, req: GetOperatorRequest) -> Result<GetOperatorResponse> {
    let id = req.region_id;
    svc.cluster.with_operators(|ops| {
        let (op, status) = if let Some(op) = ops.get(id) {
            (op, OperatorStatus::Running)
        } else if let Some(f) = ops.last_finished(id) {
            let status = match f.outcome {
                Outcome::Finished => OperatorStatus::Success,
                Outcome::TimedOut => OperatorStatus::Timeout,
                Outcome::Cancelled(_) => OperatorStatus::Cancel,
            };
            (&f.op, status)
        } else {
            return Err(Error::OperatorNotFound(id));
        };
        Ok(GetOperatorResponse {
            header: None,
            region_id: id,
            desc: op.to_string().into_bytes(),
            status: status as i32,
            kind: op.desc.as_bytes().to_vec(),
        })
    })
}
