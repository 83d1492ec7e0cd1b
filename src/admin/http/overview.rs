//! `GET /api/whoami` and `GET /api/overview` (RabbitMQ's overview shape).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::{authorize, Needs};
use super::ApiState;

pub(super) async fn whoami(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match authorize(&state, &headers, peer, Needs::Management) {
        Err(r) => r,
        Ok(user) => Json(json!({"name": user.name, "tags": user.tags})).into_response(),
    }
}
pub(super) async fn overview(
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
    let version = crate::admin::definitions::RABBIT_VERSION;
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
