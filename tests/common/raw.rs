//! A raw AMQP 0-9-1 client over a tokio TcpStream, for feeding the broker hand-built and
//! malformed frames. Well-formed methods are encoded with amq-protocol; everything else is
//! built byte by byte.

use std::io;
use std::time::Duration;

use amq_protocol::frame::{gen_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::{basic, channel, connection, parse_class, queue, AMQPClass};
use amq_protocol::types::{FieldTable, LongString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;

/// The AMQP 0-9-1 protocol header.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// How long a single read may wait for the broker before the test fails as a hang.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One frame as it came off the wire.
#[derive(Debug, Clone)]
pub struct RawFrame {
    pub kind: u8,
    pub channel: u16,
    pub payload: Vec<u8>,
}

/// What the broker did next.
#[derive(Debug)]
pub enum Event {
    Frame(RawFrame),
    /// Orderly close (read returned 0).
    Eof,
    /// The socket was reset / errored.
    Reset(io::ErrorKind),
}

/// A connection.close (or channel.close) sent by the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub channel: u16,
    pub code: u16,
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

/// How the broker ended a connection we broke.
#[derive(Debug)]
pub enum Ending {
    /// connection.close on channel 0.
    Close(Close),
    /// The socket closed (EOF or reset) without a close frame.
    Dropped(String),
}

/// Serialize a well-formed frame with amq-protocol.
pub fn encode(frame: &AMQPFrame) -> Vec<u8> {
    let ctx = gen_frame(frame)(WriteContext::from(Vec::new()))
        .unwrap_or_else(|e| panic!("encode {frame:?}: {e:?}"));
    ctx.write
}

/// A frame built by hand: type, channel, size, payload, frame-end.
pub fn raw_frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.push(kind);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(FRAME_END);
    out
}

/// A method frame carrying `method` on `channel`.
pub fn method(channel: u16, method: AMQPClass) -> Vec<u8> {
    encode(&AMQPFrame::Method(channel, method))
}

pub fn channel_open() -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}))
}

pub fn queue_declare(name: &str) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: name.into(),
        ..Default::default()
    }))
}

pub fn basic_publish(exchange: &str, routing_key: &str) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        mandatory: false,
        immediate: false,
    }))
}

pub fn basic_get(queue: &str) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
        queue: queue.into(),
        no_ack: true,
    }))
}

/// A basic content header frame announcing `body_size` bytes.
pub fn content_header(channel: u16, body_size: u64) -> Vec<u8> {
    encode(&AMQPFrame::Header(
        channel,
        AMQPContentHeader {
            class_id: 60,
            body_size,
            properties: basic::AMQPProperties::default(),
        },
    ))
}

pub fn body(channel: u16, data: &[u8]) -> Vec<u8> {
    raw_frame(FRAME_BODY, channel, data)
}

/// Decode a method frame's payload.
pub fn decode_method(frame: &RawFrame) -> AMQPClass {
    assert_eq!(
        frame.kind, FRAME_METHOD,
        "expected a method frame, got {frame:?}"
    );
    match parse_class(&frame.payload[..]) {
        Ok((_, m)) => m,
        Err(e) => panic!("cannot parse method frame {frame:?}: {e:?}"),
    }
}

pub struct RawClient {
    stream: TcpStream,
    rbuf: Vec<u8>,
    /// How long one read may wait (`READ_TIMEOUT` unless changed).
    read_timeout: Duration,
}

impl RawClient {
    /// TCP connect only.
    pub async fn connect(addr: &str) -> RawClient {
        let stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        RawClient::from_stream(stream)
    }

    /// A client on a socket connected elsewhere (e.g. from another network namespace).
    pub fn from_stream(stream: TcpStream) -> RawClient {
        stream.set_nodelay(true).ok();
        RawClient {
            stream,
            rbuf: Vec::new(),
            read_timeout: READ_TIMEOUT,
        }
    }

    /// Connect and run the whole handshake as guest/guest on vhost `/`, with tune-ok carrying
    /// `frame_max`, the server's channel_max and heartbeat 0.
    pub async fn open(addr: &str, frame_max: u32) -> RawClient {
        let mut c = RawClient::connect(addr).await;
        c.write(PROTOCOL_HEADER).await;
        match c.expect_method().await {
            (0, AMQPClass::Connection(connection::AMQPMethod::Start(_))) => {}
            other => panic!("expected connection.start, got {other:?}"),
        }
        let mut caps = FieldTable::default();
        caps.insert(
            "authentication_failure_close".into(),
            amq_protocol::types::AMQPValue::Boolean(true),
        );
        let mut props = FieldTable::default();
        props.insert(
            "product".into(),
            amq_protocol::types::AMQPValue::LongString(LongString::from("warren raw test")),
        );
        props.insert(
            "capabilities".into(),
            amq_protocol::types::AMQPValue::FieldTable(caps),
        );
        c.write(&method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: LongString::from(&b"\0guest\0guest"[..]),
                locale: "en_US".into(),
            })),
        ))
        .await;
        let tune = match c.expect_method().await {
            (0, AMQPClass::Connection(connection::AMQPMethod::Tune(t))) => t,
            other => panic!("expected connection.tune, got {other:?}"),
        };
        c.tune_ok_and_open(tune.channel_max, frame_max, 0).await;
        c
    }

    /// Lets one read wait up to `limit` (for answers that follow a large amount of work).
    /// The socket and whatever was read but not consumed yet, for tests that read and
    /// write from different tasks.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.rbuf)
    }

    pub fn set_read_timeout(&mut self, limit: Duration) {
        self.read_timeout = limit;
    }

    /// Answers connection.tune with these values, opens vhost `/` and waits for open-ok.
    pub async fn tune_ok_and_open(&mut self, channel_max: u16, frame_max: u32, heartbeat: u16) {
        self.write(&method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max,
                frame_max,
                heartbeat,
            })),
        ))
        .await;
        self.write(&method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: "/".into(),
            })),
        ))
        .await;
        match self.expect_method().await {
            (0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))) => {}
            other => panic!("expected connection.open-ok, got {other:?}"),
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .unwrap_or_else(|e| panic!("write to broker: {e}"));
        self.stream.flush().await.expect("flush");
    }

    /// Write, tolerating a broker that already closed the socket.
    pub async fn try_write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Half-close our side (the broker sees EOF).
    pub async fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Open `channel` and wait for channel.open-ok.
    pub async fn open_channel(&mut self, ch: u16) {
        self.write(&method(ch, channel_open())).await;
        match self.expect_method().await {
            (c, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) if c == ch => {}
            other => panic!("expected channel.open-ok on {ch}, got {other:?}"),
        }
    }

    async fn fill(&mut self, need: usize) -> Result<(), Event> {
        while self.rbuf.len() < need {
            self.rbuf.reserve(65536);
            let limit = self.read_timeout;
            let read = tokio::time::timeout(limit, self.stream.read_buf(&mut self.rbuf));
            match read.await {
                Err(_) => {
                    panic!("broker sent nothing and kept the socket open for {limit:?} (hang)")
                }
                Ok(Ok(0)) => return Err(Event::Eof),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(Event::Reset(e.kind())),
            }
        }
        Ok(())
    }

    /// Reads until `n` basic.deliver frames arrived (heartbeats, headers and
    /// bodies are skipped); returns how many came before the socket ended.
    /// Cheap enough to count 100,000s of deliveries in a debug build.
    pub async fn count_deliveries(&mut self, n: usize) -> usize {
        let mut seen = 0;
        let mut at = 0;
        loop {
            while self.rbuf.len() - at >= 7 {
                let b = &self.rbuf[at..];
                let size = u32::from_be_bytes([b[3], b[4], b[5], b[6]]) as usize;
                if b.len() < 8 + size {
                    break;
                }
                if b[0] == 1 && b.get(7..11) == Some(&[0, 60, 0, 60][..]) {
                    seen += 1;
                }
                at += 8 + size;
            }
            self.rbuf.drain(..at);
            at = 0;
            if seen >= n {
                return seen;
            }
            let need = self.rbuf.len() + 1;
            if self.fill(need).await.is_err() {
                return seen;
            }
        }
    }

    /// Read exactly `n` raw bytes (e.g. a protocol header sent back), or what came before EOF.
    pub async fn read_bytes(&mut self, n: usize) -> Vec<u8> {
        let _ = self.fill(n).await;
        let take = n.min(self.rbuf.len());
        self.rbuf.drain(..take).collect()
    }

    /// The next frame, or how the socket ended.
    pub async fn next_event(&mut self) -> Event {
        if let Err(ev) = self.fill(7).await {
            return ev;
        }
        let kind = self.rbuf[0];
        let channel = u16::from_be_bytes([self.rbuf[1], self.rbuf[2]]);
        let size = u32::from_be_bytes([self.rbuf[3], self.rbuf[4], self.rbuf[5], self.rbuf[6]]);
        let total = 7 + size as usize + 1;
        if let Err(ev) = self.fill(total).await {
            return ev;
        }
        assert_eq!(
            self.rbuf[total - 1],
            FRAME_END,
            "broker sent a frame with a bad frame-end byte"
        );
        let payload = self.rbuf[7..total - 1].to_vec();
        self.rbuf.drain(..total);
        Event::Frame(RawFrame {
            kind,
            channel,
            payload,
        })
    }

    /// The next non-heartbeat frame; panics if the socket ends.
    pub async fn next_frame(&mut self) -> RawFrame {
        loop {
            match self.next_event().await {
                Event::Frame(f) if f.kind == FRAME_HEARTBEAT => continue,
                Event::Frame(f) => return f,
                other => panic!("expected a frame, the socket ended: {other:?}"),
            }
        }
    }

    /// The next method frame, decoded.
    pub async fn expect_method(&mut self) -> (u16, AMQPClass) {
        let f = self.next_frame().await;
        let m = decode_method(&f);
        (f.channel, m)
    }

    /// Read until a connection.close arrives or the socket ends. Other frames (e.g. a
    /// channel.close or deliveries) are skipped.
    pub async fn ending(&mut self) -> Ending {
        loop {
            match self.next_event().await {
                Event::Frame(f) if f.kind == FRAME_METHOD => match decode_method(&f) {
                    AMQPClass::Connection(connection::AMQPMethod::Close(c)) => {
                        return Ending::Close(Close {
                            channel: f.channel,
                            code: c.reply_code,
                            text: c.reply_text.to_string(),
                            class_id: c.class_id,
                            method_id: c.method_id,
                        })
                    }
                    other => eprintln!("skipping {other:?} while waiting for connection.close"),
                },
                Event::Frame(_) => continue,
                Event::Eof => return Ending::Dropped("EOF".into()),
                Event::Reset(k) => return Ending::Dropped(format!("reset: {k:?}")),
            }
        }
    }

    /// Expect a connection.close on channel 0.
    pub async fn expect_connection_close(&mut self) -> Close {
        match self.ending().await {
            Ending::Close(c) => {
                assert_eq!(c.channel, 0, "connection.close must come on channel 0");
                c
            }
            Ending::Dropped(how) => {
                panic!("expected connection.close, the broker dropped the socket ({how})")
            }
        }
    }

    /// Send connection.close-ok and check the broker then closes the socket.
    pub async fn close_ok_and_expect_socket_closed(&mut self) {
        // The broker may already have closed; a failed write is fine then.
        let _ = self
            .try_write(&method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
            ))
            .await;
        self.expect_socket_closed().await;
    }

    /// Read (discarding anything) until EOF or reset; panics if the socket stays open.
    pub async fn expect_socket_closed(&mut self) {
        loop {
            self.rbuf.clear();
            self.rbuf.reserve(4096);
            let limit = self.read_timeout;
            let read = tokio::time::timeout(limit, self.stream.read_buf(&mut self.rbuf));
            match read.await {
                Err(_) => panic!("the broker kept the socket open for {limit:?}"),
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => continue,
            }
        }
    }
}
