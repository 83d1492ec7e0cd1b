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

/// Acceptance 2: a queue of 100,000 messages with a 1 s TTL and a dead-letter
/// exchange, with no consumer, is emptied by its timer, and every dead letter
/// reaches the dead-letter queue's consumer within 2 s after it expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_expire_on_the_timer_and_are_dead_lettered_within_two_seconds() {
    if skip_if_external(
        "hundred_thousand_expire_on_the_timer_and_are_dead_lettered_within_two_seconds",
    ) {
        return;
    }
    const N: usize = 100_000;
    const TTL: u64 = 1000;
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
                ("x-message-ttl", AMQPValue::LongInt(TTL as i32)),
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
        let receiver = tokio::spawn(async move {
            let got = consumer.count_deliveries(N).await;
            (got, Instant::now())
        });

        // The publishes are encoded up front and written in one go, so the
        // queue holds all of them before the first expires (a client library
        // in a debug build would take longer than the TTL to publish them).
        let body = [b'x'; 64];
        let mut frames = Vec::with_capacity(N * 120);
        for _ in 0..N {
            frames.extend(raw::method(1, raw::basic_publish("", "ttl")));
            frames.extend(raw::content_header(1, body.len() as u64));
            frames.extend(raw::body(1, &body));
        }
        let mut publisher = raw::RawClient::open(&broker.addr(), 131_072).await;
        publisher.open_channel(1).await;
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
        eprintln!(
            "published {N} in {:?}; {held} in the queue then",
            last_published - started
        );
        let (got, done) = receiver.await.expect("receiver");
        assert_eq!(got, N, "dead letters received");
        let last_expiry = last_published + Duration::from_millis(TTL);
        let late = done.saturating_duration_since(last_expiry);
        eprintln!("last dead letter {late:?} after the last message expired");
        assert!(
            late <= Duration::from_secs(2),
            "dead letters arrived {late:?} after expiry"
        );
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
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priorities_ttl_and_dead_letters_survive_a_restart() {
    if skip_if_external("priorities_ttl_and_dead_letters_survive_a_restart") {
        return;
    }
    let mut broker = TestBroker::start().await;
    within(async {
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
                ("x-message-ttl", AMQPValue::LongInt(1000)),
                ("x-dead-letter-exchange", long("dlx")),
            ]),
        )
        .await;
        publish(&ch, "queue-ttl", "expires-while-down", persistent()).await;
        declare(
            &ch,
            "own-ttl",
            args(&[("x-dead-letter-exchange", long("dlx"))]),
        )
        .await;
        publish(&ch, "own-ttl", "stays", persistent()).await;
        publish(
            &ch,
            "own-ttl",
            "expires-after-restart",
            persistent().with_expiration(s("4000")),
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
        let deadline = Instant::now() + Duration::from_secs(5);
        while count(&ch, "dead").await < 1 {
            assert!(
                Instant::now() < deadline,
                "rejected message not dead-lettered"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(ch);
        let _ = conn.close(200, "bye".into()).await;

        broker.kill9();
        // Down for longer than queue-ttl's TTL.
        tokio::time::sleep(Duration::from_millis(1500)).await;
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
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(&ch, "dead").await < 2 {
            assert!(
                Instant::now() < deadline,
                "message expired while down not dead-lettered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(count(&ch, "queue-ttl").await, 0);
        // Not yet expired: still there (behind "stays"), then dead-lettered on
        // the timer although it is not at the head of its queue.
        assert_eq!(count(&ch, "own-ttl").await, 2);
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(&ch, "dead").await < 3 {
            assert!(
                Instant::now() < deadline,
                "per-message TTL not applied after restart"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
/// is over; a transient message in a quorum queue survives too (quorum queues
/// keep every message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_messages_and_quorum_queues_survive_a_restart() {
    if skip_if_external("delayed_messages_and_quorum_queues_survive_a_restart") {
        return;
    }
    let mut broker = TestBroker::start().await;
    within(async {
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
        delayed(3000, "persistent", persistent()).await;
        delayed(3000, "transient", BasicProperties::default()).await;
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
        assert_eq!(count(&ch, "delivered-later").await, 0, "released too early");
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(&ch, "delivered-later").await < 1 {
            assert!(
                Instant::now() < deadline,
                "delayed message lost in the restart"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got = drain(&ch, "delivered-later").await;
        assert_eq!(got.len(), 1, "only the persistent one survives");
        assert_eq!(got[0].0, "persistent");
        let delay = got[0]
            .1
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-delay").cloned());
        assert_eq!(delay, Some(AMQPValue::LongInt(-3000)));
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
        drop(ch);
        let _ = conn.close(200, "bye".into()).await;
        broker.kill9();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        broker.restart().await;
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.expect("channel");
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(&ch, "dead").await < 1 {
            assert!(
                Instant::now() < deadline,
                "the policy's TTL was not applied after the restart"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
