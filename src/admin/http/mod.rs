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
//! One file per resource (`overview.rs`, `definitions.rs`); `auth.rs` checks
//! who may call (basic auth, RabbitMQ's refusals). This module owns the
//! router and the listener; what the API changes goes through the engine's
//! broker, never around it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tracing::warn;

use crate::engine::broker::Broker;

mod auth;
mod definitions;
mod overview;

use definitions::{apply_handler, export_all, export_one, import_all, import_one, plan_handler};
use overview::{overview, whoami};

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
