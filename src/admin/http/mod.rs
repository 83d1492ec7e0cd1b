//! The HTTP API: a small part of RabbitMQ's management API, plus plan/apply.
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /api/overview` | management tags | RabbitMQ's overview shape |
//! | `GET /api/whoami` | management tags | `{"name", "tags"}` |
//! | `GET /api/definitions[/{vhost}]` | administrator | export, RabbitMQ's format |
//! | `POST /api/definitions[/{vhost}]` | administrator | import as RabbitMQ's endpoint (204) |
//! | `POST /api/warren/plan?prune=` | administrator | what applying the body would do |
//! | `POST /api/warren/apply?prune=` | administrator | apply the body; returns the plan carried out |
//!
//! Basic auth against the broker's users, with RabbitMQ's refusals: 401
//! `not_authorized` for bad credentials, 401 `not_authorised` for a user
//! without the needed tag, guest only from loopback.

#![allow(clippy::result_large_err)] // handlers return ready responses as errors

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::access::auth::{Credentials, User};
use crate::admin::definitions::{self, apply, export, plan, DefinitionsError, Format};
use crate::engine::broker::Broker;

/// What the API needs besides the broker: where the listeners are.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) broker: Arc<Broker>,
    pub(crate) amqp_addr: SocketAddr,
    pub(crate) http_addr: SocketAddr,
}

pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves the API until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, state: ApiState) {
    let app = router(state);
    if let Err(e) = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    {
        warn!(error = %e, "HTTP API stopped");
    }
}

pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/overview", get(overview))
        .route("/api/whoami", get(whoami))
        .route("/api/definitions", get(export_all).post(import_all))
        .route("/api/definitions/{vhost}", get(export_one).post(import_one))
        .route("/api/warren/plan", post(plan_handler))
        .route("/api/warren/apply", post(apply_handler))
        .with_state(state)
}

fn error(status: StatusCode, error: &str, reason: &str) -> Response {
    (status, Json(json!({"error": error, "reason": reason}))).into_response()
}

fn not_authenticated() -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, "not_authorized", "Not_Authorized");
    if let Ok(v) = "Basic realm=\"RabbitMQ Management\"".parse() {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// Who may call an endpoint.
#[derive(Clone, Copy)]
enum Needs {
    /// Any of the management tags (management, policymaker, monitoring, administrator).
    Management,
    Administrator,
}

/// Basic auth against the user database, then the tag the endpoint needs.
fn authorize(
    state: &ApiState,
    headers: &HeaderMap,
    peer: SocketAddr,
    needs: Needs,
) -> Result<User, Response> {
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|text| {
            text.split_once(':').map(|(u, p)| Credentials {
                username: u.to_string(),
                password: p.to_string(),
            })
        })
        .ok_or_else(not_authenticated)?;
    let Some(user) = state.broker.users.authenticate(&credentials) else {
        warn!(user = %credentials.username, "HTTP access refused: login failed");
        return Err(not_authenticated());
    };
    if user.loopback_only && !peer.ip().is_loopback() {
        warn!(user = %user.name, "HTTP access refused: user may only log in via localhost");
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "not_authorised",
            "User can only log in via localhost",
        ));
    }
    let management = ["management", "policymaker", "monitoring", "administrator"]
        .iter()
        .any(|t| user.has_tag(t));
    if !management {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "not_authorised",
            "Not management user",
        ));
    }
    if matches!(needs, Needs::Administrator) && !user.has_tag("administrator") {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "not_authorised",
            "Not administrator user",
        ));
    }
    Ok(user)
}

async fn whoami(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match authorize(&state, &headers, peer, Needs::Management) {
        Err(r) => r,
        Ok(user) => Json(json!({"name": user.name, "tags": user.tags})).into_response(),
    }
}

async fn overview(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&state, &headers, peer, Needs::Management) {
        return r;
    }
    let broker = &state.broker;
    let (mut exchanges, mut queues, mut consumers, mut ready) = (0u64, 0u64, 0u64, 0u64);
    for name in broker.vhost_names() {
        if let Some(v) = broker.vhost(&name) {
            let snap = v.snapshot();
            // The default exchange is listed by RabbitMQ too.
            exchanges += snap.exchanges.len() as u64 + 1;
            queues += snap.queues.len() as u64;
            for q in snap.queues.values() {
                consumers += u64::from(q.consumer_count());
                ready += u64::from(q.message_count());
            }
        }
    }
    let node = "warren@localhost";
    let version = definitions::RABBIT_VERSION;
    let exchange_types: Vec<Value> = [
        (
            "direct",
            "AMQP direct exchange, as per the AMQP specification",
        ),
        (
            "fanout",
            "AMQP fanout exchange, as per the AMQP specification",
        ),
        (
            "headers",
            "AMQP headers exchange, as per the AMQP specification",
        ),
        (
            "topic",
            "AMQP topic exchange, as per the AMQP specification",
        ),
    ]
    .iter()
    .map(|(name, description)| json!({"name": name, "description": description, "enabled": true}))
    .collect();
    let connections = broker
        .stats
        .connections
        .load(std::sync::atomic::Ordering::Relaxed);
    let channels = broker
        .stats
        .channels
        .load(std::sync::atomic::Ordering::Relaxed);
    Json(json!({
        "management_version": version,
        "rates_mode": "none",
        "sample_retention_policies": {"global": [], "basic": [], "detailed": []},
        "exchange_types": exchange_types,
        "product_version": env!("CARGO_PKG_VERSION"),
        "product_name": "Warren",
        "rabbitmq_version": version,
        "cluster_name": node,
        "erlang_version": "none (Warren is written in Rust)",
        "erlang_full_version": "none",
        "disable_stats": true,
        "enable_queue_totals": true,
        "message_stats": {},
        "churn_rates": {},
        "queue_totals": {
            "messages": ready,
            "messages_ready": ready,
            "messages_unacknowledged": 0
        },
        "object_totals": {
            "channels": channels.max(0),
            "connections": connections.max(0),
            "consumers": consumers,
            "exchanges": exchanges,
            "queues": queues
        },
        "statistics_db_event_queue": 0,
        "node": node,
        "listeners": [
            {"node": node, "protocol": "amqp", "ip_address": state.amqp_addr.ip().to_string(),
             "port": state.amqp_addr.port(), "socket_opts": {}},
            {"node": node, "protocol": "http", "ip_address": state.http_addr.ip().to_string(),
             "port": state.http_addr.port(), "socket_opts": {}}
        ],
        "contexts": [
            {"node": node, "description": "Warren HTTP API", "path": "/",
             "port": state.http_addr.port().to_string()}
        ]
    }))
    .into_response()
}

async fn export_all(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&state, &headers, peer, Needs::Administrator) {
        return r;
    }
    Json(export::export(&state.broker)).into_response()
}

async fn export_one(
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
fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<definitions::Definitions, Response> {
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

fn bad_definitions(e: DefinitionsError) -> Response {
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

fn log_report(report: &apply::Report) {
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

async fn import_all(
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

async fn import_one(
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
struct PruneQuery {
    #[serde(default)]
    prune: bool,
}

async fn plan_handler(
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

async fn apply_handler(
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
