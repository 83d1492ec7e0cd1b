//! Graceful shutdown: SIGTERM to the broker closes every connection with
//! 320 `CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'` (as
//! RabbitMQ does on `rabbitmqctl stop`), then the process exits with status 0.
//!
//! Only meaningful against a broker this harness started: skipped when WARREN_TEST_URL is set.

mod common;

use std::time::Duration;

use common::raw::RawClient;
use common::*;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

const SHUTDOWN_TEXT: &str =
    "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'";

#[tokio::test]
async fn sigterm_closes_connections_with_320_and_exits_zero() {
    if skip_if_external("sigterm_closes_connections_with_320_and_exits_zero") {
        return;
    }
    within(async {
        let mut broker = TestBroker::start().await;
        let conn = lapin_connect(&broker.uri()).await;
        let mut events = conn.events_listener();
        let ch = conn.create_channel().await.expect("channel");
        let q = unique("shutdown");
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
        let mut consumer = ch
            .basic_consume(
                q.as_str().into(),
                "shutdown-consumer".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume");
        // A raw client too, to read the close frame itself and answer close-ok.
        let mut raw = RawClient::open(&broker.addr(), 131072).await;

        broker.signal(libc::SIGTERM);

        // lapin reports the server's connection.close to consumers as an error.
        let err = match tokio::time::timeout(Duration::from_secs(15), consumer.next()).await {
            Ok(Some(Err(e))) => e,
            other => panic!("expected the consumer to fail with connection.close, got {other:?}"),
        };
        assert_eq!(amqp_error(&err), (320, SHUTDOWN_TEXT.to_string()));
        // ... and on the connection's event stream (which may first replay `Connected`).
        loop {
            match tokio::time::timeout(Duration::from_secs(5), events.next()).await {
                Ok(Some(lapin::Event::Error(e))) => {
                    assert_eq!(amqp_error(&e), (320, SHUTDOWN_TEXT.to_string()));
                    break;
                }
                Ok(Some(_)) => continue,
                other => panic!("expected Event::Error on the connection, got {other:?}"),
            }
        }

        let close = raw.expect_connection_close().await;
        assert_eq!(
            (
                close.code,
                close.text.as_str(),
                close.class_id,
                close.method_id
            ),
            (320, SHUTDOWN_TEXT, 0, 0)
        );
        raw.close_ok_and_expect_socket_closed().await;

        let status = broker
            .wait_exit(Duration::from_secs(20))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "broker still running 20 s after SIGTERM; log:\n{}",
                    broker.log()
                )
            });
        assert!(
            status.success(),
            "broker must exit 0 after SIGTERM, got {status}; log:\n{}",
            broker.log()
        );
    })
    .await
}

#[tokio::test]
async fn sigterm_with_no_clients_exits_zero() {
    if skip_if_external("sigterm_with_no_clients_exits_zero") {
        return;
    }
    within(async {
        let mut broker = TestBroker::start().await;
        assert_broker_serves(&broker.uri()).await;
        broker.signal(libc::SIGTERM);
        let status = broker
            .wait_exit(Duration::from_secs(20))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "broker still running 20 s after SIGTERM; log:\n{}",
                    broker.log()
                )
            });
        assert!(
            status.success(),
            "exit status {status}; log:\n{}",
            broker.log()
        );
    })
    .await
}
