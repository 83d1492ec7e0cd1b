//! The connection handshake: protocol header, start / start-ok (SASL login),
//! tune / tune-ok, open / open-ok, each step within [`HANDSHAKE_TIMEOUT`].
//!
//! What a client may do once it is in is the channels' business; this file
//! only decides whether it gets in, and with what limits.

use std::sync::Arc;
use std::time::Duration;

use amq_protocol::protocol::{connection as conn, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use tracing::{debug, info, warn};

use super::channel::Session;
use super::connection::Connection;
use crate::access::auth::{self, User};
use crate::access::permissions::Checker;
use crate::engine::queue::delivery::ClientLink;
use crate::protocol::constants::CONNECTION_OPEN;
use crate::protocol::error::{AmqpError, MethodError};

pub(crate) const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
/// The largest frame offered (and accepted before tune).
pub(crate) const FRAME_MAX: u32 = 131_072;
pub(crate) const FRAME_MIN: u32 = 4096;
pub(crate) const CHANNEL_MAX: u16 = 2047;
pub(crate) const HEARTBEAT: u16 = 60;
/// How long each handshake step may take.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Connection {
    /// Protocol header, start/start-ok, tune/tune-ok, open/open-ok.
    /// `Ok(None)`: the client went away or was refused without a close frame.
    pub(super) async fn handshake(&mut self) -> Result<Option<Session>, MethodError> {
        if !self.protocol_header().await {
            return Ok(None);
        }
        self.send(0, AMQPClass::Connection(conn::AMQPMethod::Start(start())));
        let Some((_, method)) = self.next_method().await? else {
            return Ok(None);
        };
        let AMQPClass::Connection(conn::AMQPMethod::StartOk(start_ok)) = method else {
            return Err(unexpected_handshake_method());
        };
        let caps = client_capabilities(&start_ok.client_properties);
        self.blocked_capable = caps.connection_blocked;
        let Some(user) = self.login(&start_ok, &caps)? else {
            return Ok(None);
        };
        if !self.tune().await? {
            return Ok(None);
        }
        self.open(user, &caps).await
    }

    /// Reads the protocol header; a wrong one is answered with ours (false).
    async fn protocol_header(&mut self) -> bool {
        let read_header = async {
            while self.buf.len() < 8 {
                if !self.fill().await {
                    return false;
                }
            }
            true
        };
        if !matches!(
            tokio::time::timeout(HANDSHAKE_TIMEOUT, read_header).await,
            Ok(true)
        ) {
            return false;
        }
        if &self.buf[..8] != PROTOCOL_HEADER {
            debug!(header = ?&self.buf[..8], "wrong protocol header");
            self.outbox
                .send(|out| out.extend_from_slice(PROTOCOL_HEADER));
            return false;
        }
        let _ = self.buf.split_to(8);
        true
    }

    /// Checks the start-ok's credentials. A refusal is logged with the user,
    /// mechanism and reason; the client is told (403) only if it announced
    /// `authentication_failure_close`, as RabbitMQ does (`Ok(None)` otherwise).
    fn login(
        &self,
        start_ok: &conn::StartOk,
        caps: &ClientCapabilities,
    ) -> Result<Option<User>, MethodError> {
        let mechanism = start_ok.mechanism.as_str();
        let credentials = auth::decode_response(mechanism, start_ok.response.as_bytes());
        let login = match &credentials {
            None => Err("the response could not be read"),
            Some(creds) => match self.broker.users.authenticate(creds) {
                None => Err("invalid credentials"),
                Some(user) if user.loopback_only && !self.peer.ip().is_loopback() => {
                    Err("user may only connect via localhost")
                }
                Some(user) => Ok(user),
            },
        };
        match login {
            Ok(user) => Ok(Some(user)),
            Err(reason) => {
                let name = credentials.as_ref().map_or("", |c| c.username.as_str());
                warn!(user = name, mechanism, reason, "login refused");
                if caps.authentication_failure_close {
                    return Err(AmqpError::AccessRefused(format!(
                        "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
                    ))
                    .into());
                }
                Ok(None)
            }
        }
    }

    /// Offers our limits and takes the client's (within them). False when
    /// the client went away.
    async fn tune(&mut self) -> Result<bool, MethodError> {
        self.send(
            0,
            AMQPClass::Connection(conn::AMQPMethod::Tune(conn::Tune {
                channel_max: CHANNEL_MAX,
                frame_max: FRAME_MAX,
                heartbeat: HEARTBEAT,
            })),
        );
        let Some((_, method)) = self.next_method().await? else {
            return Ok(false);
        };
        let AMQPClass::Connection(conn::AMQPMethod::TuneOk(tune_ok)) = method else {
            return Err(unexpected_handshake_method());
        };
        if tune_ok.frame_max < FRAME_MIN {
            return Err(AmqpError::NotAllowed(format!(
                "frame_max={} < {FRAME_MIN} min size",
                tune_ok.frame_max
            ))
            .into());
        }
        if tune_ok.frame_max > FRAME_MAX {
            return Err(AmqpError::NotAllowed(format!(
                "frame_max={} > {FRAME_MAX} max size",
                tune_ok.frame_max
            ))
            .into());
        }
        if tune_ok.channel_max == 0 || tune_ok.channel_max > CHANNEL_MAX {
            return Err(AmqpError::NotAllowed(format!(
                "channel_max={} is outside 1..{CHANNEL_MAX}",
                tune_ok.channel_max
            ))
            .into());
        }
        self.frame_max = tune_ok.frame_max;
        self.channel_max = tune_ok.channel_max;
        self.heartbeat = tune_ok.heartbeat;
        Ok(true)
    }

    /// connection.open: the vhost must exist and the user may connect to it.
    async fn open(
        &mut self,
        user: User,
        caps: &ClientCapabilities,
    ) -> Result<Option<Session>, MethodError> {
        let Some((_, method)) = self.next_method().await? else {
            return Ok(None);
        };
        let AMQPClass::Connection(conn::AMQPMethod::Open(open)) = method else {
            return Err(unexpected_handshake_method());
        };
        let vhost_name = open.virtual_host.as_str();
        let Some(vhost) = self.broker.vhost(vhost_name) else {
            return Err(MethodError::on(
                AmqpError::NotAllowed(format!("vhost {vhost_name} not found")),
                CONNECTION_OPEN,
            ));
        };
        let access = self.broker.access(&user.name, vhost_name);
        if !access.can_connect() {
            return Err(MethodError::on(
                AmqpError::NotAllowed(format!(
                    "access to vhost '{vhost_name}' refused for user '{}'",
                    user.name
                )),
                CONNECTION_OPEN,
            ));
        }
        self.send(
            0,
            AMQPClass::Connection(conn::AMQPMethod::OpenOk(conn::OpenOk {})),
        );
        info!(user = %user.name, vhost = vhost_name, "connection opened");
        let handle = Arc::new(ClientLink {
            id: self.id,
            sink: self.outbox.clone(),
            frame_max: self.frame_max,
            consumer_cancel_notify: caps.consumer_cancel_notify,
        });
        let perms = Checker::new(&user.name, vhost_name, access);
        Ok(Some(Session::new(vhost, handle, user, perms)))
    }
}

fn unexpected_handshake_method() -> MethodError {
    AmqpError::CommandInvalid("unexpected method during connection handshake".into()).into()
}

/// The capabilities a client announced that change what we send it.
pub(super) struct ClientCapabilities {
    consumer_cancel_notify: bool,
    authentication_failure_close: bool,
    connection_blocked: bool,
}

fn client_capabilities(props: &FieldTable) -> ClientCapabilities {
    let caps = match props.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(t)) => Some(t),
        _ => None,
    };
    let flag = |name: &str| {
        caps.and_then(|t| t.inner().get(name))
            .is_some_and(|v| matches!(v, AMQPValue::Boolean(true)))
    };
    ClientCapabilities {
        consumer_cancel_notify: flag("consumer_cancel_notify"),
        authentication_failure_close: flag("authentication_failure_close"),
        connection_blocked: flag("connection.blocked"),
    }
}

fn start() -> conn::Start {
    let mut caps = FieldTable::default();
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        caps.insert(cap.into(), AMQPValue::Boolean(true));
    }
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    let mut props = FieldTable::default();
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    props.insert("cluster_name".into(), text("warren@localhost"));
    props.insert("copyright".into(), text("Copyright (c) the Warren authors"));
    props.insert(
        "information".into(),
        text("Licensed under the Apache License 2.0"),
    );
    props.insert(
        "platform".into(),
        text(&format!("Rust {}", std::env::consts::OS)),
    );
    props.insert("product".into(), text("Warren"));
    props.insert("version".into(), text(env!("CARGO_PKG_VERSION")));
    conn::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: props,
        mechanisms: LongString::from("AMQPLAIN PLAIN"),
        locales: LongString::from("en_US"),
    }
}
