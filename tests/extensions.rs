//! RabbitMQ's extensions at scale and across restarts (issue 5's acceptance 2
//! and 3). The per-feature behaviour, checked against RabbitMQ 3.10, is in
//! tests/python/test_extensions.py.
//!
//! These tests start their own Warren processes (some restart them), so they
//! skip themselves when `WARREN_TEST_URL` points at an external broker.

mod common;

use std::time::{Duration, Instant};

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, ExchangeKind};

fn s(v: &str) -> ShortString {
    v.into()
}

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn long(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

/// Every message left in `queue`, in delivery order, via basic.get no-ack.
async fn drain(ch: &Channel, queue: &str) -> Vec<(String, BasicProperties)> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(s(queue), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        out.push((
            String::from_utf8(m.delivery.data.clone()).expect("utf8"),
            m.delivery.properties.clone(),
        ));
    }
    out
}

async fn count(ch: &Channel, queue: &str) -> u32 {
    ch.queue_declare(
        s(queue),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("passive declare")
    .message_count()
}

/// The broker keeps deadlines (TTLs, delays) in whole wall-clock milliseconds, so one it
/// computes can fall up to a millisecond before the same deadline on our monotonic clock; a
/// "not before" check allows this much.
const CLOCK_SLACK: Duration = Duration::from_millis(5);

/// How long a condition that needs no more than a restart and some work may take on a loaded
/// machine (the tests poll, so they take this long only when something is wrong).
const WAIT: Duration = Duration::from_secs(30);

/// Polls the ready count of `queue` until it is at least `want`, failing with `what` after
/// `limit`; returns the count and when it was seen.
async fn wait_count(
    ch: &Channel,
    queue: &str,
    want: u32,
    limit: Duration,
    what: &str,
) -> (u32, Instant) {
    let deadline = Instant::now() + limit;
    loop {
        let n = count(ch, queue).await;
        let seen = Instant::now();
        if n >= want {
            return (n, seen);
        }
        assert!(
            seen < deadline,
            "{what}: {queue} has {n} messages after {limit:?}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Acceptance 2: a queue of 100,000 messages with a TTL and a dead-letter exchange, with no
/// consumer, is emptied by its timer, and every message reaches the dead-letter queue's
/// consumer. The TTL is long enough for a debug build to publish all of them before the first
/// expires, so the queue really holds 100,000 at once; the dead letters get a deadline that
/// holds on a loaded machine (the time they took is printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_expire_on_the_timer_and_are_all_dead_lettered() {
    if skip_if_external("hundred_thousand_expire_on_the_timer_and_are_all_dead_lettered") {
        return;
    }
    const N: usize = 100_000;
    const TTL: Duration = Duration::from_secs(5);
    // From the last expiry to the last dead letter (a few ms when the machine is idle).
    const DEAD_LETTER_DEADLINE: Duration = Duration::from_secs(30);
    let broker = TestBroker::start().await;
    within_for(Duration::from_secs(120), async {
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.expect("channel");
        ch.exchange_declare(
            s("dlx"),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("dlx");
        ch.queue_declare(
            s("dead"),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("dead");
        ch.queue_bind(
            s("dead"),
            s("dlx"),
            s(""),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
        ch.queue_declare(
            s("ttl"),
            QueueDeclareOptions::default(),
            args(&[
                ("x-message-ttl", AMQPValue::LongInt(TTL.as_millis() as i32)),
                ("x-dead-letter-exchange", long("dlx")),
            ]),
        )
        .await
        .expect("ttl queue");

        let mut consumer = raw::RawClient::open(&broker.addr(), 131_072).await;
        consumer.open_channel(1).await;
        consumer
            .write(&raw::method(
                1,
                lapin::protocol::AMQPClass::Basic(lapin::protocol::basic::AMQPMethod::Consume(
                    lapin::protocol::basic::Consume {
                        queue: s("dead"),
                        consumer_tag: s("c"),
                        no_local: false,
                        no_ack: true,
                        exclusive: false,
                        nowait: false,
                        arguments: FieldTable::default(),
                    },
                )),
            ))
            .await;
        consumer.expect_method().await; // consume-ok

        // The publishes are encoded up front and written in one go (a client library in a
        // debug build would be much slower).
        let body = [b'x'; 64];
        let mut frames = Vec::with_capacity(N * 120);
        for _ in 0..N {
            frames.extend(raw::method(1, raw::basic_publish("", "ttl")));
            frames.extend(raw::content_header(1, body.len() as u64));
            frames.extend(raw::body(1, &body));
        }
        let mut publisher = raw::RawClient::open(&broker.addr(), 131_072).await;
        publisher.open_channel(1).await;
        // The declare-ok below follows 100,000 publishes: allow a loaded debug build time.
        publisher.set_read_timeout(Duration::from_secs(60));
        let started = Instant::now();
        publisher.write(&frames).await;
        // A declare on the same channel is answered after every publish
        // before it was enqueued.
        publisher
            .write(&raw::method(
                1,
                lapin::protocol::AMQPClass::Queue(lapin::protocol::queue::AMQPMethod::Declare(
                    lapin::protocol::queue::Declare {
                        queue: s("ttl"),
                        passive: true,
                        ..Default::default()
                    },
                )),
            ))
            .await;
        let held = match publisher.expect_method().await {
            (
                _,
                lapin::protocol::AMQPClass::Queue(lapin::protocol::queue::AMQPMethod::DeclareOk(
                    ok,
                )),
            ) => ok.message_count,
            other => panic!("expected declare-ok, got {other:?}"),
        };
        let last_published = Instant::now();
        let publishing = last_published - started;
        eprintln!("published {N} in {publishing:?}; {held} in the queue then");
        // Every message reached the broker after `started`, so none can have expired before
        // `started + TTL`: a count taken before then is all of them.
        if last_published + CLOCK_SLACK < started + TTL {
            assert_eq!(
                held as usize, N,
                "the queue must hold every message before the first expires"
            );
        } else {
            skipped(&format!(
                "peak check of hundred_thousand_expire_on_the_timer_and_are_all_dead_lettered: \
                 publishing took {publishing:?}, longer than the {TTL:?} TTL ({held} held)"
            ));
        }
        // The consumer's socket buffers what arrives meanwhile; it reads from here on.
        consumer.set_read_timeout(DEAD_LETTER_DEADLINE);
        let receiver = tokio::spawn(async move {
            let got = consumer.count_deliveries(N).await;
            (got, Instant::now())
        });
        let (got, done) = receiver.await.expect("receiver");
        assert_eq!(got, N, "dead letters received");
        let last_expiry = last_published + TTL;
        let late = done.saturating_duration_since(last_expiry);
        eprintln!("last dead letter {late:?} after the last message expired");
        assert!(
            late <= DEAD_LETTER_DEADLINE,
            "dead letters arrived {late:?} after expiry"
        );
        // No consumer ever took from "ttl": the timer emptied it.
        assert_eq!(count(&ch, "ttl").await, 0);
    })
    .await;
}

async fn declare(ch: &Channel, name: &str, arguments: FieldTable) {
    ch.queue_declare(s(name), durable(), arguments)
        .await
        .unwrap_or_else(|e| panic!("declare {name}: {e}"));
}

async fn dead_letter_exchange(ch: &Channel, exchange: &str, queue: &str) {
    ch.exchange_declare(
        s(exchange),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("declare dead-letter exchange");
    declare(ch, queue, FieldTable::default()).await;
    ch.queue_bind(
        s(queue),
        s(exchange),
        s(""),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
}

async fn publish(ch: &Channel, queue: &str, body: &str, properties: BasicProperties) {
    ch.basic_publish(
        s(""),
        s(queue),
        BasicPublishOptions::default(),
        body.as_bytes(),
        properties,
    )
    .await
    .expect("publish")
    .await
    .expect("confirm");
}

fn header_str(p: &BasicProperties, key: &str) -> Option<String> {
    match p.headers().as_ref()?.inner().get(key)? {
        AMQPValue::LongString(v) => Some(String::from_utf8_lossy(v.as_bytes()).into_owned()),
        _ => None,
    }
}

/// Acceptance 3: priority order, TTLs (expired while the broker was down, and
/// still pending after the restart) and dead letters of persistent messages
/// in durable queues survive a restart.
///
/// Timing: the broker stays down until the 1 s queue TTL has surely passed; the per-message
/// TTL is long (10 s) so that, on any machine, the count taken right after the restart comes
/// before it, and that check is made only for counts answered before it could expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priorities_ttl_and_dead_letters_survive_a_restart() {
    if skip_if_external("priorities_ttl_and_dead_letters_survive_a_restart") {
        return;
    }
    const QUEUE_TTL: Duration = Duration::from_secs(1);
    const MESSAGE_TTL: Duration = Duration::from_secs(10);
    let mut broker = TestBroker::start().await;
    within_for(Duration::from_secs(120), async {
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.expect("channel");
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        // Priorities.
        declare(
            &ch,
            "prio",
            args(&[("x-max-priority", AMQPValue::ShortShortUInt(10))]),
        )
        .await;
        for (body, priority) in [
            ("p1", 1),
            ("p0", 0),
            ("p9", 9),
            ("p5a", 5),
            ("p5b", 5),
            ("p20", 20),
        ] {
            publish(&ch, "prio", body, persistent().with_priority(priority)).await;
        }
        // TTL and dead-lettering.
        dead_letter_exchange(&ch, "dlx", "dead").await;
        declare(
            &ch,
            "queue-ttl",
            args(&[
                (
                    "x-message-ttl",
                    AMQPValue::LongInt(QUEUE_TTL.as_millis() as i32),
                ),
                ("x-dead-letter-exchange", long("dlx")),
            ]),
        )
        .await;
        publish(&ch, "queue-ttl", "expires-while-down", persistent()).await;
        // Confirmed: the broker has it, and it expires by then + the queue TTL.
        let queue_ttl_expired_by = Instant::now() + QUEUE_TTL;
        declare(
            &ch,
            "own-ttl",
            args(&[("x-dead-letter-exchange", long("dlx"))]),
        )
        .await;
        publish(&ch, "own-ttl", "stays", persistent()).await;
        // The broker receives it after this instant, so it cannot expire before then + TTL.
        let message_ttl_from = Instant::now();
        publish(
            &ch,
            "own-ttl",
            "expires-after-restart",
            persistent().with_expiration(s(&MESSAGE_TTL.as_millis().to_string())),
        )
        .await;
        declare(
            &ch,
            "rejecting",
            args(&[("x-dead-letter-exchange", long("dlx"))]),
        )
        .await;
        publish(&ch, "rejecting", "rejected-before-restart", persistent()).await;
        let m = ch
            .basic_get(s("rejecting"), BasicGetOptions::default())
            .await
            .expect("get")
            .expect("a message");
        m.reject(BasicRejectOptions { requeue: false })
            .await
            .expect("reject");
        // The rejected one is dead-lettered (and stored again) before the restart.
        wait_count(&ch, "dead", 1, WAIT, "rejected message not dead-lettered").await;
        drop(ch);
        let _ = conn.close(200, "bye".into()).await;

        broker.kill9();
        // Down until queue-ttl's message has expired.
        tokio::time::sleep_until((queue_ttl_expired_by + CLOCK_SLACK).into()).await;
        broker.restart().await;
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.expect("channel");

        let order: Vec<String> = drain(&ch, "prio")
            .await
            .into_iter()
            .map(|(b, _)| b)
            .collect();
        // 20 is clamped to x-max-priority 10, above 9.
        assert_eq!(order, ["p20", "p9", "p5a", "p5b", "p1", "p0"]);

        // Expired while the broker was down: dead-lettered at start-up.
        wait_count(
            &ch,
            "dead",
            2,
            WAIT,
            "message expired while down not dead-lettered",
        )
        .await;
        assert_eq!(count(&ch, "queue-ttl").await, 0);
        // Not yet expired: still there (behind "stays"), then dead-lettered on
        // the timer although it is not at the head of its queue.
        let not_before = message_ttl_from + MESSAGE_TTL - CLOCK_SLACK;
        let pending = count(&ch, "own-ttl").await;
        if Instant::now() < not_before {
            assert_eq!(pending, 2, "the per-message TTL is still running");
        } else {
            skipped(&format!(
                "pending check of priorities_ttl_and_dead_letters_survive_a_restart: the \
                 restart took longer than the {MESSAGE_TTL:?} TTL"
            ));
        }
        let (_, seen) = wait_count(
            &ch,
            "dead",
            3,
            MESSAGE_TTL + WAIT,
            "per-message TTL not applied after restart",
        )
        .await;
        assert!(
            seen >= not_before,
            "expired {:?} early",
            not_before.duration_since(seen)
        );
        assert_eq!(count(&ch, "own-ttl").await, 1);
        let dead = drain(&ch, "dead").await;
        let got: Vec<(String, Option<String>, Option<String>)> = dead
            .iter()
            .map(|(b, p)| {
                (
                    b.clone(),
                    header_str(p, "x-first-death-reason"),
                    header_str(p, "x-first-death-queue"),
                )
            })
            .collect();
        let want =
            |b: &str, r: &str, q: &str| (b.to_string(), Some(r.to_string()), Some(q.to_string()));
        assert_eq!(
            got,
            vec![
                want("rejected-before-restart", "rejected", "rejecting"),
                want("expires-while-down", "expired", "queue-ttl"),
                want("expires-after-restart", "expired", "own-ttl"),
            ]
        );
        for (_, p) in &dead {
            assert_eq!(*p.delivery_mode(), Some(2), "dead letters stay persistent");
            assert_eq!(
                p.expiration(),
                &None,
                "expiration removed when dead-lettered"
            );
        }
    })
    .await;
}

/// Acceptance 3, delayed messages: a persistent message held by a durable
/// delayed-message exchange survives a restart and is delivered when its delay
/// is over, not before; a transient message in a quorum queue survives too
/// (quorum queues keep every message).
///
/// Timing: "not before" is measured from the publish; the delay is long (8 s) so that the
/// count right after the restart comes before it on any machine, and that check is made only
/// for counts answered before the delay could be over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_messages_and_quorum_queues_survive_a_restart() {
    if skip_if_external("delayed_messages_and_quorum_queues_survive_a_restart") {
        return;
    }
    const DELAY: Duration = Duration::from_secs(8);
    let mut broker = TestBroker::start().await;
    within_for(Duration::from_secs(120), async {
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.expect("channel");
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        ch.exchange_declare(
            s("later"),
            ExchangeKind::Custom("x-delayed-message".into()),
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args(&[("x-delayed-type", long("direct"))]),
        )
        .await
        .expect("delayed exchange");
        declare(&ch, "delivered-later", FieldTable::default()).await;
        ch.queue_bind(
            s("delivered-later"),
            s("later"),
            s("k"),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
        let delayed = |ms: i32, body: &'static str, props: BasicProperties| {
            let ch = ch.clone();
            async move {
                let mut h = FieldTable::default();
                h.insert("x-delay".into(), AMQPValue::LongInt(ms));
                ch.basic_publish(
                    s("later"),
                    s("k"),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    props.with_headers(h),
                )
                .await
                .expect("publish")
                .await
                .expect("confirm")
            }
        };
        // The broker receives both after this instant: neither may be released before
        // then + DELAY.
        let published = Instant::now();
        let delay_ms = DELAY.as_millis() as i32;
        delayed(delay_ms, "persistent", persistent()).await;
        delayed(delay_ms, "transient", BasicProperties::default()).await;
        declare(&ch, "quorum", args(&[("x-queue-type", long("quorum"))])).await;
        publish(
            &ch,
            "quorum",
            "transient-in-quorum",
            BasicProperties::default(),
        )
        .await;
        assert_eq!(count(&ch, "delivered-later").await, 0);
        drop(ch);
        let _ = conn.close(200, "bye".into()).await;

        broker.kill9();
        broker.restart().await;
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.expect("channel");
        let bodies: Vec<String> = drain(&ch, "quorum")
            .await
            .into_iter()
            .map(|(b, _)| b)
            .collect();
        assert_eq!(bodies, ["transient-in-quorum"]);
        let not_before = published + DELAY - CLOCK_SLACK;
        let early = count(&ch, "delivered-later").await;
        if Instant::now() < not_before {
            assert_eq!(early, 0, "released too early");
        } else {
            skipped(&format!(
                "early-release check of delayed_messages_and_quorum_queues_survive_a_restart: \
                 the restart took longer than the {DELAY:?} delay"
            ));
        }
        let (_, seen) = wait_count(
            &ch,
            "delivered-later",
            1,
            DELAY + WAIT,
            "delayed message lost in the restart",
        )
        .await;
        assert!(
            seen >= not_before,
            "released {:?} before its delay was over",
            not_before.duration_since(seen)
        );
        let got = drain(&ch, "delivered-later").await;
        assert_eq!(got.len(), 1, "only the persistent one survives");
        assert_eq!(got[0].0, "persistent");
        let delay = got[0]
            .1
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-delay").cloned());
        assert_eq!(delay, Some(AMQPValue::LongInt(-delay_ms)));
    })
    .await;
}

/// A TTL and dead-letter exchange given by a policy (from a definitions file)
/// apply to persistent messages recovered after a restart too: the stored
/// policies are in force before the messages are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_ttl_applies_to_messages_recovered_after_a_restart() {
    if skip_if_external("policy_ttl_applies_to_messages_recovered_after_a_restart") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("defs.json");
    std::fs::write(
        &file,
        r#"{
          "vhosts": [{"name": "/"}],
          "users": [{"name": "guest", "password": "guest", "tags": ["administrator"]}],
          "permissions": [{"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}],
          "policies": [{"vhost": "/", "name": "short-lived", "pattern": "^policy-ttl$", "apply-to": "queues",
                        "definition": {"message-ttl": 1000, "dead-letter-exchange": "dlx"}, "priority": 0}],
          "exchanges": [{"name": "dlx", "vhost": "/", "type": "fanout", "durable": true}],
          "queues": [{"name": "policy-ttl", "vhost": "/", "durable": true},
                     {"name": "dead", "vhost": "/", "durable": true}],
          "bindings": [{"source": "dlx", "vhost": "/", "destination": "dead", "destination_type": "queue", "routing_key": ""}]
        }"#,
    )
    .expect("write definitions");
    let mut broker = TestBroker::start_with(&["--definitions", file.to_str().expect("path")]).await;
    within(async {
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.expect("channel");
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        publish(&ch, "policy-ttl", "expires-while-down", persistent()).await;
        // Confirmed: the broker has it, and it expires by then + the policy's 1 s.
        let expired_by = Instant::now() + Duration::from_secs(1);
        drop(ch);
        let _ = conn.close(200, "bye".into()).await;
        broker.kill9();
        // Down until it has expired.
        tokio::time::sleep_until((expired_by + CLOCK_SLACK).into()).await;
        broker.restart().await;
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.expect("channel");
        wait_count(
            &ch,
            "dead",
            1,
            WAIT,
            "the policy's TTL was not applied after the restart",
        )
        .await;
        let dead = drain(&ch, "dead").await;
        assert_eq!(dead[0].0, "expires-while-down");
        assert_eq!(
            header_str(&dead[0].1, "x-first-death-reason").as_deref(),
            Some("expired")
        );
        assert_eq!(count(&ch, "policy-ttl").await, 0);
    })
    .await;
}
