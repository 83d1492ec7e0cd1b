//! Core AMQP behaviour through lapin: publish/consume/ack, round-robin, basic.get, nack/reject,
//! qos, publisher confirms, mandatory returns, transactions, requeue on close, exchange-to-
//! exchange bindings, topic and headers routing. Expectations are RabbitMQ 3.10's.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use lapin::message::{BasicGetMessage, Delivery};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, Consumer, ExchangeKind};

/// How long to wait for a delivery that must come.
const DELIVERY_WAIT: Duration = Duration::from_secs(10);
/// How long to watch for a delivery that must not come.
const QUIET_WAIT: Duration = Duration::from_millis(500);

struct Ctx {
    // Kept alive for the test's duration (kills a spawned broker on drop).
    _broker: TestBroker,
    conn: Connection,
    /// A channel in confirm mode, used to publish deterministically.
    pub_ch: Channel,
}

async fn setup() -> Ctx {
    let broker = TestBroker::start().await;
    let conn = lapin_connect(&broker.uri()).await;
    let pub_ch = conn.create_channel().await.expect("create channel");
    pub_ch
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    Ctx {
        _broker: broker,
        conn,
        pub_ch,
    }
}

fn s(v: &str) -> ShortString {
    v.into()
}

async fn declare_queue(ch: &Channel, name: &str) -> lapin::Queue {
    ch.queue_declare(
        s(name),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("declare queue {name}: {e}"))
}

async fn passive_count(ch: &Channel, name: &str) -> u32 {
    ch.queue_declare(
        s(name),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("passive declare {name}: {e}"))
    .message_count()
}

async fn delete_queue(ch: &Channel, name: &str) {
    ch.queue_delete(s(name), QueueDeleteOptions::default())
        .await
        .unwrap_or_else(|e| panic!("delete queue {name}: {e}"));
}

/// Publish on a confirm-mode channel and return the broker's confirmation.
async fn publish_with(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
    mandatory: bool,
) -> lapin::Confirmation {
    ch.basic_publish(
        s(exchange),
        s(routing_key),
        BasicPublishOptions {
            mandatory,
            ..Default::default()
        },
        body,
        props,
    )
    .await
    .expect("basic.publish")
    .await
    .expect("publisher confirm")
}

/// Publish and require a plain ack (no return).
async fn publish(ch: &Channel, exchange: &str, routing_key: &str, body: &[u8]) {
    let confirm = publish_with(
        ch,
        exchange,
        routing_key,
        body,
        BasicProperties::default(),
        false,
    )
    .await;
    assert!(confirm.is_ack(), "publish must be acked, got {confirm:?}");
    assert!(
        confirm.take_message().is_none(),
        "a non-mandatory publish is never returned"
    );
}

async fn get(ch: &Channel, queue: &str, no_ack: bool) -> Option<BasicGetMessage> {
    ch.basic_get(s(queue), BasicGetOptions { no_ack })
        .await
        .unwrap_or_else(|e| panic!("basic.get {queue}: {e}"))
}

/// Bodies of all ready messages in `queue`, taken with basic.get no_ack.
async fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = get(ch, queue, true).await {
        out.push(String::from_utf8(m.delivery.data).expect("utf8 body"));
    }
    out
}

async fn consume(ch: &Channel, queue: &str, tag: &str) -> Consumer {
    ch.basic_consume(
        s(queue),
        s(tag),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("basic.consume {queue}: {e}"))
}

async fn next_delivery(consumer: &mut Consumer) -> Delivery {
    match tokio::time::timeout(DELIVERY_WAIT, consumer.next()).await {
        Err(_) => panic!("no delivery within {DELIVERY_WAIT:?}"),
        Ok(None) => panic!("consumer ended"),
        Ok(Some(Err(e))) => panic!("consumer error: {e}"),
        Ok(Some(Ok(d))) => d,
    }
}

async fn assert_no_delivery(consumer: &mut Consumer) {
    if let Ok(item) = tokio::time::timeout(QUIET_WAIT, consumer.next()).await {
        panic!("expected no delivery, got {item:?}");
    }
}

fn body_str(d: &Delivery) -> String {
    String::from_utf8(d.data.clone()).expect("utf8 body")
}

#[tokio::test]
async fn publish_consume_ack_round_trip() {
    within(async {
        let ctx = setup().await;
        let q = unique("lapin-basic");
        let declared = declare_queue(&ctx.pub_ch, &q).await;
        assert_eq!(declared.name().as_str(), q);
        assert_eq!(declared.message_count(), 0);
        assert_eq!(declared.consumer_count(), 0);

        let props = BasicProperties::default()
            .with_content_type(s("text/plain"))
            .with_message_id(s("m-1"));
        let confirm = publish_with(&ctx.pub_ch, "", &q, b"hello", props, false).await;
        assert!(confirm.is_ack());
        assert_eq!(passive_count(&ctx.pub_ch, &q).await, 1);

        let ch = ctx.conn.create_channel().await.unwrap();
        let mut consumer = consume(&ch, &q, "ctag-1").await;
        let d = next_delivery(&mut consumer).await;
        assert_eq!(d.data, b"hello");
        assert_eq!(d.exchange.as_str(), "");
        assert_eq!(d.routing_key.as_str(), q);
        assert!(!d.redelivered);
        assert_eq!(d.delivery_tag, 1, "delivery tags start at 1 on a channel");
        assert_eq!(
            d.properties.content_type().as_ref().map(|v| v.as_str()),
            Some("text/plain")
        );
        assert_eq!(
            d.properties.message_id().as_ref().map(|v| v.as_str()),
            Some("m-1")
        );
        d.ack(BasicAckOptions::default()).await.expect("ack");

        // declare-ok counts ready messages only; the consumer holds nothing.
        let redeclared = declare_queue(&ctx.pub_ch, &q).await;
        assert_eq!(redeclared.message_count(), 0);
        assert_eq!(redeclared.consumer_count(), 1);

        // An acked message does not come back when the channel closes.
        ch.close(200, s("bye")).await.expect("channel close");
        assert!(get(&ctx.pub_ch, &q, true).await.is_none());
        delete_queue(&ctx.pub_ch, &q).await;
        ctx.conn.close(200, s("OK")).await.expect("close");
    })
    .await
}

#[tokio::test]
async fn round_robin_across_two_consumers() {
    within(async {
        let ctx = setup().await;
        let q = unique("lapin-rr");
        declare_queue(&ctx.pub_ch, &q).await;
        let ch1 = ctx.conn.create_channel().await.unwrap();
        let ch2 = ctx.conn.create_channel().await.unwrap();
        let mut c1 = consume(&ch1, &q, "c1").await;
        let mut c2 = consume(&ch2, &q, "c2").await;

        for i in 0..10 {
            publish(&ctx.pub_ch, "", &q, format!("{i}").as_bytes()).await;
        }
        let mut got1 = Vec::new();
        let mut got2 = Vec::new();
        for _ in 0..5 {
            let d = next_delivery(&mut c1).await;
            got1.push(body_str(&d).parse::<u32>().unwrap());
            d.ack(BasicAckOptions::default()).await.unwrap();
            let d = next_delivery(&mut c2).await;
            got2.push(body_str(&d).parse::<u32>().unwrap());
            d.ack(BasicAckOptions::default()).await.unwrap();
        }
        assert_no_delivery(&mut c1).await;
        assert_no_delivery(&mut c2).await;
        // Strict alternation: one consumer has the even messages, the other the odd ones,
        // each in publish order.
        let evens = vec![0, 2, 4, 6, 8];
        let odds = vec![1, 3, 5, 7, 9];
        assert!(
            (got1 == evens && got2 == odds) || (got1 == odds && got2 == evens),
            "not round-robin: c1={got1:?} c2={got2:?}"
        );
        delete_queue(&ctx.pub_ch, &q).await;
    })
    .await
}

#[tokio::test]
async fn basic_get_message_count_and_get_empty() {
    within(async {
        let ctx = setup().await;
        let q = unique("lapin-get");
        declare_queue(&ctx.pub_ch, &q).await;
        // get-empty on an empty queue
        assert!(get(&ctx.pub_ch, &q, false).await.is_none());

        for i in 0..3 {
            publish(&ctx.pub_ch, "", &q, format!("m{i}").as_bytes()).await;
        }
        assert_eq!(passive_count(&ctx.pub_ch, &q).await, 3);

        let ch = ctx.conn.create_channel().await.unwrap();
        for (i, left) in [(0u32, 2u32), (1, 1), (2, 0)] {
            let m = get(&ch, &q, false).await.expect("get-ok");
            assert_eq!(
                m.message_count, left,
                "get-ok counts messages left after this one"
            );
            assert_eq!(m.delivery.data, format!("m{i}").as_bytes());
            assert_eq!(m.delivery.routing_key.as_str(), q);
            assert!(!m.delivery.redelivered);
            assert_eq!(m.delivery.delivery_tag, u64::from(i) + 1);
            // Unacked messages are not counted as ready.
            assert_eq!(passive_count(&ctx.pub_ch, &q).await, left);
        }
        assert!(get(&ch, &q, false).await.is_none(), "get-empty");
        ch.basic_ack(3, BasicAckOptions { multiple: true })
            .await
            .expect("ack multiple");
        ch.close(200, s("bye")).await.unwrap();
        assert!(get(&ctx.pub_ch, &q, true).await.is_none());
        delete_queue(&ctx.pub_ch, &q).await;
    })
    .await
}

#[tokio::test]
async fn nack_and_reject_with_requeue_redeliver() {
    within(async {
        let ctx = setup().await;
        let q = unique("lapin-nack");
        declare_queue(&ctx.pub_ch, &q).await;
        publish(&ctx.pub_ch, "", &q, b"again").await;
        let ch = ctx.conn.create_channel().await.unwrap();

        let m = get(&ch, &q, false).await.expect("first get");
        assert!(!m.delivery.redelivered);
        m.delivery
            .nack(BasicNackOptions {
                multiple: false,
                requeue: true,
            })
            .await
            .unwrap();

        let m = get(&ch, &q, false).await.expect("get after nack requeue");
        assert!(m.delivery.redelivered, "nack requeue => redelivered");
        assert_eq!(m.delivery.data, b"again");
        m.delivery
            .reject(BasicRejectOptions { requeue: true })
            .await
            .unwrap();

        let m = get(&ch, &q, false).await.expect("get after reject requeue");
        assert!(m.delivery.redelivered, "reject requeue => redelivered");
        m.delivery
            .reject(BasicRejectOptions { requeue: false })
            .await
            .unwrap();
        assert!(
            get(&ch, &q, false).await.is_none(),
            "reject without requeue drops the message"
        );

        // Same through a consumer: the requeued message is delivered again, redelivered.
        publish(&ctx.pub_ch, "", &q, b"consumed").await;
        let mut consumer = consume(&ch, &q, "nack-consumer").await;
        let d = next_delivery(&mut consumer).await;
        assert!(!d.redelivered);
        d.nack(BasicNackOptions {
            multiple: false,
            requeue: true,
        })
        .await
        .unwrap();
        let d = next_delivery(&mut consumer).await;
        assert!(d.redelivered);
        assert_eq!(d.data, b"consumed");
        d.ack(BasicAckOptions::default()).await.unwrap();
        delete_queue(&ctx.pub_ch, &q).await;
    })
    .await
}

#[tokio::test]
async fn qos_prefetch_limits_unacked_deliveries() {
    within(async {
        let ctx = setup().await;
        let q = unique("lapin-qos");
        declare_queue(&ctx.pub_ch, &q).await;
        for i in 0..5 {
            publish(&ctx.pub_ch, "", &q, format!("{i}").as_bytes()).await;
        }
        let ch = ctx.conn.create_channel().await.unwrap();
        ch.basic_qos(2, BasicQosOptions::default()).await.unwrap();
        let mut consumer = consume(&ch, &q, "qos").await;

        let d0 = next_delivery(&mut consumer).await;
        let d1 = next_delivery(&mut consumer).await;
        assert_eq!((body_str(&d0), body_str(&d1)), ("0".into(), "1".into()));
        assert_no_delivery(&mut consumer).await;
        assert_eq!(passive_count(&ctx.pub_ch, &q).await, 3);

        d0.ack(BasicAckOptions::default()).await.unwrap();
        let d2 = next_delivery(&mut consumer).await;
        assert_eq!(body_str(&d2), "2");
        assert_no_delivery(&mut consumer).await;

        // Ack both outstanding at once: two more come.
        ch.basic_ack(d2.delivery_tag, BasicAckOptions { multiple: true })
            .await
            .unwrap();
        let d3 = next_delivery(&mut consumer).await;
        let d4 = next_delivery(&mut consumer).await;
        assert_eq!((body_str(&d3), body_str(&d4)), ("3".into(), "4".into()));
        d4.ack(BasicAckOptions { multiple: true }).await.unwrap();
        delete_queue(&ctx.pub_ch, &q).await;
    })
    .await
}

#[tokio::test]
async fn publisher_confirms_ack_every_publish() {
    within(async {
        let ctx = setup().await;
        let q = unique("lapin-confirm");
        declare_queue(&ctx.pub_ch, &q).await;
        let mut pending = Vec::new();
        for i in 0..50 {
            pending.push(
                ctx.pub_ch
                    .basic_publish(
                        s(""),
                        s(&q),
                        BasicPublishOptions::default(),
                        format!("{i}").as_bytes(),
                        BasicProperties::default(),
                    )
                    .await
                    .expect("publish"),
            );
        }
        let returned = ctx.pub_ch.wait_for_confirms().await.expect("confirms");
        assert!(returned.is_empty());
        for p in pending {
            let c = p.await.expect("confirm");
            assert!(c.is_ack(), "{c:?}");
        }
        assert_eq!(passive_count(&ctx.pub_ch, &q).await, 50);
        // Unroutable without mandatory: still acked, silently dropped.
        publish(&ctx.pub_ch, "", &unique("no-such-queue"), b"dropped").await;
        delete_queue(&ctx.pub_ch, &q).await;
    })
    .await
}

#[tokio::test]
async fn mandatory_unroutable_is_returned_312_before_the_ack() {
    within(async {
        let ctx = setup().await;
        let missing = unique("no-such-queue");
        let props = BasicProperties::default().with_message_id(s("ret-1"));
        let confirm = publish_with(&ctx.pub_ch, "", &missing, b"bounce", props, true).await;
        assert!(
            confirm.is_ack(),
            "a returned message is still acked: {confirm:?}"
        );
        // lapin attaches a basic.return to the confirmation only if the return arrived before
        // the ack, so this also checks the order.
        let ret = confirm
            .take_message()
            .expect("basic.return must arrive before the ack");
        assert_eq!(ret.reply_code, 312);
        assert_eq!(ret.reply_text.as_str(), "NO_ROUTE");
        assert_eq!(ret.delivery.exchange.as_str(), "");
        assert_eq!(ret.delivery.routing_key.as_str(), missing);
        assert_eq!(ret.delivery.data, b"bounce");
        assert_eq!(
            ret.delivery
                .properties
                .message_id()
                .as_ref()
                .map(|v| v.as_str()),
            Some("ret-1")
        );

        // Same through a direct exchange with no bindings.
        let x = unique("lapin-x-empty");
        ctx.pub_ch
            .exchange_declare(
                s(&x),
                ExchangeKind::Direct,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let confirm = publish_with(
            &ctx.pub_ch,
            &x,
            "rk",
            b"bounce2",
            BasicProperties::default(),
            true,
        )
        .await;
        assert!(confirm.is_ack());
        let ret = confirm.take_message().expect("returned");
        assert_eq!((ret.reply_code, ret.reply_text.as_str()), (312, "NO_ROUTE"));
        assert_eq!(ret.delivery.exchange.as_str(), x);
        assert_eq!(ret.delivery.routing_key.as_str(), "rk");

        // A routable mandatory publish is not returned.
        let q = unique("lapin-mand");
        declare_queue(&ctx.pub_ch, &q).await;
        let confirm =
            publish_with(&ctx.pub_ch, "", &q, b"ok", BasicProperties::default(), true).await;
        assert!(confirm.is_ack());
        assert!(confirm.take_message().is_none());
        delete_queue(&ctx.pub_ch, &q).await;
        ctx.pub_ch
            .exchange_delete(s(&x), ExchangeDeleteOptions::default())
            .await
            .unwrap();
    })
    .await
}

#[tokio::test]
async fn tx_commit_and_rollback() {
    within(async {
        let ctx = setup().await;
        let q = unique("lapin-tx");
        declare_queue(&ctx.pub_ch, &q).await;
        let tx = ctx.conn.create_channel().await.unwrap();
        tx.tx_select().await.expect("tx.select");

        let plain = |body: &'static [u8]| {
            let tx = tx.clone();
            let q = q.clone();
            async move {
                tx.basic_publish(
                    s(""),
                    s(&q),
                    BasicPublishOptions::default(),
                    body,
                    BasicProperties::default(),
                )
                .await
                .expect("publish in tx");
            }
        };

        // Rolled back publishes never reach the queue.
        plain(b"rolled-back").await;
        tx.tx_rollback().await.expect("tx.rollback");
        // Uncommitted publishes are not visible.
        plain(b"c1").await;
        plain(b"c2").await;
        assert!(get(&ctx.pub_ch, &q, true).await.is_none());
        tx.tx_commit().await.expect("tx.commit");
        assert_eq!(drain(&ctx.pub_ch, &q).await, vec!["c1", "c2"]);

        // Acks are transactional too: a rolled-back ack leaves the message unacked (not
        // requeued); closing the channel then requeues it.
        publish(&ctx.pub_ch, "", &q, b"acked-in-tx").await;
        let m = get(&tx, &q, false).await.expect("get in tx");
        m.delivery.ack(BasicAckOptions::default()).await.unwrap();
        tx.tx_rollback().await.unwrap();
        assert_eq!(passive_count(&ctx.pub_ch, &q).await, 0, "still unacked");
        tx.close(200, s("bye")).await.unwrap();
        let back = get(&ctx.pub_ch, &q, true).await.expect("requeued on close");
        assert_eq!(back.delivery.data, b"acked-in-tx");
        assert!(back.delivery.redelivered);

        // A committed ack removes the message for good.
        let tx = ctx.conn.create_channel().await.unwrap();
        tx.tx_select().await.unwrap();
        publish(&ctx.pub_ch, "", &q, b"acked-and-committed").await;
        let m = get(&tx, &q, false).await.expect("get in tx");
        m.delivery.ack(BasicAckOptions::default()).await.unwrap();
        tx.tx_commit().await.unwrap();
        tx.close(200, s("bye")).await.unwrap();
        assert!(get(&ctx.pub_ch, &q, true).await.is_none());
        delete_queue(&ctx.pub_ch, &q).await;
    })
    .await
}

#[tokio::test]
async fn unacked_messages_requeued_in_order_when_channel_closes() {
    within(async {
        let ctx = setup().await;
        let q = unique("lapin-requeue");
        declare_queue(&ctx.pub_ch, &q).await;
        for i in 0..5 {
            publish(&ctx.pub_ch, "", &q, format!("m{i}").as_bytes()).await;
        }
        let ch = ctx.conn.create_channel().await.unwrap();
        let mut consumer = consume(&ch, &q, "holder").await;
        for i in 0..5 {
            let d = next_delivery(&mut consumer).await;
            assert_eq!(body_str(&d), format!("m{i}"));
        }
        assert_eq!(passive_count(&ctx.pub_ch, &q).await, 0);
        ch.close(200, s("bye")).await.unwrap();

        for i in 0..5 {
            let m = get(&ctx.pub_ch, &q, true).await.expect("requeued message");
            assert_eq!(m.delivery.data, format!("m{i}").as_bytes(), "requeue order");
            assert!(m.delivery.redelivered);
        }
        assert!(get(&ctx.pub_ch, &q, true).await.is_none());
        delete_queue(&ctx.pub_ch, &q).await;
    })
    .await
}

#[tokio::test]
async fn unacked_messages_requeued_when_connection_closes() {
    within(async {
        let ctx = setup().await;
        let q = unique("lapin-requeue-conn");
        declare_queue(&ctx.pub_ch, &q).await;
        for i in 0..3 {
            publish(&ctx.pub_ch, "", &q, format!("m{i}").as_bytes()).await;
        }
        let other = lapin_connect(&ctx._broker.uri()).await;
        let ch = other.create_channel().await.unwrap();
        let m = get(&ch, &q, false).await.expect("get");
        assert_eq!(m.delivery.data, b"m0");
        let mut consumer = consume(&ch, &q, "holder").await;
        assert_eq!(body_str(&next_delivery(&mut consumer).await), "m1");
        assert_eq!(body_str(&next_delivery(&mut consumer).await), "m2");
        other.close(200, s("bye")).await.unwrap();

        let mut got = Vec::new();
        // The requeue happens as the broker tears the connection down; poll briefly.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while got.len() < 3 && std::time::Instant::now() < deadline {
            match get(&ctx.pub_ch, &q, true).await {
                Some(m) => {
                    assert!(m.delivery.redelivered);
                    got.push(String::from_utf8(m.delivery.data).unwrap());
                }
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        assert_eq!(got, vec!["m0", "m1", "m2"]);
        delete_queue(&ctx.pub_ch, &q).await;
    })
    .await
}

#[tokio::test]
async fn exchange_to_exchange_bindings_route() {
    within(async {
        let ctx = setup().await;
        let ch = &ctx.pub_ch;
        let src = unique("lapin-e2e-src");
        let dst = unique("lapin-e2e-dst");
        let q = unique("lapin-e2e-q");
        ch.exchange_declare(
            s(&src),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.exchange_declare(
            s(&dst),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        declare_queue(ch, &q).await;
        ch.queue_bind(
            s(&q),
            s(&dst),
            s(""),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.exchange_bind(
            s(&dst),
            s(&src),
            s("k"),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

        publish(ch, &src, "k", b"via-e2e").await;
        // The source's binding key filters; the fanout destination then ignores the key.
        let confirm = publish_with(ch, &src, "other", b"x", BasicProperties::default(), true).await;
        let ret = confirm.take_message().expect("unmatched key is returned");
        assert_eq!((ret.reply_code, ret.reply_text.as_str()), (312, "NO_ROUTE"));
        assert_eq!(drain(ch, &q).await, vec!["via-e2e"]);
        // Publishing straight to the destination still works.
        publish(ch, &dst, "anything", b"direct-to-dst").await;
        assert_eq!(drain(ch, &q).await, vec!["direct-to-dst"]);

        ch.exchange_unbind(
            s(&dst),
            s(&src),
            s("k"),
            ExchangeUnbindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let confirm = publish_with(ch, &src, "k", b"y", BasicProperties::default(), true).await;
        assert!(
            confirm.take_message().is_some(),
            "after exchange.unbind the message has no route"
        );
        delete_queue(ch, &q).await;
        for x in [&src, &dst] {
            ch.exchange_delete(s(x), ExchangeDeleteOptions::default())
                .await
                .unwrap();
        }
    })
    .await
}

#[tokio::test]
async fn topic_exchange_routes_like_rabbitmq() {
    within(async {
        let ctx = setup().await;
        let ch = &ctx.pub_ch;
        let x = unique("lapin-topic");
        ch.exchange_declare(
            s(&x),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let patterns = [
            "#", "*", "*.*", "a.#.b", "a.*", "a.#", "a.b", "#.b", "*.b.*", "a.*.#",
        ];
        let keys = [
            "", "a", "b", "a.b", "a.x.b", ".", "a.b.c", "x.b", "x.b.y", "a.x.y.b",
        ];
        let mut queues = Vec::new();
        for p in patterns {
            let q = unique("lapin-topic-q");
            declare_queue(ch, &q).await;
            ch.queue_bind(
                s(&q),
                s(&x),
                s(p),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
            queues.push(q);
        }
        for k in keys {
            publish(ch, &x, k, format!("<{k}>").as_bytes()).await;
        }
        // Observed on RabbitMQ 3.10: `#` matches the empty key, `*` does not; `*.*` matches
        // "."; `a.#.b` matches "a.b".
        let expected: [&[&str]; 10] = [
            &[
                "", "a", "b", "a.b", "a.x.b", ".", "a.b.c", "x.b", "x.b.y", "a.x.y.b",
            ], // #
            &["a", "b"],                                // *
            &["a.b", ".", "x.b"],                       // *.*
            &["a.b", "a.x.b", "a.x.y.b"],               // a.#.b
            &["a.b"],                                   // a.*
            &["a", "a.b", "a.x.b", "a.b.c", "a.x.y.b"], // a.#
            &["a.b"],                                   // a.b
            &["b", "a.b", "a.x.b", "x.b", "a.x.y.b"],   // #.b
            &["a.b.c", "x.b.y"],                        // *.b.*
            &["a.b", "a.x.b", "a.b.c", "a.x.y.b"],      // a.*.#
        ];
        for ((p, q), want) in patterns.iter().zip(&queues).zip(expected) {
            let got: BTreeSet<String> = drain(ch, q).await.into_iter().collect();
            let want: BTreeSet<String> = want.iter().map(|k| format!("<{k}>")).collect();
            assert_eq!(got, want, "binding pattern {p:?}");
            delete_queue(ch, q).await;
        }
        ch.exchange_delete(s(&x), ExchangeDeleteOptions::default())
            .await
            .unwrap();
    })
    .await
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert(s(k), v.clone());
    }
    t
}

fn lstr(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

#[tokio::test]
async fn headers_exchange_routes_like_rabbitmq() {
    within(async {
        let ctx = setup().await;
        let ch = &ctx.pub_ch;
        let x = unique("lapin-headers");
        ch.exchange_declare(
            s(&x),
            ExchangeKind::Headers,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let bindings: Vec<(&str, FieldTable)> = vec![
            (
                "all",
                table(&[
                    ("x-match", lstr("all")),
                    ("format", lstr("pdf")),
                    ("type", lstr("report")),
                ]),
            ),
            (
                "any",
                table(&[
                    ("x-match", lstr("any")),
                    ("format", lstr("pdf")),
                    ("type", lstr("log")),
                ]),
            ),
            // No x-match means all.
            (
                "default-all",
                table(&[("format", lstr("pdf")), ("type", lstr("report"))]),
            ),
            // No headers to match: every message matches.
            ("empty", FieldTable::default()),
            // Values are compared with their types: a long int never equals a string.
            (
                "int",
                table(&[("x-match", lstr("all")), ("n", AMQPValue::LongInt(1))]),
            ),
        ];
        let mut queues = Vec::new();
        for (name, args) in &bindings {
            let q = unique(&format!("lapin-h-{name}"));
            declare_queue(ch, &q).await;
            // The routing key is ignored by headers exchanges.
            ch.queue_bind(
                s(&q),
                s(&x),
                s("ignored"),
                QueueBindOptions::default(),
                args.clone(),
            )
            .await
            .unwrap();
            queues.push(q);
        }
        let messages: Vec<(&str, FieldTable)> = vec![
            (
                "pdf-report",
                table(&[("format", lstr("pdf")), ("type", lstr("report"))]),
            ),
            (
                "pdf-report-extra",
                table(&[
                    ("format", lstr("pdf")),
                    ("type", lstr("report")),
                    ("extra", lstr("1")),
                ]),
            ),
            ("pdf", table(&[("format", lstr("pdf"))])),
            ("log", table(&[("type", lstr("log"))])),
            (
                "zip-report",
                table(&[("format", lstr("zip")), ("type", lstr("report"))]),
            ),
            ("none", FieldTable::default()),
            ("n-int", table(&[("n", AMQPValue::LongInt(1))])),
            ("n-str", table(&[("n", lstr("1"))])),
        ];
        for (name, headers) in &messages {
            let props = BasicProperties::default().with_headers(headers.clone());
            let c = publish_with(ch, &x, "whatever", name.as_bytes(), props, false).await;
            assert!(c.is_ack());
        }
        let expected: [&[&str]; 5] = [
            &["pdf-report", "pdf-report-extra"],
            &["pdf-report", "pdf-report-extra", "pdf", "log"],
            &["pdf-report", "pdf-report-extra"],
            &[
                "pdf-report",
                "pdf-report-extra",
                "pdf",
                "log",
                "zip-report",
                "none",
                "n-int",
                "n-str",
            ],
            &["n-int"],
        ];
        for (((name, _), q), want) in bindings.iter().zip(&queues).zip(expected) {
            let got: BTreeSet<String> = drain(ch, q).await.into_iter().collect();
            let want: BTreeSet<String> = want.iter().map(|v| v.to_string()).collect();
            assert_eq!(got, want, "headers binding {name}");
            delete_queue(ch, q).await;
        }
        ch.exchange_delete(s(&x), ExchangeDeleteOptions::default())
            .await
            .unwrap();
    })
    .await
}
