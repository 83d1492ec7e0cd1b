//! Errors as a lapin user meets them: channel errors close only the channel (the connection
//! and its other channels go on), connection errors close the connection. Codes and texts are
//! RabbitMQ 3.10's (shared/design/rabbitmq-behaviour.md, checked against the reference broker).

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};

fn s(v: &str) -> lapin::types::ShortString {
    v.into()
}

/// The channel must be closed now, and the connection still usable.
async fn assert_only_channel_closed(conn: &Connection, ch: &Channel) {
    assert!(
        !ch.status().connected(),
        "the failed channel must be closed, status {:?}",
        ch.status()
    );
    let other = conn
        .create_channel()
        .await
        .expect("the connection must survive a channel error");
    let q = unique("after-channel-error");
    other
        .queue_declare(s(&q), QueueDeclareOptions::default(), FieldTable::default())
        .await
        .expect("declare on a new channel");
    other
        .queue_delete(s(&q), QueueDeleteOptions::default())
        .await
        .expect("delete");
}

/// Wait for the channel/connection error lapin reports on the connection's event stream.
async fn next_error_event(
    events: &mut (impl futures_util::Stream<Item = lapin::Event> + Unpin),
) -> (u16, String) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.next()).await {
            Ok(Some(lapin::Event::Error(e))) => return amqp_error(&e),
            Ok(Some(_)) => continue,
            other => panic!("expected an error event, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn passive_declare_of_missing_queue_is_404_channel_error() {
    within(async {
        let broker = TestBroker::start().await;
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.unwrap();
        let q = unique("missing");
        let err = ch
            .queue_declare(
                s(&q),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect_err("passive declare of a missing queue");
        assert_eq!(
            amqp_error(&err),
            (404, format!("NOT_FOUND - no queue '{q}' in vhost '/'"))
        );
        assert_only_channel_closed(&conn, &ch).await;
    })
    .await
}

#[tokio::test]
async fn bind_to_missing_exchange_is_404_channel_error() {
    within(async {
        let broker = TestBroker::start().await;
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.unwrap();
        let q = unique("bind-missing-x");
        let x = unique("missing-x");
        ch.queue_declare(s(&q), QueueDeclareOptions::default(), FieldTable::default())
            .await
            .unwrap();
        let err = ch
            .queue_bind(
                s(&q),
                s(&x),
                s("k"),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect_err("bind to a missing exchange");
        assert_eq!(
            amqp_error(&err),
            (404, format!("NOT_FOUND - no exchange '{x}' in vhost '/'"))
        );
        assert_only_channel_closed(&conn, &ch).await;
        let ch = conn.create_channel().await.unwrap();
        ch.queue_delete(s(&q), QueueDeleteOptions::default())
            .await
            .unwrap();
    })
    .await
}

#[tokio::test]
async fn publish_to_missing_exchange_is_404_channel_error() {
    within(async {
        let broker = TestBroker::start().await;
        let conn = lapin_connect(&broker.uri()).await;
        let mut events = conn.events_listener();
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let x = unique("missing-x");
        let confirm = ch
            .basic_publish(
                s(&x),
                s("k"),
                BasicPublishOptions::default(),
                b"lost",
                BasicProperties::default(),
            )
            .await
            .expect("publish is asynchronous");
        let err = confirm
            .await
            .expect_err("the confirm fails when the channel closes");
        let expected = (404, format!("NOT_FOUND - no exchange '{x}' in vhost '/'"));
        assert_eq!(amqp_error(&err), expected);
        assert_eq!(next_error_event(&mut events).await, expected);
        assert_only_channel_closed(&conn, &ch).await;
    })
    .await
}

#[tokio::test]
async fn unknown_delivery_tag_is_406_channel_error() {
    within(async {
        let broker = TestBroker::start().await;
        let conn = lapin_connect(&broker.uri()).await;
        let mut events = conn.events_listener();
        let ch = conn.create_channel().await.unwrap();
        // basic.ack has no reply: the error comes as a channel.close.
        ch.basic_ack(42, BasicAckOptions::default())
            .await
            .expect("ack is sent");
        assert_eq!(
            next_error_event(&mut events).await,
            (
                406,
                "PRECONDITION_FAILED - unknown delivery tag 42".to_string()
            )
        );
        assert_only_channel_closed(&conn, &ch).await;
    })
    .await
}

#[tokio::test]
async fn inequivalent_exchange_redeclare_is_406_channel_error() {
    within(async {
        let broker = TestBroker::start().await;
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.unwrap();
        let x = unique("ineq-x");
        ch.exchange_declare(
            s(&x),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let err = ch
            .exchange_declare(
                s(&x),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect_err("redeclare with another type");
        assert_eq!(
            amqp_error(&err),
            (
                406,
                format!(
                    "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{x}' in vhost '/': received 'fanout' but current is 'direct'"
                )
            )
        );
        assert_only_channel_closed(&conn, &ch).await;
        let ch = conn.create_channel().await.unwrap();
        ch.exchange_delete(s(&x), ExchangeDeleteOptions::default())
            .await
            .unwrap();
    })
    .await
}

#[tokio::test]
async fn default_exchange_and_amq_prefix_are_403_channel_errors() {
    within(async {
        let broker = TestBroker::start().await;
        let conn = lapin_connect(&broker.uri()).await;

        let ch = conn.create_channel().await.unwrap();
        let q = unique("bind-default");
        ch.queue_declare(s(&q), QueueDeclareOptions::default(), FieldTable::default())
            .await
            .unwrap();
        let err = ch
            .queue_bind(
                s(&q),
                s(""),
                s("k"),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect_err("bind to the default exchange");
        assert_eq!(
            amqp_error(&err),
            (
                403,
                "ACCESS_REFUSED - operation not permitted on the default exchange".to_string()
            )
        );
        assert_only_channel_closed(&conn, &ch).await;

        let ch = conn.create_channel().await.unwrap();
        let err = ch
            .exchange_declare(
                s("amq.warren-test"),
                ExchangeKind::Direct,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect_err("declare of an amq.* exchange");
        assert_eq!(
            amqp_error(&err),
            (
                403,
                "ACCESS_REFUSED - exchange name 'amq.warren-test' contains reserved prefix 'amq.*'"
                    .to_string()
            )
        );
        assert_only_channel_closed(&conn, &ch).await;

        let ch = conn.create_channel().await.unwrap();
        ch.queue_delete(s(&q), QueueDeleteOptions::default())
            .await
            .unwrap();
    })
    .await
}

#[tokio::test]
async fn tx_commit_without_select_is_406_channel_error() {
    within(async {
        let broker = TestBroker::start().await;
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.unwrap();
        let err = ch.tx_commit().await.expect_err("commit without select");
        assert_eq!(
            amqp_error(&err),
            (
                406,
                "PRECONDITION_FAILED - channel is not transactional".to_string()
            )
        );
        assert_only_channel_closed(&conn, &ch).await;
    })
    .await
}

#[tokio::test]
async fn unknown_exchange_type_is_503_connection_error() {
    within(async {
        let broker = TestBroker::start().await;
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.unwrap();
        let err = ch
            .exchange_declare(
                s(&unique("bad-type")),
                ExchangeKind::Custom("foo".into()),
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect_err("unknown exchange type");
        assert_eq!(
            amqp_error(&err),
            (
                503,
                "COMMAND_INVALID - invalid exchange type 'foo'".to_string()
            )
        );
        assert!(err.is_amqp_hard_error());
        // The whole connection is gone.
        assert!(conn.create_channel().await.is_err());
        assert_broker_serves(&broker.uri()).await;
    })
    .await
}

#[tokio::test]
async fn reused_consumer_tag_is_530_connection_error() {
    within(async {
        let broker = TestBroker::start().await;
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.unwrap();
        let q = unique("ctag-reuse");
        ch.queue_declare(s(&q), QueueDeclareOptions::default(), FieldTable::default())
            .await
            .unwrap();
        let _c = ch
            .basic_consume(
                s(&q),
                s("t1"),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let err = ch
            .basic_consume(
                s(&q),
                s("t1"),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect_err("second consumer with the same tag");
        assert_eq!(
            amqp_error(&err),
            (
                530,
                "NOT_ALLOWED - attempt to reuse consumer tag 't1'".to_string()
            )
        );
        assert!(conn.create_channel().await.is_err());
        // Clean up from a fresh connection.
        let conn = lapin_connect(&broker.uri()).await;
        let ch = conn.create_channel().await.unwrap();
        ch.queue_delete(s(&q), QueueDeleteOptions::default())
            .await
            .unwrap();
    })
    .await
}
