//! One client connection: the handshake, the read loop, and connection-level errors.
//!
//! Each accepted socket gets one task running [`serve`]. It reads with a large
//! buffer, cuts every complete frame out of it and handles each inline: a publish
//! is parsed, routed and enqueued on this task, and queues deliver from here to
//! their consumers' outboxes. There is no task per channel. Outgoing frames go
//! through the connection's [`Outbox`] and its writer task.
//!
//! This module owns the connection's life cycle (protocol header, start/tune/open,
//! heartbeats, close in both directions, 320 on shutdown) and the routing of
//! frames to channels; what a channel method does is `channel.rs`'s business.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::protocol::{channel as chan, connection as conn, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};
use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::access::auth;
use crate::access::permissions::Checker;
use crate::engine::broker::Broker;
use crate::engine::memory;
use crate::engine::queue::delivery::ClientLink;
use crate::net::channel::{Channel, Session};
use crate::net::outbox::{run_writer, Outbox};
use crate::protocol::error::{AmqpError, MethodError};
use crate::protocol::frame::{self, Frame};

pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
pub const FRAME_MAX: u32 = 131_072;
pub const FRAME_MIN: u32 = 4096;
pub const CHANNEL_MAX: u16 = 2047;
pub const HEARTBEAT: u16 = 60;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long we wait for close-ok after sending connection.close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// Serves one client until it disconnects or the broker shuts down.
pub async fn serve(
    broker: Arc<Broker>,
    socket: TcpStream,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
) {
    let id = broker.next_connection_id();
    let span = info_span!("connection", id, %peer);
    async move {
        let _ = socket.set_nodelay(true);
        let (reader, writer) = socket.into_split();
        let outbox = Outbox::new();
        let writer_task = tokio::spawn(run_writer(outbox.clone(), writer));
        let mut conn = Connection {
            broker,
            id,
            peer,
            reader,
            buf: BytesMut::with_capacity(128 * 1024),
            outbox: outbox.clone(),
            frame_max: FRAME_MAX,
            channel_max: CHANNEL_MAX,
            heartbeat: 0,
            shutdown,
            blocked_capable: false,
            publisher: false,
        };
        match conn.handshake().await {
            Ok(Some(session)) => conn.run(session).await,
            Ok(None) => {}
            Err(e) => {
                debug!(error = %e.error, "handshake failed");
                conn.send_close(&e);
                conn.await_close_ok().await;
            }
        }
        outbox.close_when_flushed();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer_task).await;
        debug!("connection closed");
    }
    .instrument(span)
    .await
}

struct Connection {
    broker: Arc<Broker>,
    id: u64,
    peer: SocketAddr,
    reader: OwnedReadHalf,
    buf: BytesMut,
    outbox: Arc<Outbox>,
    frame_max: u32,
    channel_max: u16,
    heartbeat: u16,
    shutdown: watch::Receiver<bool>,
    /// The client announced connection.blocked (it is told when the memory alarm blocks it).
    blocked_capable: bool,
    /// This connection has published: the memory alarm pauses it.
    publisher: bool,
}

/// How a wait for the memory alarm to clear ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unblocked {
    Cleared,
    Shutdown,
    /// The writer found the socket closed.
    SocketGone,
}

/// How the read loop ended.
enum Ending {
    /// The client closed (close/close-ok exchanged) or the socket went away.
    Done,
    /// We must close with this error.
    Error(MethodError),
}

impl Connection {
    async fn fill(&mut self) -> bool {
        fill(&mut self.reader, &mut self.buf).await
    }

    /// The next frame during the handshake (heartbeats skipped); None on EOF.
    async fn next_frame(&mut self) -> Result<Option<Frame>, MethodError> {
        loop {
            match frame::parse(&mut self.buf, self.frame_max)? {
                Some(Frame::Heartbeat { .. }) => continue,
                Some(frame) => return Ok(Some(frame)),
                None => {
                    if !self.fill().await {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// The next method during the handshake; anything else is a 505/504.
    async fn next_method(&mut self) -> Result<Option<(u16, AMQPClass)>, MethodError> {
        let next = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.next_frame()).await;
        match next {
            Err(_) => Ok(None),
            Ok(Ok(Some(Frame::Method {
                channel, method, ..
            }))) => Ok(Some((channel, *method))),
            Ok(Ok(Some(_))) => Err(AmqpError::UnexpectedFrame(
                "expected method frame, got non method frame instead".into(),
            )
            .into()),
            Ok(Ok(None)) => Ok(None),
            Ok(Err(e)) => Err(e),
        }
    }

    fn send(&self, channel: u16, method: AMQPClass) {
        self.outbox
            .send(|out| frame::push_method(out, channel, method));
    }

    fn send_close(&self, e: &MethodError) {
        if e.error.code() >= 500 || e.error.code() == 320 {
            warn!(code = e.error.code(), text = %e.error, "closing connection");
        }
        self.send(
            0,
            AMQPClass::Connection(conn::AMQPMethod::Close(conn::Close {
                reply_code: e.error.code(),
                reply_text: ShortString::from(e.error.reply_text()),
                class_id: e.class_id,
                method_id: e.method_id,
            })),
        );
    }

    /// After sending connection.close: discard frames until close-ok, EOF or a timeout.
    async fn await_close_ok(&mut self) {
        let wait = async {
            loop {
                match frame::parse(&mut self.buf, self.frame_max) {
                    Ok(Some(Frame::Method { method, .. })) => match *method {
                        AMQPClass::Connection(conn::AMQPMethod::CloseOk(_)) => return,
                        AMQPClass::Connection(conn::AMQPMethod::Close(_)) => {
                            self.send(
                                0,
                                AMQPClass::Connection(conn::AMQPMethod::CloseOk(conn::CloseOk {})),
                            );
                            return;
                        }
                        _ => {}
                    },
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        if !self.fill().await {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, wait).await;
    }

    /// Protocol header, start/start-ok, tune/tune-ok, open/open-ok.
    /// `Ok(None)`: the client went away or was refused without a close frame.
    async fn handshake(&mut self) -> Result<Option<Session>, MethodError> {
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
            return Ok(None);
        }
        if &self.buf[..8] != PROTOCOL_HEADER {
            debug!(header = ?&self.buf[..8], "wrong protocol header");
            self.outbox
                .send(|out| out.extend_from_slice(PROTOCOL_HEADER));
            return Ok(None);
        }
        let _ = self.buf.split_to(8);

        self.send(0, AMQPClass::Connection(conn::AMQPMethod::Start(start())));
        let Some((_, method)) = self.next_method().await? else {
            return Ok(None);
        };
        let AMQPClass::Connection(conn::AMQPMethod::StartOk(start_ok)) = method else {
            return Err(unexpected_handshake_method());
        };
        let caps = client_capabilities(&start_ok.client_properties);
        self.blocked_capable = caps.connection_blocked;
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
        let user = match login {
            Ok(user) => Some(user),
            Err(reason) => {
                let name = credentials.as_ref().map_or("", |c| c.username.as_str());
                warn!(user = name, mechanism, reason, "login refused");
                None
            }
        };
        let Some(user) = user else {
            if caps.authentication_failure_close {
                return Err(AmqpError::AccessRefused(format!(
                    "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
                ))
                .into());
            }
            return Ok(None);
        };

        self.send(
            0,
            AMQPClass::Connection(conn::AMQPMethod::Tune(conn::Tune {
                channel_max: CHANNEL_MAX,
                frame_max: FRAME_MAX,
                heartbeat: HEARTBEAT,
            })),
        );
        let Some((_, method)) = self.next_method().await? else {
            return Ok(None);
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

        let Some((_, method)) = self.next_method().await? else {
            return Ok(None);
        };
        let AMQPClass::Connection(conn::AMQPMethod::Open(open)) = method else {
            return Err(unexpected_handshake_method());
        };
        let vhost_name = open.virtual_host.as_str();
        let Some(vhost) = self.broker.vhost(vhost_name) else {
            return Err(MethodError::new(
                AmqpError::NotAllowed(format!("vhost {vhost_name} not found")),
                10,
                40,
            ));
        };
        let access = self.broker.access(&user.name, vhost_name);
        if !access.can_connect() {
            return Err(MethodError::new(
                AmqpError::NotAllowed(format!(
                    "access to vhost '{vhost_name}' refused for user '{}'",
                    user.name
                )),
                10,
                40,
            ));
        }
        self.send(
            0,
            AMQPClass::Connection(conn::AMQPMethod::OpenOk(conn::OpenOk {})),
        );
        info!(user = %user.name, vhost = vhost_name, "connection opened");
        Ok(Some(Session {
            broker: self.broker.clone(),
            vhost,
            handle: Arc::new(ClientLink {
                id: self.id,
                sink: self.outbox.clone(),
                frame_max: self.frame_max,
                consumer_cancel_notify: caps.consumer_cancel_notify,
            }),
            perms: Checker::new(&user.name, vhost_name, access),
            user,
            exclusive_queues: Vec::new(),
        }))
    }

    /// The open connection: frames in, until close, error, EOF or shutdown.
    async fn run(&mut self, mut session: Session) {
        let broker = self.broker.clone();
        let stats = &broker.stats;
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let mut channels: HashMap<u16, Channel> = HashMap::new();
        let heartbeat_task = (self.heartbeat > 0).then(|| {
            let outbox = self.outbox.clone();
            let every = Duration::from_secs(u64::from(self.heartbeat)) / 2;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if outbox.is_closed() {
                        break;
                    }
                    outbox.send(frame::push_heartbeat);
                }
            })
        });
        let silence =
            (self.heartbeat > 0).then(|| Duration::from_secs(u64::from(self.heartbeat) * 3));

        let ending = loop {
            match self.process_buffer(&mut session, &mut channels) {
                Ok(true) => {}
                Ok(false) => break Ending::Done,
                Err(e) => break Ending::Error(e),
            }
            if self.outbox.over_limit() {
                // The client is owed more than it reads: read nothing more
                // from it (its publishes wait in TCP) until it catches up.
                debug!(
                    owed = self.outbox.owed(),
                    "not reading until the client reads"
                );
                tokio::select! {
                    _ = self.outbox.drained() => continue,
                    _ = self.shutdown.changed() => {
                        break Ending::Error(AmqpError::ConnectionForced(
                            "broker forced connection closure with reason 'shutdown'".into(),
                        ).into());
                    }
                }
            }
            if self.publisher && memory::alarmed() {
                match self.wait_out_memory_alarm().await {
                    Unblocked::Cleared => {}
                    Unblocked::SocketGone => break Ending::Done,
                    Unblocked::Shutdown => {
                        break Ending::Error(
                            AmqpError::ConnectionForced(
                                "broker forced connection closure with reason 'shutdown'".into(),
                            )
                            .into(),
                        )
                    }
                }
            }
            let read = async {
                let fill = fill(&mut self.reader, &mut self.buf);
                match silence {
                    Some(limit) => tokio::time::timeout(limit, fill).await,
                    None => Ok(fill.await),
                }
            };
            tokio::select! {
                result = read => match result {
                    Ok(true) => {}
                    Ok(false) => break Ending::Done,
                    Err(_) => {
                        warn!("missed heartbeats from client, closing connection");
                        break Ending::Done;
                    }
                },
                _ = self.shutdown.changed() => {
                    break Ending::Error(AmqpError::ConnectionForced(
                        "broker forced connection closure with reason 'shutdown'".into(),
                    ).into());
                }
            }
        };
        // Release consumers and unacked messages before waiting for the client:
        // a closed connection must not hold messages.
        stats.connections.fetch_sub(1, Ordering::Relaxed);
        stats
            .channels
            .fetch_sub(channels.len() as i64, Ordering::Relaxed);
        for (_, mut channel) in channels.drain() {
            channel.cleanup(&mut session);
        }
        for queue in std::mem::take(&mut session.exclusive_queues) {
            session.vhost.remove_queue(&queue);
        }
        if let Some(task) = heartbeat_task {
            task.abort();
        }
        if let Ending::Error(e) = ending {
            self.send_close(&e);
            self.await_close_ok().await;
        }
    }

    /// Stops reading from this publisher until the memory alarm clears, telling
    /// the client if it understands connection.blocked. A client that went
    /// away meanwhile is noticed when a write to it fails (heartbeats), so
    /// what it held (a body being received) is released.
    async fn wait_out_memory_alarm(&mut self) -> Unblocked {
        if self.blocked_capable {
            self.send(
                0,
                AMQPClass::Connection(conn::AMQPMethod::Blocked(conn::Blocked {
                    reason: ShortString::from("low on memory"),
                })),
            );
        }
        debug!("blocked by the memory alarm");
        let outcome = tokio::select! {
            _ = memory::cleared() => Unblocked::Cleared,
            _ = self.shutdown.changed() => Unblocked::Shutdown,
            _ = self.outbox.closed() => Unblocked::SocketGone,
        };
        if outcome == Unblocked::Cleared && self.blocked_capable {
            self.send(
                0,
                AMQPClass::Connection(conn::AMQPMethod::Unblocked(conn::Unblocked {})),
            );
        }
        outcome
    }

    /// Handles every complete frame in the buffer. Ok(false) when the client closed.
    fn process_buffer(
        &mut self,
        session: &mut Session,
        channels: &mut HashMap<u16, Channel>,
    ) -> Result<bool, MethodError> {
        while let Some(frame) = frame::parse(&mut self.buf, self.frame_max)? {
            if !self.handle_frame(session, channels, frame)? {
                return Ok(false);
            }
            if self.outbox.over_limit() {
                // The rest waits until the client has read what it is owed.
                break;
            }
        }
        Ok(true)
    }

    fn handle_frame(
        &mut self,
        session: &mut Session,
        channels: &mut HashMap<u16, Channel>,
        frame: Frame,
    ) -> Result<bool, MethodError> {
        let channel_id = match &frame {
            Frame::Heartbeat { .. } => return Ok(true),
            Frame::Method { channel, .. }
            | Frame::Header { channel, .. }
            | Frame::Body { channel, .. }
            | Frame::Refused { channel, .. } => *channel,
        };
        if channel_id == 0 {
            return self.handle_channel_zero(frame);
        }
        if channel_id > self.channel_max {
            return Err(AmqpError::ChannelError(format!(
                "channel {channel_id} is beyond channel_max {}",
                self.channel_max
            ))
            .into());
        }
        let (class_id, method_id) = match &frame {
            Frame::Method {
                class_id,
                method_id,
                ..
            } => (*class_id, *method_id),
            _ => (0, 0),
        };
        if (class_id, method_id) == (60, 40) {
            self.publisher = true;
        }
        match channels.get_mut(&channel_id) {
            None => {
                if let Frame::Method { method, .. } = &frame {
                    if let AMQPClass::Channel(chan::AMQPMethod::Open(_)) = **method {
                        let channel = Channel::open(channel_id, session);
                        channels.insert(channel_id, channel);
                        self.broker.stats.channels.fetch_add(1, Ordering::Relaxed);
                        self.send(
                            channel_id,
                            AMQPClass::Channel(chan::AMQPMethod::OpenOk(chan::OpenOk {})),
                        );
                        return Ok(true);
                    }
                }
                Err(MethodError::new(
                    AmqpError::ChannelError("expected 'channel.open'".into()),
                    class_id,
                    method_id,
                ))
            }
            Some(channel) => {
                if class_id == 20 && method_id == 10 && !channel.is_closing() {
                    return Err(MethodError::new(
                        AmqpError::ChannelError("second 'channel.open' seen".into()),
                        class_id,
                        method_id,
                    ));
                }
                if class_id == 10 {
                    return Err(MethodError::new(
                        AmqpError::CommandInvalid("connection method on a non-zero channel".into()),
                        class_id,
                        method_id,
                    ));
                }
                if channel.handle(session, frame)? {
                    channels.remove(&channel_id);
                    self.broker.stats.channels.fetch_sub(1, Ordering::Relaxed);
                }
                Ok(true)
            }
        }
    }

    fn handle_channel_zero(&mut self, frame: Frame) -> Result<bool, MethodError> {
        let Frame::Method {
            method,
            class_id,
            method_id,
            ..
        } = frame
        else {
            return Err(
                AmqpError::ChannelError("unexpected content frame on channel 0".into()).into(),
            );
        };
        match *method {
            AMQPClass::Connection(conn::AMQPMethod::Close(close)) => {
                debug!(code = close.reply_code, text = %close.reply_text, "client closed connection");
                self.send(
                    0,
                    AMQPClass::Connection(conn::AMQPMethod::CloseOk(conn::CloseOk {})),
                );
                Ok(false)
            }
            AMQPClass::Connection(conn::AMQPMethod::CloseOk(_)) => Ok(false),
            AMQPClass::Connection(conn::AMQPMethod::Blocked(_))
            | AMQPClass::Connection(conn::AMQPMethod::Unblocked(_)) => Ok(true),
            AMQPClass::Connection(conn::AMQPMethod::UpdateSecret(_)) => {
                self.send(
                    0,
                    AMQPClass::Connection(conn::AMQPMethod::UpdateSecretOk(
                        conn::UpdateSecretOk {},
                    )),
                );
                Ok(true)
            }
            _ => Err(MethodError::new(
                AmqpError::ChannelError("unexpected method in connection state running".into()),
                class_id,
                method_id,
            )),
        }
    }
}

/// Reads more bytes into `buf`; false on EOF or a read error.
async fn fill(reader: &mut OwnedReadHalf, buf: &mut BytesMut) -> bool {
    if buf.capacity() - buf.len() < 16 * 1024 {
        buf.reserve(64 * 1024);
    }
    matches!(reader.read_buf(buf).await, Ok(n) if n > 0)
}

fn unexpected_handshake_method() -> MethodError {
    AmqpError::CommandInvalid("unexpected method during connection handshake".into()).into()
}

/// The capabilities a client announced that change what we send it.
struct ClientCapabilities {
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
