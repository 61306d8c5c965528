//! HTTP/1.1 JSON status routes, served on the gRPC port (tonic accepts HTTP/1 next to h2c), under
//! PD's API prefix so the shape is familiar:
//!
//! | method | path                                   | body                                 |
//! |--------|----------------------------------------|--------------------------------------|
//! | GET    | `/pd/api/v1/status`                    | cluster summary ([`ClusterStatus`])   |
//! | GET    | `/pd/api/v1/stores`                    | every store                          |
//! | GET    | `/pd/api/v1/store/{id}`                | one store                            |
//! | POST   | `/pd/api/v1/store/{id}/state/{state}`  | set `Up`, `Offline` or `Tombstone`   |
//! | GET    | `/pd/api/v1/regions`                   | every region, in key order           |
//! | GET    | `/pd/api/v1/region/id/{id}`            | one region                           |
//! | GET    | `/pd/api/v1/operators`                 | running and recently finished        |
//! | POST   | `/pd/api/v1/operators`                 | add one (PD's body; transfer-leader) |
//!
//! [`ClusterStatus`]: crate::cluster::status::ClusterStatus

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use proto::metapb::StoreState;
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::errors::Error;
use crate::schedule::operator::Operator;

type Shared = State<Arc<Cluster>>;

fn json<T: Serialize>(code: StatusCode, body: &T) -> Response {
    match serde_json::to_string_pretty(body) {
        Ok(s) => (code, [(header::CONTENT_TYPE, "application/json")], s).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn error(code: StatusCode, message: String) -> Response {
    #[derive(Serialize)]
    struct Body {
        error: String,
    }
    json(code, &Body { error: message })
}

fn not_found(what: String) -> Response {
    error(StatusCode::NOT_FOUND, what)
}

async fn status(State(c): Shared) -> Response {
    json(StatusCode::OK, &c.status())
}

async fn stores(State(c): Shared) -> Response {
    json(StatusCode::OK, &c.store_statuses())
}

async fn store(State(c): Shared, Path(id): Path<u64>) -> Response {
    match c.store_statuses().into_iter().find(|s| s.id == id) {
        Some(s) => json(StatusCode::OK, &s),
        None => not_found(format!("store {id} not found")),
    }
}

async fn set_store_state(State(c): Shared, Path((id, state)): Path<(u64, String)>) -> Response {
    let Some(state) = StoreState::from_str_name(&state) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown state {state:?}; use Up, Offline or Tombstone"),
        );
    };
    match c.set_store_state(id, state) {
        Ok(()) => json(
            StatusCode::OK,
            &c.store_statuses().into_iter().find(|s| s.id == id),
        ),
        Err(e @ Error::StoreNotFound(_)) => not_found(e.to_string()),
        Err(e @ (Error::InvalidRequest(_) | Error::StoreTombstone(_) | Error::NotBootstrapped)) => {
            error(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn regions(State(c): Shared) -> Response {
    json(StatusCode::OK, &c.region_statuses())
}

async fn region(State(c): Shared, Path(id): Path<u64>) -> Response {
    match c.region_status(id) {
        Some(r) => json(StatusCode::OK, &r),
        None => not_found(format!("region {id} not found")),
    }
}

async fn operators(State(c): Shared) -> Response {
    json(StatusCode::OK, &c.operator_statuses(true))
}

/// The body of `POST /pd/api/v1/operators`, as PD's API takes it (what `pd-ctl operator add
/// transfer-leader <region_id> <store_id>` sends).
#[derive(Deserialize)]
struct NewOperator {
    name: String,
    region_id: u64,
    to_store_id: u64,
}

/// Adds an operator by hand. Only `transfer-leader` exists: tests and operators use it to move a
/// region's leadership (clients then meet `NotLeader`); peer moves stay the schedulers' job.
async fn add_operator(State(c): Shared, body: String) -> Response {
    let req: NewOperator = match serde_json::from_str(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad operator: {e}")),
    };
    if req.name != "transfer-leader" {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unsupported operator {:?}; only transfer-leader", req.name),
        );
    }
    let region = match c.region_by_id(req.region_id) {
        Ok(r) => r,
        Err(e @ Error::RegionNotFound(_)) => return not_found(e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let Some(from) = region.leader_store_id() else {
        return error(
            StatusCode::CONFLICT,
            format!("region {} has no known leader", req.region_id),
        );
    };
    if from == req.to_store_id || region.store_peer(req.to_store_id).is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "store {} holds no follower of region {} (leader on store {from})",
                req.to_store_id, req.region_id
            ),
        );
    }
    let op = Operator::transfer_leader("admin-transfer-leader", &region, from, req.to_store_id);
    match c.add_operator(op) {
        Ok(true) => json(
            StatusCode::OK,
            &serde_json::json!({
                "region_id": req.region_id,
                "from_store_id": from,
                "to_store_id": req.to_store_id,
            }),
        ),
        Ok(false) => error(
            StatusCode::CONFLICT,
            format!("region {} already has an operator", req.region_id),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Anything else: HTTP 404, which gRPC clients read as UNIMPLEMENTED.
async fn fallback() -> Response {
    not_found("no such route".into())
}

/// Adds the status routes to `grpc` (the gRPC service's router) and answers unknown paths with
/// 404.
pub fn with_status_routes(grpc: Router, cluster: Arc<Cluster>) -> Router {
    grpc.merge(router(cluster)).fallback(fallback)
}

/// The status routes.
fn router(cluster: Arc<Cluster>) -> Router {
    Router::new()
        .route("/pd/api/v1/status", get(status))
        .route("/pd/api/v1/stores", get(stores))
        .route("/pd/api/v1/store/{id}", get(store))
        .route("/pd/api/v1/store/{id}/state/{state}", post(set_store_state))
        .route("/pd/api/v1/regions", get(regions))
        .route("/pd/api/v1/region/id/{id}", get(region))
        .route("/pd/api/v1/operators", get(operators).post(add_operator))
        .with_state(cluster)
}
