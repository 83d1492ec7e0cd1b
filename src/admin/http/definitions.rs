//! `GET`/`POST /api/definitions[/{vhost}]` (RabbitMQ's export and import)
//! and Warren's `POST /api/warren/plan` and `/api/warren/apply`.

#![allow(clippy::result_large_err)] // handlers return ready responses as errors

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};

use super::auth::{authorize, Needs};
use super::{error, ApiState};
use crate::admin::definitions::{self, apply, export, plan, DefinitionsError, Format};

pub(super) async fn export_all(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&state, &headers, peer, Needs::Administrator) {
        return r;
    }
    Json(export::export(&state.broker)).into_response()
}
pub(super) async fn export_one(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(vhost): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&state, &headers, peer, Needs::Administrator) {
        return r;
    }
    match export::export_vhost(&state.broker, &vhost) {
        Some(v) => Json(v).into_response(),
        None => error(StatusCode::NOT_FOUND, "Object Not Found", "Not Found"),
    }
}
/// The body as definitions: YAML when the content type says so, JSON otherwise.
pub(super) fn parse_body(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<definitions::Definitions, Response> {
    let yaml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("yaml"));
    let text = std::str::from_utf8(body).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body is not UTF-8",
        )
    })?;
    let format = if yaml { Format::Yaml } else { Format::Json };
    definitions::parse(text, format).map_err(bad_definitions)
}
pub(super) fn bad_definitions(e: DefinitionsError) -> Response {
    let problems: Vec<String> = match &e {
        DefinitionsError::Invalid(list) => list.iter().map(ToString::to_string).collect(),
        other => vec![other.to_string()],
    };
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "bad_request", "reason": e.to_string(), "problems": problems})),
    )
        .into_response()
}
pub(super) fn log_report(report: &apply::Report) {
    for w in &report.warnings {
        warn!("definitions: {w}");
    }
    for c in &report.conflicts {
        warn!("definitions: {c}");
    }
    info!(
        created = report.created.len(),
        updated = report.updated.len(),
        conflicts = report.conflicts.len(),
        "definitions imported"
    );
}
pub(super) async fn import_all(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&state, &headers, peer, Needs::Administrator) {
        return r;
    }
    let defs = match parse_body(&headers, &body) {
        Ok(d) => d,
        Err(r) => return r,
    };
    match apply::import(&state.broker, &defs) {
        Ok(report) => {
            log_report(&report);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => bad_definitions(e),
    }
}
pub(super) async fn import_one(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(vhost): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&state, &headers, peer, Needs::Administrator) {
        return r;
    }
    if state.broker.vhost(&vhost).is_none() {
        return error(StatusCode::NOT_FOUND, "Object Not Found", "Not Found");
    }
    let parsed = match parse_body(&headers, &body) {
        Ok(d) => d,
        Err(r) => return r,
    };
    // Only the vhost's own objects, all of them in this vhost.
    let mut defs = definitions::Definitions {
        parameters: parsed.parameters,
        policies: parsed.policies,
        queues: parsed.queues,
        exchanges: parsed.exchanges,
        bindings: parsed.bindings,
        ..Default::default()
    };
    defs.parameters
        .iter_mut()
        .for_each(|x| x.vhost = vhost.clone());
    defs.policies
        .iter_mut()
        .for_each(|x| x.vhost = vhost.clone());
    defs.queues.iter_mut().for_each(|x| x.vhost = vhost.clone());
    defs.exchanges
        .iter_mut()
        .for_each(|x| x.vhost = vhost.clone());
    defs.bindings
        .iter_mut()
        .for_each(|x| x.vhost = vhost.clone());
    match apply::import(&state.broker, &defs) {
        Ok(report) => {
            log_report(&report);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => bad_definitions(e),
    }
}
#[derive(Deserialize)]
pub(super) struct PruneQuery {
    #[serde(default)]
    prune: bool,
}
pub(super) async fn plan_handler(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<PruneQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&state, &headers, peer, Needs::Administrator) {
        return r;
    }
    let desired = match parse_body(&headers, &body) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let current = export::export(&state.broker);
    let context = apply::validation_context(&current, q.prune);
    let warnings = match definitions::validate::validate(&desired, &context) {
        Ok(w) => w,
        Err(e) => return bad_definitions(e),
    };
    let plan = plan::plan(&current, &desired, q.prune);
    Json(json!({"plan": plan, "warnings": warnings})).into_response()
}
pub(super) async fn apply_handler(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<PruneQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let user = match authorize(&state, &headers, peer, Needs::Administrator) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let desired = match parse_body(&headers, &body) {
        Ok(d) => d,
        Err(r) => return r,
    };
    match apply::apply(&state.broker, &desired, q.prune) {
        Ok((plan, report)) => {
            info!(user = %user.name, prune = q.prune, changes = plan.changes.len(), "definitions applied");
            log_report(&report);
            Json(json!({"plan": plan, "report": report})).into_response()
        }
        Err(e) => bad_definitions(e),
    }
}
