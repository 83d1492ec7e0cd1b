//! Durability: what survives a restart and a SIGKILL (the store issue's acceptance).
//!
//! These tests start their own Warren processes (they restart them), so they
//! skip themselves when `WARREN_TEST_URL` points at an external broker.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, ExchangeKind};
use parking_lot::Mutex;

fn s(v: &str) -> ShortString {
    v.into()
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

async fn passive_count(ch: &Channel, name: &str) -> Result<u32, lapin::Error> {
    ch.queue_declare(
        s(name),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .map(|q| q.message_count())
}

/// Every message left in `queue`: (body, redelivered), via basic.get with ack.
async fn drain(ch: &Channel, queue: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(s(queue), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        out.push((
            String::from_utf8(m.delivery.data.clone()).expect("utf8"),
            m.delivery.redelivered,
        ));
    }
    out
}

/// Publishes persistent messages with confirms until the connection dies,
/// recording what was published and what was confirmed.
async fn publisher(
    uri: String,
    queue: String,
    id: usize,
    published: Arc<Mutex<HashSet<String>>>,
    confirmed: Arc<Mutex<HashSet<String>>>,
) {
    let Ok(conn) = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default()).await
    else {
        return;
    };
    let Ok(ch) = conn.create_channel().await else {
        return;
    };
    if ch
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .is_err()
    {
        return;
    }
    let mut in_flight = FuturesUnordered::new();
    for n in 0u64.. {
        let body = format!("p{id}-{n}");
        published.lock().insert(body.clone());
        let Ok(confirm) = ch
            .basic_publish(
                s(""),
                s(&queue),
                BasicPublishOptions::default(),
                body.as_bytes(),
                persistent(),
            )
            .await
        else {
            return;
        };
        in_flight.push(async move { (body, confirm.await) });
        while in_flight.len() >= 50 {
            match in_flight.next().await {
                Some((body, Ok(c))) if c.is_ack() => {
                    confirmed.lock().insert(body);
                }
                Some((_, Ok(_))) => {}
                _ => return,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_keeps_every_confirmed_message() {
    if skip_if_external("sigkill_keeps_every_confirmed_message") {
        return;
    }
    within_for(Duration::from_secs(120), async {
        let mut broker = TestBroker::start().await;
        let queue = unique("durable");
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.unwrap();
        ch.queue_declare(s(&queue), durable(), FieldTable::default())
            .await
            .unwrap();

        // A consumer takes 100 messages and holds them unacked.
        let consumer_conn = lapin_connect(&broker.uri()).await;
        let cch = consumer_conn.create_channel().await.unwrap();
        cch.basic_qos(100, BasicQosOptions::default())
            .await
            .unwrap();
        let mut consumer = cch
            .basic_consume(
                s(&queue),
                s("holder"),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();

        let published = Arc::new(Mutex::new(HashSet::new()));
        let confirmed = Arc::new(Mutex::new(HashSet::new()));
        let publishers: Vec<_> = (0..3)
            .map(|id| {
                tokio::spawn(publisher(
                    broker.uri(),
                    queue.clone(),
                    id,
                    published.clone(),
                    confirmed.clone(),
                ))
            })
            .collect();

        let mut held = HashSet::new();
        while held.len() < 100 {
            let delivery = consumer.next().await.expect("delivery").expect("delivery");
            held.insert(String::from_utf8(delivery.data.clone()).unwrap());
        }
        // Let the publishers run on while the messages are held, then pull the plug.
        let deadline = Instant::now() + Duration::from_secs(2);
        while confirmed.lock().len() < 2_000 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        broker.kill9();
        for p in publishers {
            let _ = p.await;
        }
        let published = published.lock().clone();
        let confirmed = confirmed.lock().clone();
        assert!(
            confirmed.len() > 100,
            "too few confirms: {}",
            confirmed.len()
        );

        broker.restart().await;
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.unwrap();
        let after: HashMap<String, bool> = drain(&ch, &queue).await.into_iter().collect();
        eprintln!(
            "published {}, confirmed {}, held {}, found after restart {}",
            published.len(),
            confirmed.len(),
            held.len(),
            after.len()
        );

        let lost: Vec<&String> = confirmed
            .iter()
            .filter(|b| !after.contains_key(*b))
            .collect();
        assert!(
            lost.is_empty(),
            "{} confirmed messages lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
        let invented: Vec<&String> = after.keys().filter(|b| !published.contains(*b)).collect();
        assert!(
            invented.is_empty(),
            "messages that were never published: {invented:?}"
        );
        for body in &held {
            assert_eq!(
                after.get(body),
                Some(&true),
                "held message {body} must come back redelivered"
            );
        }
        let fresh = after
            .iter()
            .filter(|(b, redelivered)| !held.contains(*b) && **redelivered)
            .count();
        assert_eq!(fresh, 0, "only delivered messages come back redelivered");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_definitions_survive_a_restart_and_transient_ones_do_not() {
    if skip_if_external("durable_definitions_survive_a_restart_and_transient_ones_do_not") {
        return;
    }
    within(async {
        let mut broker = TestBroker::start().await;
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.unwrap();
        let dx = unique("dx");
        let tx = unique("tx");
        let dq = unique("dq");
        let tq = unique("tq");
        let durable_x = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.exchange_declare(
            s(&dx),
            ExchangeKind::Topic,
            durable_x,
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.exchange_declare(
            s(&tx),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongInt(1000));
        ch.queue_declare(s(&dq), durable(), args.clone())
            .await
            .unwrap();
        ch.queue_declare(
            s(&tq),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            s(&dq),
            s(&dx),
            s("orders.#"),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            s(&tq),
            s(&dx),
            s("orders.#"),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        for i in 0..3 {
            ch.basic_publish(
                s(&dx),
                s("orders.eu"),
                BasicPublishOptions::default(),
                format!("p{i}").as_bytes(),
                persistent(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
        // A transient message in a durable queue does not survive.
        ch.basic_publish(
            s(&dx),
            s("orders.eu"),
            BasicPublishOptions::default(),
            b"transient",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        drop(conn);

        broker.restart().await;
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.unwrap();
        assert_eq!(passive_count(&ch, &dq).await.unwrap(), 3);
        // Same arguments: an equivalent redeclare succeeds; a different one is refused.
        ch.queue_declare(s(&dq), durable(), args.clone())
            .await
            .unwrap();
        let err = ch
            .queue_declare(s(&dq), durable(), FieldTable::default())
            .await
            .unwrap_err();
        assert_eq!(amqp_error(&err).0, 406);
        let ch = conn.create_channel().await.unwrap();
        // The binding survived: publishing to the durable exchange reaches the queue.
        ch.basic_publish(
            s(&dx),
            s("orders.us"),
            BasicPublishOptions::default(),
            b"after",
            persistent(),
        )
        .await
        .unwrap();
        let bodies: Vec<String> = drain(&ch, &dq).await.into_iter().map(|(b, _)| b).collect();
        assert_eq!(bodies, vec!["p0", "p1", "p2", "after"]);
        // Transient objects are gone.
        assert_eq!(
            amqp_error(&passive_count(&ch, &tq).await.unwrap_err()).0,
            404
        );
        let ch = conn.create_channel().await.unwrap();
        let err = ch
            .exchange_declare(
                s(&tx),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(amqp_error(&err).0, 404);
    })
    .await;
}

/// Stops the broker, lets `damage` change the newest segment file, restarts.
async fn restart_with_damage(broker: &mut TestBroker, damage: impl FnOnce(&mut Vec<u8>)) {
    broker.signal(libc::SIGTERM);
    broker
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("broker stops on SIGTERM");
    let msgs = broker.data_dir().unwrap().join("msgs").join("2f");
    let mut segments: Vec<_> = std::fs::read_dir(&msgs)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("msgs.")
        })
        .collect();
    segments.sort();
    let path = segments.last().expect("a segment").clone();
    let mut data = std::fs::read(&path).unwrap();
    damage(&mut data);
    std::fs::write(&path, &data).unwrap();
    broker.restart().await;
}

async fn fill(uri: &str, queue: &str, n: usize) {
    let conn = lapin_connect(uri).await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(s(queue), durable(), FieldTable::default())
        .await
        .unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for i in 0..n {
        let body = format!("m{i:04}-{}", "x".repeat(100));
        ch.basic_publish(
            s(""),
            s(queue),
            BasicPublishOptions::default(),
            body.as_bytes(),
            persistent(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_truncated_and_the_rest_served() {
    if skip_if_external("a_torn_tail_is_truncated_and_the_rest_served") {
        return;
    }
    within(async {
        let mut broker = TestBroker::start().await;
        let queue = unique("torn");
        fill(&broker.uri(), &queue, 10).await;
        // Power loss mid-write: the last record is cut short.
        restart_with_damage(&mut broker, |data| data.truncate(data.len() - 30)).await;
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.unwrap();
        let bodies: Vec<String> = drain(&ch, &queue)
            .await
            .into_iter()
            .map(|(b, _)| b)
            .collect();
        assert_eq!(bodies.len(), 9);
        assert!(bodies[8].starts_with("m0008"));
        let log = broker.current_log();
        assert!(
            log.contains("truncated"),
            "the broker says what it dropped:\n{log}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bit_flip_drops_one_message_and_is_reported() {
    if skip_if_external("a_bit_flip_drops_one_message_and_is_reported") {
        return;
    }
    within(async {
        let mut broker = TestBroker::start().await;
        let queue = unique("flip");
        fill(&broker.uri(), &queue, 10).await;
        // Flip one bit in the body of the fifth message.
        restart_with_damage(&mut broker, |data| {
            let at = find(data, b"m0004-").expect("fifth body") + 10;
            data[at] ^= 0x04;
        })
        .await;
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.unwrap();
        let bodies: Vec<String> = drain(&ch, &queue)
            .await
            .into_iter()
            .map(|(b, _)| b)
            .collect();
        assert_eq!(bodies.len(), 9, "{bodies:?}");
        assert!(!bodies.iter().any(|b| b.starts_with("m0004")));
        let log = broker.current_log();
        assert!(
            log.contains("corrupt record"),
            "the broker reports the corruption:\n{log}"
        );
        assert!(log.contains("msgs.0000000001"), "with the file:\n{log}");
    })
    .await;
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_broker_on_the_same_data_dir_refuses_to_start() {
    if skip_if_external("a_second_broker_on_the_same_data_dir_refuses_to_start") {
        return;
    }
    within(async {
        let broker = TestBroker::start().await;
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_warren"))
            .arg("--amqp-listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--data-dir")
            .arg(broker.data_dir().unwrap())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("in use by another Warren process"),
            "{stderr}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_permissions_survive_a_restart_as_salted_hashes() {
    if skip_if_external("users_and_permissions_survive_a_restart_as_salted_hashes") {
        return;
    }
    within(async {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("defs.json");
        let secret = "s3cret-passw0rd-xyzzy";
        std::fs::write(
            &file,
            serde_json::json!({
                "users": [
                    {"name": "guest", "password": "guest", "tags": "administrator"},
                    {"name": "alice", "password": secret, "tags": ""}
                ],
                "vhosts": [{"name": "/"}, {"name": "v2"}],
                "permissions": [
                    {"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
                    {"user": "alice", "vhost": "v2", "configure": "^alice\\.", "write": ".*", "read": ".*"}
                ]
            })
            .to_string(),
        )
        .unwrap();
        let mut broker = TestBroker::start_with(&["--definitions", file.to_str().unwrap()]).await;
        broker.restart().await; // without --definitions: only the store remembers alice
        let uri = format!("amqp://alice:{secret}@127.0.0.1:{}/v2", broker.port());
        let conn = lapin_connect(&uri).await;
        let ch = conn.create_channel().await.unwrap();
        ch.queue_declare(s("alice.q"), QueueDeclareOptions::default(), FieldTable::default())
            .await
            .unwrap();
        let err = ch
            .queue_declare(s("bob.q"), QueueDeclareOptions::default(), FieldTable::default())
            .await
            .unwrap_err();
        assert_eq!(amqp_error(&err).0, 403, "alice's permissions were restored");
        let wrong = format!("amqp://alice:nope@127.0.0.1:{}/v2", broker.port());
        assert!(
            lapin::Connection::connect(&wrong, lapin::ConnectionProperties::default())
                .await
                .is_err()
        );
        // The password is stored only as a salted hash.
        let mut plaintext = false;
        let mut stack = vec![broker.data_dir().unwrap()];
        while let Some(path) = stack.pop() {
            for entry in std::fs::read_dir(&path).unwrap().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    stack.push(p);
                } else if find(&std::fs::read(&p).unwrap_or_default(), secret.as_bytes()).is_some() {
                    plaintext = true;
                }
            }
        }
        assert!(!plaintext, "the plain password must not be on disk");
    })
    .await;
}
