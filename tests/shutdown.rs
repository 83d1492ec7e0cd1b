//! Graceful shutdown: SIGTERM or SIGINT (Ctrl-C) to the broker closes every connection with
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

/// `signal` makes the broker close a lapin consumer's connection and a raw client's with 320,
/// stop accepting, and exit 0.
async fn closes_connections_with_320_and_exits_zero(test: &str, signal: libc::c_int, name: &str) {
    if skip_if_external(test) {
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

        broker.signal(signal);

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
        // It stops accepting before it closes the connections it has.
        match tokio::net::TcpStream::connect(broker.addr()).await {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
            Ok(_) => panic!("a new connection was accepted after the 320 close ({name})"),
        }
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
                    "broker still running 20 s after {name}; log:\n{}",
                    broker.log()
                )
            });
        assert!(
            status.success(),
            "broker must exit 0 after {name}, got {status}; log:\n{}",
            broker.log()
        );
    })
    .await
}

#[tokio::test]
async fn sigterm_closes_connections_with_320_and_exits_zero() {
    closes_connections_with_320_and_exits_zero(
        "sigterm_closes_connections_with_320_and_exits_zero",
        libc::SIGTERM,
        "SIGTERM",
    )
    .await
}

#[tokio::test]
async fn sigint_closes_connections_with_320_and_exits_zero() {
    closes_connections_with_320_and_exits_zero(
        "sigint_closes_connections_with_320_and_exits_zero",
        libc::SIGINT,
        "SIGINT",
    )
    .await
}

async fn with_no_clients_exits_zero(test: &str, signal: libc::c_int, name: &str) {
    if skip_if_external(test) {
        return;
    }
    within(async {
        let mut broker = TestBroker::start().await;
        assert_broker_serves(&broker.uri()).await;
        broker.signal(signal);
        let status = broker
            .wait_exit(Duration::from_secs(20))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "broker still running 20 s after {name}; log:\n{}",
                    broker.log()
                )
            });
        assert!(
            status.success(),
            "exit status {status} after {name}; log:\n{}",
            broker.log()
        );
    })
    .await
}

#[tokio::test]
async fn sigterm_with_no_clients_exits_zero() {
    with_no_clients_exits_zero(
        "sigterm_with_no_clients_exits_zero",
        libc::SIGTERM,
        "SIGTERM",
    )
    .await
}

#[tokio::test]
async fn sigint_with_no_clients_exits_zero() {
    with_no_clients_exits_zero("sigint_with_no_clients_exits_zero", libc::SIGINT, "SIGINT").await
}
