//! A hostile client against a real broker process: input built to exhaust the
//! broker's stack or memory. Each test checks that the broker refuses (or
//! bounds) the input, stays alive, serves another client, and keeps its
//! resident memory bounded (read from /proc). Frames are written by hand:
//! client libraries (and amq-protocol's encoder) recurse on nested tables.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::protocol::{basic, channel, connection, queue, AMQPClass};
use common::raw::*;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;

// ---------------------------------------------------------------- wire helpers

fn short_str(out: &mut Vec<u8>, s: &str) {
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

/// A field value (type code included) nesting `levels` tables (each holding
/// field "x") or arrays, the innermost one empty.
fn nested(levels: usize, arrays: bool) -> Vec<u8> {
    let mut value = vec![if arrays { b'A' } else { b'F' }, 0, 0, 0, 0];
    for _ in 1..levels {
        let mut outer = Vec::with_capacity(value.len() + 7);
        if arrays {
            outer.push(b'A');
            outer.extend_from_slice(&(value.len() as u32).to_be_bytes());
        } else {
            outer.push(b'F');
            outer.extend_from_slice(&((value.len() + 2) as u32).to_be_bytes());
            outer.extend_from_slice(&[1, b'x']);
        }
        outer.extend_from_slice(&value);
        value = outer;
    }
    value
}

/// A field table (length prefix included) of already encoded values.
fn table(fields: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (key, value) in fields {
        short_str(&mut body, key);
        body.extend_from_slice(value);
    }
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn long_str_value(s: &str) -> Vec<u8> {
    let mut out = vec![b'S'];
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    out
}

/// A method frame from its ids and hand-encoded arguments.
fn method_frame(channel: u16, class_id: u16, method_id: u16, args: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(args.len() + 4);
    payload.extend_from_slice(&class_id.to_be_bytes());
    payload.extend_from_slice(&method_id.to_be_bytes());
    payload.extend_from_slice(args);
    raw_frame(FRAME_METHOD, channel, &payload)
}

/// A content header frame with these property flags and properties.
fn header_frame(channel: u16, body_size: u64, flags: u16, properties: &[u8]) -> Vec<u8> {
    let mut payload = vec![0, 60, 0, 0];
    payload.extend_from_slice(&body_size.to_be_bytes());
    payload.extend_from_slice(&flags.to_be_bytes());
    payload.extend_from_slice(properties);
    raw_frame(FRAME_HEADER, channel, &payload)
}

/// A content header carrying only a headers table.
fn headers_frame(channel: u16, body_size: u64, headers: &[u8]) -> Vec<u8> {
    header_frame(channel, body_size, 1 << 13, headers)
}

fn publish_frame(channel: u16, exchange: &str, routing_key: &str, mandatory: bool) -> Vec<u8> {
    let mut args = vec![0, 0];
    short_str(&mut args, exchange);
    short_str(&mut args, routing_key);
    args.push(u8::from(mandatory));
    method_frame(channel, 60, 40, &args)
}

fn queue_declare_args(name: &str, durable: bool, arguments: &[u8]) -> Vec<u8> {
    let mut args = vec![0, 0];
    short_str(&mut args, name);
    args.push(if durable { 0b10 } else { 0 });
    args.extend_from_slice(arguments);
    args
}

fn bind_args(first: &str, second: &str, key: &str, arguments: &[u8], nowait_bit: bool) -> Vec<u8> {
    let mut args = vec![0, 0];
    short_str(&mut args, first);
    short_str(&mut args, second);
    short_str(&mut args, key);
    if nowait_bit {
        args.push(0);
    }
    args.extend_from_slice(arguments);
    args
}

fn consume_args(queue: &str, tag: &str, no_ack: bool, arguments: &[u8]) -> Vec<u8> {
    let mut args = vec![0, 0];
    short_str(&mut args, queue);
    short_str(&mut args, tag);
    args.push(if no_ack { 0b10 } else { 0 });
    args.extend_from_slice(arguments);
    args
}

fn exchange_declare_args(name: &str, kind: &str, durable: bool, arguments: &[u8]) -> Vec<u8> {
    let mut args = vec![0, 0];
    short_str(&mut args, name);
    short_str(&mut args, kind);
    args.push(if durable { 0b10 } else { 0 });
    args.extend_from_slice(arguments);
    args
}

/// Sends the protocol header and a start-ok with these client properties;
/// returns the client and what the broker answered the start-ok with.
async fn start_ok(addr: &str, client_properties: &[u8]) -> (RawClient, Result<RawFrame, String>) {
    let mut c = RawClient::connect(addr).await;
    c.write(PROTOCOL_HEADER).await;
    match c.expect_method().await {
        (0, AMQPClass::Connection(connection::AMQPMethod::Start(_))) => {}
        other => panic!("expected connection.start, got {other:?}"),
    }
    let mut args = client_properties.to_vec();
    short_str(&mut args, "PLAIN");
    let response = b"\0guest\0guest";
    args.extend_from_slice(&(response.len() as u32).to_be_bytes());
    args.extend_from_slice(response);
    short_str(&mut args, "en_US");
    let sent = c.try_write(&method_frame(0, 10, 11, &args)).await;
    let answer = match c.next_event().await {
        Event::Frame(f) => Ok(f),
        other => Err(format!("{other:?} (write: {sent:?})")),
    };
    (c, answer)
}

/// Finishes a handshake whose start-ok was answered with connection.tune.
async fn tune_and_open(c: &mut RawClient) {
    tune_and_open_with(c, 0).await;
}

async fn tune_and_open_with(c: &mut RawClient, heartbeat: u16) {
    c.tune_ok_and_open(16, 131_072, heartbeat).await;
}

/// Client properties announcing the capabilities these tests rely on.
fn capable_client_properties() -> Vec<u8> {
    let caps = table(&[
        ("authentication_failure_close", vec![b't', 1]),
        ("connection.blocked", vec![b't', 1]),
    ]);
    let mut caps_value = vec![b'F'];
    caps_value.extend_from_slice(&caps);
    table(&[
        ("product", long_str_value("warren hostile test")),
        ("capabilities", caps_value),
    ])
}

/// A logged-in raw client that announced connection.blocked.
async fn open_capable(addr: &str) -> RawClient {
    open_capable_with(addr, 0).await
}

/// The same, with heartbeats every `heartbeat` seconds (the broker sends them;
/// this client never does).
async fn open_capable_with(addr: &str, heartbeat: u16) -> RawClient {
    let (mut c, answer) = start_ok(addr, &capable_client_properties()).await;
    let tune = answer.expect("an answer to start-ok");
    assert_eq!(&tune.payload[..4], &[0, 10, 0, 30], "expected tune");
    tune_and_open_with(&mut c, heartbeat).await;
    c
}

/// Class and method ids of a method frame.
fn ids(frame: &RawFrame) -> (u16, u16) {
    assert_eq!(
        frame.kind, FRAME_METHOD,
        "expected a method frame: {frame:?}"
    );
    let p = &frame.payload;
    (
        u16::from_be_bytes([p[0], p[1]]),
        u16::from_be_bytes([p[2], p[3]]),
    )
}

/// Reply code and text of a connection.close or channel.close payload.
fn close_of(frame: &RawFrame) -> (u16, String) {
    let p = &frame.payload[4..];
    let code = u16::from_be_bytes([p[0], p[1]]);
    let len = p[2] as usize;
    (code, String::from_utf8_lossy(&p[3..3 + len]).into_owned())
}

/// The next method frame that is not a heartbeat.
async fn next_method_frame(c: &mut RawClient) -> RawFrame {
    loop {
        let f = c.next_frame().await;
        if f.kind == FRAME_METHOD {
            return f;
        }
    }
}

/// Expects channel.close with `code` on `ch`, answers close-ok and reopens it.
async fn expect_channel_refusal(c: &mut RawClient, ch: u16, code: u16, text: &str) {
    let f = next_method_frame(c).await;
    assert_eq!(ids(&f), (20, 40), "expected channel.close, got {f:?}");
    let (got, message) = close_of(&f);
    assert_eq!(got, code, "{message}");
    assert!(
        message.contains(text),
        "{message:?} should contain {text:?}"
    );
    c.write(&method(
        ch,
        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
    ))
    .await;
    c.open_channel(ch).await;
}

/// Expects the broker to end the connection with `code` (or, for frames too
/// large to read, to drop the socket while the client is still writing).
async fn expect_connection_refusal(c: &mut RawClient, code: u16, text: &str) {
    match c.ending().await {
        Ending::Close(close) => {
            assert_eq!(close.code, code, "{}", close.text);
            assert!(
                close.text.contains(text),
                "{:?} should contain {text:?}",
                close.text
            );
        }
        Ending::Dropped(how) => assert_eq!(code, 501, "dropped ({how}) instead of {code}"),
    }
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

const MB: u64 = 1 << 20;

/// Levels RabbitMQ 3.10 accepts and Warren must accept too.
const ACCEPTED: usize = 1_000;
/// Deeper than Warren's limit (1,024) yet small enough for one frame.
const REFUSED: usize = 10_000;
/// As deep as the reproduction: more than any frame can carry.
const HUGE: usize = 100_000;

// ---------------------------------------------------------------- nesting

#[tokio::test]
async fn nested_client_properties_before_login() {
    within(async {
        if skip_if_external("nested_client_properties_before_login") {
            return;
        }
        let broker = TestBroker::start().await;
        let pid = broker.pid().expect("pid");
        for arrays in [false, true] {
            // 1,000 levels: the handshake goes on.
            let props = table(&[("x", nested(ACCEPTED, arrays))]);
            let (mut c, answer) = start_ok(&broker.addr(), &props).await;
            let f = answer.expect("an answer");
            assert_eq!(ids(&f), (10, 30), "1,000 levels: expected connection.tune");
            tune_and_open(&mut c).await;

            // Past the limit: 502 SYNTAX_ERROR, before any login.
            let props = table(&[("x", nested(REFUSED, arrays))]);
            let (_, answer) = start_ok(&broker.addr(), &props).await;
            let f = answer.expect("a connection.close");
            assert_eq!(ids(&f), (10, 50));
            let (code, text) = close_of(&f);
            assert_eq!(code, 502, "{text}");
            assert!(text.contains("nested deeper than 1024 levels"), "{text}");

            // 100,000 levels do not fit in a frame: 501, or the socket drops.
            let props = table(&[("x", nested(HUGE, arrays))]);
            let (_, answer) = start_ok(&broker.addr(), &props).await;
            if let Ok(f) = answer {
                assert_eq!(ids(&f), (10, 50));
                assert_eq!(close_of(&f).0, 501, "{:?}", close_of(&f));
            }
            assert_broker_serves(&broker.uri()).await;
        }
        let rss = rss(pid);
        eprintln!("broker RSS after the nested handshakes: {} MB", rss / MB);
        assert!(rss < 256 * MB, "RSS {rss}");
    })
    .await;
}

#[tokio::test]
async fn nested_message_headers() {
    within(async {
        let broker = TestBroker::start().await;
        let q = unique("deep-headers");
        let dlq = unique("deep-headers-dl");
        let mut c = RawClient::open(&broker.addr(), 131_072).await;
        c.open_channel(1).await;
        // A dead-letter target, and a queue bound to amq.headers whose
        // rejected messages go there.
        c.write(&method_frame(
            1,
            50,
            10,
            &queue_declare_args(&dlq, false, &table(&[])),
        ))
        .await;
        assert_eq!(ids(&next_method_frame(&mut c).await), (50, 11));
        let args = table(&[
            ("x-dead-letter-exchange", long_str_value("")),
            ("x-dead-letter-routing-key", long_str_value(&dlq)),
        ]);
        c.write(&method_frame(
            1,
            50,
            10,
            &queue_declare_args(&q, false, &args),
        ))
        .await;
        assert_eq!(ids(&next_method_frame(&mut c).await), (50, 11));
        let binding = table(&[
            ("x-match", long_str_value("all")),
            ("route", long_str_value("deep")),
        ]);
        c.write(&method_frame(
            1,
            50,
            20,
            &bind_args(&q, "amq.headers", "", &binding, true),
        ))
        .await;
        assert_eq!(ids(&next_method_frame(&mut c).await), (50, 21));

        for arrays in [false, true] {
            // 1,000 levels: routed through the headers exchange (which reads
            // the headers), delivered byte for byte, then dead-lettered (which
            // rewrites them).
            let headers = table(&[
                ("route", long_str_value("deep")),
                ("x", nested(ACCEPTED, arrays)),
            ]);
            let header = headers_frame(1, 4, &headers);
            let mut publish = publish_frame(1, "amq.headers", "", false);
            publish.extend_from_slice(&header);
            publish.extend_from_slice(&body(1, b"deep"));
            c.write(&publish).await;
            let mut get = vec![0, 0];
            short_str(&mut get, &q);
            get.push(0); // no_ack = false
            c.write(&method_frame(1, 60, 70, &get)).await;
            let ok = next_method_frame(&mut c).await;
            assert_eq!(ids(&ok), (60, 71), "expected get-ok: {ok:?}");
            let delivered = c.next_frame().await;
            assert_eq!(delivered.kind, FRAME_HEADER);
            assert_eq!(
                delivered.payload,
                header[7..header.len() - 1],
                "the header comes back byte for byte"
            );
            assert_eq!(c.next_frame().await.payload, b"deep");
            // basic.reject delivery tag (the first u64 after the ids), requeue=false.
            let tag = &ok.payload[4..12];
            let mut reject = tag.to_vec();
            reject.push(0);
            c.write(&method_frame(1, 60, 90, &reject)).await;
            let mut get = vec![0, 0];
            short_str(&mut get, &dlq);
            get.push(1);
            c.write(&method_frame(1, 60, 70, &get)).await;
            assert_eq!(ids(&next_method_frame(&mut c).await), (60, 71));
            let dead = c.next_frame().await;
            assert_eq!(dead.kind, FRAME_HEADER);
            assert!(
                dead.payload.windows(7).any(|w| w == b"x-death"),
                "dead-lettered with x-death"
            );
            assert!(
                dead.payload.len() > header.len(),
                "the deep headers are still there"
            );
            assert_eq!(c.next_frame().await.payload, b"deep");
        }

        // Past the limit: the connection closes with 502.
        let headers = table(&[("x", nested(REFUSED, false))]);
        let mut publish = publish_frame(1, "", &q, false);
        publish.extend_from_slice(&headers_frame(1, 0, &headers));
        c.write(&publish).await;
        expect_connection_refusal(&mut c, 502, "nested deeper than 1024 levels").await;

        // More than a frame can carry: 501.
        let mut c = RawClient::open(&broker.addr(), 131_072).await;
        c.open_channel(1).await;
        let headers = table(&[("x", nested(HUGE, true))]);
        let mut publish = publish_frame(1, "", &q, false);
        publish.extend_from_slice(&headers_frame(1, 0, &headers));
        let _ = c.try_write(&publish).await;
        expect_connection_refusal(&mut c, 501, "frame_too_large").await;

        assert_broker_serves(&broker.uri()).await;
        if let Some(pid) = broker.pid() {
            let rss = rss(pid);
            eprintln!("broker RSS after the nested headers: {} MB", rss / MB);
            assert!(rss < 256 * MB, "RSS {rss}");
        }
    })
    .await;
}

#[tokio::test]
async fn nested_arguments_of_declare_bind_and_consume() {
    within(async {
        let broker = TestBroker::start().await;
        let mut c = RawClient::open(&broker.addr(), 131_072).await;
        c.open_channel(1).await;
        let q = unique("deep-args");
        let x = unique("deep-args-x");
        for (levels, arrays) in [
            (ACCEPTED, false),
            (ACCEPTED, true),
            (REFUSED, false),
            (REFUSED, true),
        ] {
            let deep = table(&[("x-deep", nested(levels, arrays))]);
            let accepted = levels == ACCEPTED;
            let name = format!("{q}-{levels}-{arrays}");
            let xname = format!("{x}-{levels}-{arrays}");
            let cases: Vec<(Vec<u8>, (u16, u16))> = vec![
                (
                    method_frame(1, 50, 10, &queue_declare_args(&name, false, &deep)),
                    (50, 11),
                ),
                (
                    method_frame(
                        1,
                        40,
                        10,
                        &exchange_declare_args(&xname, "direct", false, &deep),
                    ),
                    (40, 11),
                ),
                (
                    method_frame(1, 50, 20, &bind_args(&name, "amq.direct", "k", &deep, true)),
                    (50, 21),
                ),
                (
                    method_frame(
                        1,
                        40,
                        30,
                        &bind_args(&xname, "amq.direct", "k", &deep, true),
                    ),
                    (40, 31),
                ),
                (
                    method_frame(
                        1,
                        50,
                        50,
                        &bind_args(&name, "amq.direct", "k", &deep, false),
                    ),
                    (50, 51),
                ),
                (
                    method_frame(1, 60, 20, &consume_args(&name, &name, true, &deep)),
                    (60, 21),
                ),
            ];
            for (frame, ok) in cases {
                c.write(&frame).await;
                if accepted {
                    let f = next_method_frame(&mut c).await;
                    assert_eq!(ids(&f), ok, "{levels} levels: {f:?}");
                } else {
                    expect_channel_refusal(&mut c, 1, 406, "nested deeper than 1024 levels").await;
                }
            }
        }
        // The connection is still fine; a frame too large ends it with 501.
        let deep = table(&[("x-deep", nested(HUGE, true))]);
        let _ = c
            .try_write(&method_frame(
                1,
                50,
                10,
                &queue_declare_args(&q, false, &deep),
            ))
            .await;
        expect_connection_refusal(&mut c, 501, "frame_too_large").await;
        assert_broker_serves(&broker.uri()).await;
    })
    .await;
}

#[tokio::test]
async fn deeply_nested_durable_arguments_survive_a_restart() {
    within(async {
        if skip_if_external("deeply_nested_durable_arguments_survive_a_restart") {
            return;
        }
        let mut broker = TestBroker::start().await;
        let q = unique("deep-durable");
        let x = unique("deep-durable-x");
        let deep = table(&[("x-deep", nested(ACCEPTED, false))]);
        let mut c = RawClient::open(&broker.addr(), 131_072).await;
        c.open_channel(1).await;
        c.write(&method_frame(
            1,
            50,
            10,
            &queue_declare_args(&q, true, &deep),
        ))
        .await;
        assert_eq!(ids(&next_method_frame(&mut c).await), (50, 11));
        c.write(&method_frame(
            1,
            40,
            10,
            &exchange_declare_args(&x, "direct", true, &deep),
        ))
        .await;
        assert_eq!(ids(&next_method_frame(&mut c).await), (40, 11));
        c.write(&method_frame(
            1,
            50,
            20,
            &bind_args(&q, &x, "k", &deep, true),
        ))
        .await;
        assert_eq!(ids(&next_method_frame(&mut c).await), (50, 21));
        drop(c);

        broker.restart().await;
        let mut c = RawClient::open(&broker.addr(), 131_072).await;
        c.open_channel(1).await;
        // The queue is back (redeclared with the same arguments) and the
        // binding between the two still routes.
        c.write(&method_frame(
            1,
            50,
            10,
            &queue_declare_args(&q, true, &deep),
        ))
        .await;
        assert_eq!(ids(&next_method_frame(&mut c).await), (50, 11));
        let mut publish = publish_frame(1, &x, "k", true);
        publish.extend_from_slice(&header_frame(1, 2, 0, &[]));
        publish.extend_from_slice(&body(1, b"ok"));
        c.write(&publish).await;
        c.write(&method(1, basic_get(&q))).await;
        let f = next_method_frame(&mut c).await;
        assert_eq!(
            ids(&f),
            (60, 71),
            "expected the message routed after the restart: {f:?}"
        );
    })
    .await;
}

// ---------------------------------------------------------------- the outbox

/// Reads frames off a socket half (for tests that write from another task).
struct FrameReader {
    half: OwnedReadHalf,
    buf: Vec<u8>,
}

impl FrameReader {
    async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() >= 7 {
                let size = u32::from_be_bytes([self.buf[3], self.buf[4], self.buf[5], self.buf[6]])
                    as usize;
                if self.buf.len() >= size + 8 {
                    let kind = self.buf[0];
                    let payload = self.buf[7..7 + size].to_vec();
                    self.buf.drain(..size + 8);
                    return Some((kind, payload));
                }
            }
            self.buf.reserve(256 * 1024);
            match tokio::time::timeout(Duration::from_secs(30), self.half.read_buf(&mut self.buf))
                .await
            {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    /// Reads until a method with these ids arrives; false if the socket ends first.
    async fn until(&mut self, class_id: u16, method_id: u16) -> bool {
        let want = [
            (class_id >> 8) as u8,
            class_id as u8,
            (method_id >> 8) as u8,
            method_id as u8,
        ];
        while let Some((kind, payload)) = self.next().await {
            if kind == FRAME_METHOD && payload[..4] == want {
                return true;
            }
        }
        false
    }
}

/// Waits until `progress` stops moving for `quiet`; returns its value then.
async fn stalled(progress: &AtomicUsize, quiet: Duration) -> usize {
    let mut last = progress.load(Ordering::Relaxed);
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = progress.load(Ordering::Relaxed);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return now;
        }
    }
}

#[tokio::test]
async fn a_client_that_never_reads_is_no_longer_read() {
    within_for(Duration::from_secs(120), async {
        if skip_if_external("a_client_that_never_reads_is_no_longer_read") {
            return;
        }
        let broker = TestBroker::start().await;
        let pid = broker.pid().expect("pid");
        let mut c = RawClient::open(&broker.addr(), 131_072).await;
        c.open_channel(1).await;
        let before = rss(pid);
        let (stream, _) = c.into_parts();
        let (read, mut write) = stream.into_split();

        // Mandatory publishes nobody can route: each comes back as a
        // basic.return carrying its 50 KB body, which this client never reads.
        const COUNT: usize = 2_000;
        const BODY: usize = 50_000;
        let nowhere = unique("nowhere");
        let mut one = publish_frame(1, "", &nowhere, true);
        one.extend_from_slice(&header_frame(1, BODY as u64, 0, &[]));
        one.extend_from_slice(&body(1, &vec![7u8; BODY]));
        let sent = Arc::new(AtomicUsize::new(0));
        let writer = {
            let sent = sent.clone();
            tokio::spawn(async move {
                for _ in 0..COUNT {
                    write.write_all(&one).await.expect("write");
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                write
            })
        };
        let stuck_at = stalled(&sent, Duration::from_secs(2)).await;
        let held = rss(pid).saturating_sub(before);
        eprintln!(
            "the broker stopped reading after {stuck_at} of {COUNT} publishes ({} MB written); RSS grew by {} MB",
            stuck_at * one_len(BODY, &nowhere) / MB as usize,
            held / MB
        );
        assert!(stuck_at < COUNT / 2, "the broker kept reading: {stuck_at} publishes taken");
        assert!(held < 48 * MB, "RSS grew by {held} bytes");

        // Nobody else waits for it.
        assert_broker_serves(&broker.uri()).await;

        // Once the client reads, every publish comes back: nothing was dropped.
        let mut reader = FrameReader { half: read, buf: Vec::new() };
        let mut returns = 0;
        while returns < COUNT {
            assert!(reader.until(60, 50).await, "socket ended after {returns} returns");
            returns += 1;
        }
        writer.await.expect("writer");
        assert_eq!(returns, COUNT);
    })
    .await;
}

fn one_len(body: usize, key: &str) -> usize {
    // publish (12 + key) + header (22) + body (body + 8), framing included.
    8 + 4 + 2 + 1 + 1 + key.len() + 1 + 8 + 14 + 8 + body
}

// ---------------------------------------------------------------- the memory alarm

#[tokio::test]
async fn large_header_tables_count_against_the_memory_alarm() {
    within_for(Duration::from_secs(120), async {
        if skip_if_external("large_header_tables_count_against_the_memory_alarm") {
            return;
        }
        // 16 MB of messages at most.
        let broker = TestBroker::start_with(&["--memory-high-watermark", "16000000"]).await;
        let pid = broker.pid().expect("pid");
        let q = unique("big-headers");
        let mut c = open_capable(&broker.addr()).await;
        c.open_channel(1).await;
        c.write(&method_frame(
            1,
            50,
            10,
            &queue_declare_args(&q, false, &table(&[])),
        ))
        .await;
        assert_eq!(ids(&next_method_frame(&mut c).await), (50, 11));
        let before = rss(pid);
        let (stream, _) = c.into_parts();
        let (read, mut write) = stream.into_split();

        // 300 messages whose headers hold an array of 100,000 voids: 100 KB
        // each on the wire, 3.2 MB each once decoded.
        const COUNT: usize = 300;
        let mut voids = vec![b'A'];
        voids.extend_from_slice(&100_000u32.to_be_bytes());
        voids.extend(std::iter::repeat_n(b'V', 100_000));
        let mut one = publish_frame(1, "", &q, false);
        one.extend_from_slice(&headers_frame(1, 0, &table(&[("a", voids)])));
        let sent = Arc::new(AtomicUsize::new(0));
        let writer = {
            let sent = sent.clone();
            tokio::spawn(async move {
                for _ in 0..COUNT {
                    write.write_all(&one).await.expect("write");
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                write
            })
        };
        let mut reader = FrameReader {
            half: read,
            buf: Vec::new(),
        };
        assert!(reader.until(10, 60).await, "expected connection.blocked");
        let stuck_at = stalled(&sent, Duration::from_secs(2)).await;
        let held = rss(pid).saturating_sub(before);
        eprintln!(
            "blocked after {stuck_at} of {COUNT} messages; RSS grew by {} MB",
            held / MB
        );
        assert!(stuck_at < COUNT, "the publisher was not blocked");
        assert!(held < 96 * MB, "RSS grew by {held} bytes");

        // A consumer drains the queue (consumers are never blocked); the
        // publisher is unblocked and every message arrives.
        let mut consumer = RawClient::open(&broker.addr(), 131_072).await;
        consumer.open_channel(1).await;
        consumer
            .write(&method_frame(
                1,
                60,
                20,
                &consume_args(&q, "drain", true, &table(&[])),
            ))
            .await;
        consumer.set_read_timeout(Duration::from_secs(60));
        let got = consumer.count_deliveries(COUNT).await;
        assert_eq!(got, COUNT, "deliveries");
        assert!(reader.until(10, 61).await, "expected connection.unblocked");
        writer.await.expect("writer");
    })
    .await;
}

#[tokio::test]
async fn unfinished_bodies_count_against_the_memory_alarm() {
    within_for(Duration::from_secs(120), async {
        if skip_if_external("unfinished_bodies_count_against_the_memory_alarm") {
            return;
        }
        let broker = TestBroker::start_with(&["--memory-high-watermark", "64000000"]).await;
        let pid = broker.pid().expect("pid");
        let q = unique("unfinished");
        // With heartbeats, the broker notices the client is gone even while
        // it does not read from it.
        let mut c = open_capable_with(&broker.addr(), 1).await;
        let before = rss(pid);
        const CHANNELS: u16 = 8;
        for ch in 1..=CHANNELS {
            c.open_channel(ch).await;
        }
        let (stream, _) = c.into_parts();
        let (read, mut write) = stream.into_split();
        // Eight publishes announcing 120 MiB each, their bodies sent round
        // robin and never finished.
        let sent = Arc::new(AtomicUsize::new(0));
        let writer = {
            let sent = sent.clone();
            let q = q.clone();
            tokio::spawn(async move {
                for ch in 1..=CHANNELS {
                    let mut start = publish_frame(ch, "", &q, false);
                    start.extend_from_slice(&header_frame(ch, 120 << 20, 0, &[]));
                    write.write_all(&start).await?;
                }
                let chunk = vec![1u8; 131_064];
                for _ in 0..100 {
                    for ch in 1..=CHANNELS {
                        write.write_all(&body(ch, &chunk)).await?;
                        sent.fetch_add(chunk.len(), Ordering::Relaxed);
                    }
                }
                Ok::<_, std::io::Error>(())
            })
        };
        let mut reader = FrameReader {
            half: read,
            buf: Vec::new(),
        };
        assert!(reader.until(10, 60).await, "expected connection.blocked");
        let taken = stalled(&sent, Duration::from_secs(2)).await as u64;
        let held = rss(pid).saturating_sub(before);
        eprintln!(
            "blocked after {} MB of unfinished bodies; RSS grew by {} MB",
            taken / MB,
            held / MB
        );
        assert!(taken < 8 * 100 * 131_064, "the publisher was never blocked");
        assert!(held < 160 * MB, "RSS grew by {held} bytes");

        // Another client that does not publish is served meanwhile.
        let mut other = RawClient::open(&broker.addr(), 131_072).await;
        other.open_channel(1).await;
        other.write(&method(1, queue_declare(&q))).await;
        let (_, m) = other.expect_method().await;
        assert!(
            matches!(m, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))),
            "{m:?}"
        );

        // The hostile connection goes: its memory is given back, the alarm
        // clears and publishing works again.
        drop(reader);
        writer.abort();
        let _ = writer.await;
        assert_broker_serves(&broker.uri()).await;
    })
    .await;
}

#[tokio::test]
async fn one_byte_body_frames_cost_about_their_bytes() {
    within_for(Duration::from_secs(120), async {
        if skip_if_external("one_byte_body_frames_cost_about_their_bytes") {
            return;
        }
        let broker = TestBroker::start().await;
        let pid = broker.pid().expect("pid");
        let q = unique("one-byte");
        let mut c = RawClient::open(&broker.addr(), 4096).await;
        c.open_channel(1).await;
        c.write(&method(1, queue_declare(&q))).await;
        c.expect_method().await;
        const SIZE: usize = 2_000_000;
        let mut start = publish_frame(1, "", &q, false);
        start.extend_from_slice(&header_frame(1, SIZE as u64, 0, &[]));
        c.write(&start).await;
        let before = rss(pid);
        let frame = body(1, b"z");
        let batch: Vec<u8> = frame
            .iter()
            .copied()
            .cycle()
            .take(frame.len() * 100_000)
            .collect();
        for _ in 0..(SIZE / 100_000) - 1 {
            c.write(&batch).await;
        }
        // All but the last 100,000 bytes are in: a declare on the same
        // channel would be a protocol error, so measure once the socket has
        // been drained by waiting for a round trip on another channel.
        c.open_channel(2).await;
        let held = rss(pid).saturating_sub(before);
        let wire = (SIZE - 100_000) * frame.len();
        eprintln!(
            "{} MB of 1-byte body frames ({} MB of body) pending: RSS grew by {} MB",
            wire as u64 / MB,
            (SIZE - 100_000) as u64 / MB,
            held / MB
        );
        assert!(
            held < wire as u64 / 2,
            "a pending body of 1-byte frames holds {held} bytes for {wire} on the wire"
        );
        c.write(&batch).await;
        c.write(&method(1, basic_get(&q))).await;
        let (_, m) = c.expect_method().await;
        assert!(
            matches!(m, AMQPClass::Basic(basic::AMQPMethod::GetOk(_))),
            "{m:?}"
        );
        let header = c.next_frame().await;
        assert_eq!(header.kind, FRAME_HEADER);
        let mut got = 0;
        while got < SIZE {
            got += c.next_frame().await.payload.len();
        }
        assert_eq!(got, SIZE);
    })
    .await;
}

// ---------------------------------------------------------------- memory returned

#[tokio::test]
async fn memory_is_given_back_once_a_backlog_drains() {
    within_for(Duration::from_secs(150), async {
        if skip_if_external("memory_is_given_back_once_a_backlog_drains") {
            return;
        }
        let broker = TestBroker::start().await;
        let pid = broker.pid().expect("pid");
        let q = unique("backlog");
        let mut c = RawClient::open(&broker.addr(), 131_072).await;
        c.open_channel(1).await;
        c.write(&method(1, queue_declare(&q))).await;
        c.expect_method().await;
        let before = rss(pid);
        const COUNT: usize = 200_000;
        let mut one = publish_frame(1, "", &q, false);
        one.extend_from_slice(&header_frame(1, 1024, 0, &[]));
        one.extend_from_slice(&body(1, &[3u8; 1024]));
        let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1000).collect();
        for _ in 0..COUNT / 1000 {
            c.write(&batch).await;
        }
        c.write(&method(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: q.as_str().into(),
                passive: true,
                ..Default::default()
            })),
        ))
        .await;
        c.set_read_timeout(Duration::from_secs(60));
        match c.expect_method().await {
            (_, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok))) => {
                assert_eq!(ok.message_count as usize, COUNT)
            }
            other => panic!("{other:?}"),
        }
        let peak = rss(pid);
        c.write(&method_frame(
            1,
            60,
            20,
            &consume_args(&q, "drain", true, &table(&[])),
        ))
        .await;
        assert_eq!(c.count_deliveries(COUNT).await, COUNT);
        // The allocator's background threads give the pages back.
        let grown = peak.saturating_sub(before);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut now = rss(pid);
        while now.saturating_sub(before) > grown / 4 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            now = rss(pid);
        }
        eprintln!(
            "RSS before {} MB, with {COUNT} x 1 KiB queued {} MB, after draining {} MB",
            before / MB,
            peak / MB,
            now / MB
        );
        assert!(
            now.saturating_sub(before) <= grown / 4,
            "RSS stayed at {now} (before {before}, peak {peak})"
        );
    })
    .await;
}

// ---------------------------------------------------------------- logins

#[tokio::test]
async fn a_refused_login_is_logged_with_the_user_name() {
    within(async {
        if skip_if_external("a_refused_login_is_logged_with_the_user_name") {
            return;
        }
        let broker = TestBroker::start().await;
        let mut c = RawClient::connect(&broker.addr()).await;
        c.write(PROTOCOL_HEADER).await;
        c.expect_method().await;
        let mut args = capable_client_properties();
        short_str(&mut args, "PLAIN");
        let response = b"\0mallory\0guess";
        args.extend_from_slice(&(response.len() as u32).to_be_bytes());
        args.extend_from_slice(response);
        short_str(&mut args, "en_US");
        c.write(&method_frame(0, 10, 11, &args)).await;
        let close = c.expect_connection_close().await;
        assert_eq!(close.code, 403);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !broker.log().contains("mallory") && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = broker.log();
        let line = log
            .lines()
            .find(|l| l.contains("login refused"))
            .unwrap_or_else(|| panic!("no refused login logged:\n{log}"));
        assert!(line.contains("mallory"), "{line}");
        assert!(line.contains("PLAIN"), "{line}");
        assert!(line.contains("invalid credentials"), "{line}");
    })
    .await;
}
