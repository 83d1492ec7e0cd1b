//! Message bodies and properties must round-trip byte for byte.
//!
//! Bodies of 0 B, 1 B, 128 KiB + 1 and 5 MiB with frame_max 4096 and 131072 (set through
//! lapin's URI query `?frame_max=N`; lapin takes the lower of its value and the server's).
//! lapin fails the connection if the broker sends a frame larger than the negotiated
//! frame_max, so these tests also check the broker splits bodies correctly. Header tables
//! with every field type RabbitMQ supports must arrive exactly as sent.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection};

const SIZES: [usize; 4] = [0, 1, 128 * 1024 + 1, 5 * 1024 * 1024];

/// Deterministic, non-periodic bytes (xorshift), different per `seed`.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn assert_same_body(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let first_diff = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: body differs: got {} bytes, want {}; first difference at byte {first_diff}",
        got.len(),
        want.len()
    );
}

async fn connect_with_frame_max(broker: &TestBroker, frame_max: u32) -> Connection {
    let conn = lapin_connect(&broker.uri_with_query(&format!("frame_max={frame_max}"))).await;
    assert_eq!(
        conn.configuration().frame_max(),
        frame_max,
        "negotiated frame_max"
    );
    conn
}

async fn confirm_channel(conn: &Connection) -> Channel {
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    ch
}

async fn publish_confirmed(ch: &Channel, queue: &str, body: &[u8], props: BasicProperties) {
    let confirm = ch
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack(), "{confirm:?}");
}

async fn bodies_round_trip(frame_max: u32) {
    let broker = TestBroker::start().await;
    let conn = connect_with_frame_max(&broker, frame_max).await;
    let ch = confirm_channel(&conn).await;
    // One queue is read with basic.get (get-ok), the other with a consumer (basic.deliver).
    let q_get = unique(&format!("bodies-get-{frame_max}"));
    let q_con = unique(&format!("bodies-con-{frame_max}"));
    for q in [&q_get, &q_con] {
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
    }
    for (i, size) in SIZES.iter().enumerate() {
        let body = pattern(*size, i as u64 + 1);
        publish_confirmed(&ch, &q_get, &body, BasicProperties::default()).await;
        publish_confirmed(&ch, &q_con, &body, BasicProperties::default()).await;
    }

    for (i, size) in SIZES.iter().enumerate() {
        let want = pattern(*size, i as u64 + 1);
        let m = ch
            .basic_get(q_get.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("get-empty, expected the {size}-byte body"));
        assert_same_body(&m.delivery.data, &want, &format!("get-ok of {size} bytes"));
        m.delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
    }
    assert!(ch
        .basic_get(q_get.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .is_none());

    let consumer_ch = conn.create_channel().await.expect("channel");
    let mut consumer = consumer_ch
        .basic_consume(
            q_con.as_str().into(),
            "bodies".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    for (i, size) in SIZES.iter().enumerate() {
        let want = pattern(*size, i as u64 + 1);
        let d = match tokio::time::timeout(Duration::from_secs(30), consumer.next()).await {
            Ok(Some(Ok(d))) => d,
            other => panic!("no delivery of the {size}-byte body: {other:?}"),
        };
        assert_same_body(&d.data, &want, &format!("deliver of {size} bytes"));
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
    for q in [&q_get, &q_con] {
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("delete");
    }
    conn.close(200, "OK".into()).await.expect("close");
}

#[tokio::test]
async fn bodies_round_trip_with_frame_max_4096() {
    within_for(Duration::from_secs(180), bodies_round_trip(4096)).await
}

#[tokio::test]
async fn bodies_round_trip_with_frame_max_131072() {
    within_for(Duration::from_secs(180), bodies_round_trip(131072)).await
}

fn lstr(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

fn table(entries: Vec<(&str, AMQPValue)>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert(k.into(), v);
    }
    t
}

/// A header table using every field type RabbitMQ knows, nested.
fn rich_headers() -> FieldTable {
    let inner = table(vec![
        ("deep", lstr("x")),
        (
            "list",
            AMQPValue::FieldArray(FieldArray::from(vec![
                AMQPValue::LongLongInt(-1),
                AMQPValue::Void,
            ])),
        ),
        ("empty-table", AMQPValue::FieldTable(FieldTable::default())),
    ]);
    table(vec![
        ("bool-t", AMQPValue::Boolean(true)),
        ("bool-f", AMQPValue::Boolean(false)),
        ("i8", AMQPValue::ShortShortInt(-5)),
        ("u8", AMQPValue::ShortShortUInt(200)),
        ("i16", AMQPValue::ShortInt(-300)),
        ("u16", AMQPValue::ShortUInt(60000)),
        ("i32", AMQPValue::LongInt(-70000)),
        ("u32", AMQPValue::LongUInt(4_000_000_000)),
        ("i64", AMQPValue::LongLongInt(-5_000_000_000)),
        ("f32", AMQPValue::Float(1.5)),
        ("f64", AMQPValue::Double(-2.25)),
        (
            "decimal",
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 12345,
            }),
        ),
        ("str", lstr("héllo wörld")),
        ("empty-str", lstr("")),
        (
            "bytes",
            AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 2, 0xCE, 255])),
        ),
        ("timestamp", AMQPValue::Timestamp(1_700_000_000)),
        ("void", AMQPValue::Void),
        (
            "array",
            AMQPValue::FieldArray(FieldArray::from(vec![
                AMQPValue::LongInt(1),
                lstr("two"),
                AMQPValue::Void,
                AMQPValue::DecimalValue(DecimalValue { scale: 1, value: 5 }),
                AMQPValue::Timestamp(42),
                AMQPValue::ByteArray(ByteArray::from(vec![9u8, 8])),
                AMQPValue::FieldTable(table(vec![("k", lstr("v"))])),
                AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Boolean(false)])),
            ])),
        ),
        (
            "empty-array",
            AMQPValue::FieldArray(FieldArray::from(Vec::new())),
        ),
        (
            "nested",
            AMQPValue::FieldTable(table(vec![
                ("inner", AMQPValue::FieldTable(inner)),
                ("n", AMQPValue::LongLongInt(7)),
            ])),
        ),
    ])
}

#[tokio::test]
async fn header_tables_round_trip_intact() {
    within(async {
        let broker = TestBroker::start().await;
        let conn = lapin_connect(&broker.uri()).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("bodies-headers");
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
        let sent = rich_headers();
        let props = BasicProperties::default().with_headers(sent.clone());
        publish_confirmed(&ch, &q, b"with headers", props.clone()).await;
        publish_confirmed(&ch, &q, b"with headers", props).await;

        // Through basic.get ...
        let m = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get")
            .expect("get-ok");
        assert_eq!(m.delivery.properties.headers().as_ref(), Some(&sent));

        // ... and through basic.deliver.
        let mut consumer = ch
            .basic_consume(
                q.as_str().into(),
                "hdr".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume");
        let d = match tokio::time::timeout(Duration::from_secs(10), consumer.next()).await {
            Ok(Some(Ok(d))) => d,
            other => panic!("no delivery: {other:?}"),
        };
        assert_eq!(d.properties.headers().as_ref(), Some(&sent));
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("delete");
    })
    .await
}

#[tokio::test]
async fn all_basic_properties_round_trip_intact() {
    within(async {
        let broker = TestBroker::start().await;
        let conn = lapin_connect(&broker.uri()).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("bodies-props");
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
        let sent = BasicProperties::default()
            .with_content_type("application/octet-stream".into())
            .with_content_encoding("gzip".into())
            .with_headers(table(vec![("h", lstr("v"))]))
            .with_delivery_mode(2)
            .with_priority(3)
            .with_correlation_id("corr-1".into())
            .with_reply_to("reply-queue".into())
            // A long expiration so the message does not expire during the test.
            .with_expiration("600000".into())
            .with_message_id("msg-1".into())
            .with_timestamp(1_700_000_123)
            .with_type("kind-1".into())
            // Must match the authenticated user, or the broker refuses the publish (406).
            .with_user_id("guest".into())
            .with_app_id("app-1".into())
            .with_cluster_id("cluster-1".into());
        publish_confirmed(&ch, &q, b"props", sent.clone()).await;
        publish_confirmed(&ch, &q, b"props", sent.clone()).await;
        let m = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get")
            .expect("get-ok");
        assert_eq!(m.delivery.properties, sent, "properties through basic.get");
        let mut consumer = ch
            .basic_consume(
                q.as_str().into(),
                "props".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume");
        let d = match tokio::time::timeout(Duration::from_secs(10), consumer.next()).await {
            Ok(Some(Ok(d))) => d,
            other => panic!("no delivery: {other:?}"),
        };
        assert_eq!(d.properties, sent, "properties through basic.deliver");

        // No properties at all stays no properties.
        publish_confirmed(&ch, &q, b"bare", BasicProperties::default()).await;
        let d = match tokio::time::timeout(Duration::from_secs(10), consumer.next()).await {
            Ok(Some(Ok(d))) => d,
            other => panic!("no delivery: {other:?}"),
        };
        assert_eq!(d.properties, BasicProperties::default());
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("delete");
    })
    .await
}
