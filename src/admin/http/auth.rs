//! Who may call the API: basic auth against the broker's users, with
//! RabbitMQ's refusals (401 `not_authorized` for bad credentials, 401
//! `not_authorised` for a user without the needed tag, guest only from
//! loopback).

#![allow(clippy::result_large_err)] // a refusal is a ready response

use std::net::SocketAddr;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tracing::warn;

use super::{error, ApiState};
use crate::access::auth::{Credentials, User};

pub(super) fn not_authenticated() -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, "not_authorized", "Not_Authorized");
    if let Ok(v) = "Basic realm=\"RabbitMQ Management\"".parse() {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}
/// Who may call an endpoint.
#[derive(Clone, Copy)]
pub(super) enum Needs {
    /// Any of the management tags (management, policymaker, monitoring, administrator).
    Management,
    Administrator,
}
/// Basic auth against the user database, then the tag the endpoint needs.
pub(super) fn authorize(
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
