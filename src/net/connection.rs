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
use amq_protocol::types::ShortString;
use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info_span, warn, Instrument};

use crate::engine::broker::Broker;
use crate::engine::memory;
use crate::net::channel::{Channel, Session};
use crate::net::handshake::{CHANNEL_MAX, FRAME_MAX, HANDSHAKE_TIMEOUT};
use crate::net::outbox::{run_writer, Outbox};
use crate::protocol::constants::{BASIC_PUBLISH, CHANNEL_OPEN, CONNECTION};
use crate::protocol::error::{AmqpError, MethodError};
use crate::protocol::frame::{self, Frame};

/// The longest a closed connection keeps its socket waiting for the client:
/// for close-ok after our connection.close, or for the client to close the
/// socket after our close-ok (RabbitMQ's `CLOSING_TIMEOUT`). A connection
/// with heartbeats waits one heartbeat interval if that is shorter.
const CLOSING_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the writer gets to flush the last frames once the connection is over.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// Serves one client until it disconnects or the broker shuts down.
pub(crate) async fn serve(
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
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, writer_task).await;
        debug!("connection closed");
    }
    .instrument(span)
    .await
}

pub(super) struct Connection {
    pub(super) broker: Arc<Broker>,
    pub(super) id: u64,
    pub(super) peer: SocketAddr,
    pub(super) reader: OwnedReadHalf,
    pub(super) buf: BytesMut,
    pub(super) outbox: Arc<Outbox>,
    pub(super) frame_max: u32,
    pub(super) channel_max: u16,
    pub(super) heartbeat: u16,
    pub(super) shutdown: watch::Receiver<bool>,
    /// The client announced connection.blocked (it is told when the memory alarm blocks it).
    pub(super) blocked_capable: bool,
    /// This connection has published: the memory alarm pauses it.
    pub(super) publisher: bool,
}

/// How a wait for the memory alarm to clear ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unblocked {
    Cleared,
    Shutdown,
    /// The writer found the socket closed.
    SocketGone,
}

/// What the read loop does after a frame.
enum Next {
    Continue,
    /// The client sent connection.close (answered with close-ok).
    ClientClosed,
    /// The client sent close-ok: the connection is over.
    Done,
}

/// How the read loop ended.
enum Ending {
    /// The socket went away, or the client answered our close.
    Done,
    /// The client sent connection.close and got close-ok: closing the socket
    /// is left to it, as in RabbitMQ (the side that receives close-ok closes).
    ClientClosed,
    /// We must close with this error.
    Error(MethodError),
}

impl Connection {
    pub(super) async fn fill(&mut self) -> bool {
        fill(&mut self.reader, &mut self.buf).await
    }

    /// The next frame during the handshake (heartbeats skipped); None on EOF.
    async fn next_frame(&mut self) -> Result<Option<Frame>, MethodError> {
        loop {
            match frame::parse(&mut self.buf, self.frame_max)? {
                Some(Frame::Heartbeat) => continue,
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
    pub(super) async fn next_method(&mut self) -> Result<Option<(u16, AMQPClass)>, MethodError> {
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

    pub(super) fn send(&self, channel: u16, method: AMQPClass) {
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
        let limit = self.closing_timeout();
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
        let _ = tokio::time::timeout(limit, wait).await;
    }

    /// After our close-ok: discard anything until the client closes the
    /// socket, the closing timeout passes or the broker shuts down.
    async fn await_client_gone(&mut self) {
        let limit = self.closing_timeout();
        let mut shutdown = self.shutdown.clone();
        let gone = async {
            loop {
                self.buf.clear();
                if !self.fill().await {
                    return;
                }
            }
        };
        let stopping = async move {
            if !*shutdown.borrow_and_update() {
                let _ = shutdown.changed().await;
            }
        };
        tokio::select! {
            _ = tokio::time::timeout(limit, gone) => {}
            _ = stopping => {}
        }
    }

    /// RabbitMQ's rule: the heartbeat interval if there is one below 30 s, else 30 s.
    fn closing_timeout(&self) -> Duration {
        let heartbeat = Duration::from_secs(u64::from(self.heartbeat));
        if heartbeat.is_zero() {
            CLOSING_TIMEOUT
        } else {
            heartbeat.min(CLOSING_TIMEOUT)
        }
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
                Ok(Next::Continue) => {}
                Ok(Next::ClientClosed) => break Ending::ClientClosed,
                Ok(Next::Done) => break Ending::Done,
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
        match ending {
            Ending::Done => {}
            Ending::ClientClosed => self.await_client_gone().await,
            Ending::Error(e) => {
                self.send_close(&e);
                self.await_close_ok().await;
            }
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

    /// Handles every complete frame in the buffer. What comes next: go on, or the connection is over.
    fn process_buffer(
        &mut self,
        session: &mut Session,
        channels: &mut HashMap<u16, Channel>,
    ) -> Result<Next, MethodError> {
        let next = self.handle_frames(session, channels);
        session.flush_confirms();
        next
    }

    fn handle_frames(
        &mut self,
        session: &mut Session,
        channels: &mut HashMap<u16, Channel>,
    ) -> Result<Next, MethodError> {
        while let Some(frame) = frame::parse(&mut self.buf, self.frame_max)? {
            let next = self.handle_frame(session, channels, frame)?;
            if !matches!(next, Next::Continue) {
                return Ok(next);
            }
            if self.outbox.over_limit() {
                // The rest waits until the client has read what it is owed.
                break;
            }
        }
        Ok(Next::Continue)
    }

    fn handle_frame(
        &mut self,
        session: &mut Session,
        channels: &mut HashMap<u16, Channel>,
        frame: Frame,
    ) -> Result<Next, MethodError> {
        let channel_id = match &frame {
            Frame::Heartbeat => return Ok(Next::Continue),
            Frame::Method { channel, .. }
            | Frame::Header { channel, .. }
            | Frame::Body { channel, .. }
            | Frame::Refused { channel, .. } => *channel,
        };
        if channel_id == 0 {
            return self.handle_channel_zero(frame);
        }
        let (class_id, method_id) = match &frame {
            Frame::Method {
                class_id,
                method_id,
                ..
            } => (*class_id, *method_id),
            _ => (0, 0),
        };
        if (class_id, method_id) == BASIC_PUBLISH {
            self.publisher = true;
        }
        match channels.get_mut(&channel_id) {
            None => {
                if let Frame::Method { method, .. } = &frame {
                    if let AMQPClass::Channel(chan::AMQPMethod::Open(_)) = **method {
                        // As RabbitMQ: channel_max bounds how many channels
                        // are open, whatever their numbers.
                        if channels.len() >= usize::from(self.channel_max) {
                            // (RabbitMQ names no method: class and method 0.)
                            return Err(AmqpError::NotAllowed(format!(
                                "number of channels opened ({}) has reached the negotiated channel_max ({})",
                                channels.len(),
                                self.channel_max
                            ))
                            .into());
                        }
                        let channel = Channel::open(channel_id, session);
                        channels.insert(channel_id, channel);
                        self.broker.stats.channels.fetch_add(1, Ordering::Relaxed);
                        self.send(
                            channel_id,
                            AMQPClass::Channel(chan::AMQPMethod::OpenOk(chan::OpenOk {})),
                        );
                        return Ok(Next::Continue);
                    }
                }
                Err(MethodError::new(
                    AmqpError::ChannelError("expected 'channel.open'".into()),
                    class_id,
                    method_id,
                ))
            }
            Some(channel) => {
                if (class_id, method_id) == CHANNEL_OPEN && !channel.is_closing() {
                    return Err(MethodError::new(
                        AmqpError::ChannelError("second 'channel.open' seen".into()),
                        class_id,
                        method_id,
                    ));
                }
                if class_id == CONNECTION {
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
                Ok(Next::Continue)
            }
        }
    }

    fn handle_channel_zero(&mut self, frame: Frame) -> Result<Next, MethodError> {
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
                Ok(Next::ClientClosed)
            }
            AMQPClass::Connection(conn::AMQPMethod::CloseOk(_)) => Ok(Next::Done),
            AMQPClass::Connection(conn::AMQPMethod::Blocked(_))
            | AMQPClass::Connection(conn::AMQPMethod::Unblocked(_)) => Ok(Next::Continue),
            AMQPClass::Connection(conn::AMQPMethod::UpdateSecret(_)) => {
                self.send(
                    0,
                    AMQPClass::Connection(conn::AMQPMethod::UpdateSecretOk(
                        conn::UpdateSecretOk {},
                    )),
                );
                Ok(Next::Continue)
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
