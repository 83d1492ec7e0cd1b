//! Selector bindings through the broker (lapin): a bad selector is a 406 that
//! closes only the channel, and a durable binding with a selector survives a
//! restart with its selector still applied. Most end-to-end cases are in
//! tests/python/test_selectors.py; this covers what needs a restart.
//!
//! Selectors are a Warren extension, so these skip themselves when
//! `WARREN_TEST_URL` points at an external broker.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, ExchangeKind};

fn s(v: &str) -> ShortString {
    v.into()
}

fn selector(text: &str) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-selector".into(),
        AMQPValue::LongString(LongString::from(text)),
    );
    args
}

fn region(r: &str) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("region".into(), AMQPValue::LongString(LongString::from(r)));
    // Transient: what survives the restart here is the binding, not messages
    // (the restart is a SIGKILL, after which an auto-ack may be redone).
    BasicProperties::default().with_headers(headers)
}

async fn bodies(ch: &Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(s(queue), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        out.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
    }
    out
}

async fn publish_both(ch: &Channel, x: &str) {
    for r in ["eu", "us"] {
        ch.basic_publish(
            s(x),
            s("k"),
            BasicPublishOptions::default(),
            r.as_bytes(),
            region(r),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn invalid_selector_closes_the_channel_with_406() {
    if skip_if_external("invalid_selector_closes_the_channel_with_406") {
        return;
    }
    within(async {
        let broker = TestBroker::start().await;
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.unwrap();
        let x = unique("sel-x");
        let q = unique("sel-q");
        ch.exchange_declare(
            s(&x),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_declare(
            s(&q),
            QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        let err = ch
            .queue_bind(
                s(&q),
                s(&x),
                s("k"),
                QueueBindOptions::default(),
                selector("region = 'eu' AND"),
            )
            .await
            .unwrap_err();
        assert_eq!(
            amqp_error(&err),
            (
                406,
                "PRECONDITION_FAILED - invalid x-selector at position 18: expected an operand, \
                 found the end of the selector"
                    .to_string()
            )
        );
        // The connection is still usable.
        let ch = conn.create_channel().await.unwrap();
        ch.queue_declare(
            s(&q),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    })
    .await;
}

#[tokio::test]
async fn durable_selector_binding_survives_a_restart() {
    if skip_if_external("durable_selector_binding_survives_a_restart") {
        return;
    }
    within(async {
        let mut broker = TestBroker::start().await;
        let x = unique("sel-dx");
        let q = unique("sel-dq");
        {
            let conn = lapin_connect(&broker.uri()).await;
            let ch = conn.create_channel().await.unwrap();
            ch.exchange_declare(
                s(&x),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
            ch.queue_declare(
                s(&q),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
            ch.queue_bind(
                s(&q),
                s(&x),
                s(""),
                QueueBindOptions::default(),
                selector("region = 'eu'"),
            )
            .await
            .unwrap();
            ch.confirm_select(ConfirmSelectOptions::default())
                .await
                .unwrap();
            publish_both(&ch, &x).await;
            assert_eq!(bodies(&ch, &q).await, ["eu"]);
            conn.close(200, "bye".into()).await.unwrap();
        }
        broker.restart().await;
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        publish_both(&ch, &x).await;
        assert_eq!(bodies(&ch, &q).await, ["eu"], "the selector still applies");
        // Unbinding needs the same selector: the binding's identity includes it.
        ch.queue_unbind(s(&q), s(&x), s(""), selector("region = 'eu'"))
            .await
            .unwrap();
        publish_both(&ch, &x).await;
        assert!(bodies(&ch, &q).await.is_empty());
        ch.queue_delete(s(&q), QueueDeleteOptions::default())
            .await
            .unwrap();
        ch.exchange_delete(s(&x), ExchangeDeleteOptions::default())
            .await
            .unwrap();
    })
    .await;
}
