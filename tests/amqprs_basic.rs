//! The core round trip through a second client library, amqprs: declare, bind, publish with
//! confirms, consume with manual ack; plus mandatory returns and nack/requeue.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use amqprs::callbacks::{ChannelCallback, DefaultConnectionCallback};
use amqprs::channel::{
    BasicAckArguments, BasicCancelArguments, BasicConsumeArguments, BasicGetArguments,
    BasicNackArguments, BasicPublishArguments, Channel, ConfirmSelectArguments, ConsumerMessage,
    ExchangeDeclareArguments, ExchangeDeleteArguments, QueueBindArguments, QueueDeclareArguments,
    QueueDeleteArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, FieldTable, Nack, Return};
use async_trait::async_trait;
use common::*;
use tokio::sync::mpsc;

/// What the broker told the channel, in arrival order. (Some fields are only read through
/// Debug, in failure messages.)
#[derive(Debug)]
#[allow(dead_code)]
enum Event {
    Ack {
        tag: u64,
        multiple: bool,
    },
    Nack {
        tag: u64,
    },
    Return {
        code: u16,
        text: String,
        body: Vec<u8>,
    },
    Close {
        code: u16,
        text: String,
    },
}

struct Recorder(mpsc::UnboundedSender<Event>);

#[async_trait]
impl ChannelCallback for Recorder {
    async fn close(
        &mut self,
        _channel: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        let _ = self.0.send(Event::Close {
            code: close.reply_code(),
            text: close.reply_text().to_string(),
        });
        Ok(())
    }
    async fn cancel(
        &mut self,
        _channel: &Channel,
        _cancel: Cancel,
    ) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(
        &mut self,
        _channel: &Channel,
        active: bool,
    ) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _channel: &Channel, ack: Ack) {
        let _ = self.0.send(Event::Ack {
            tag: ack.delivery_tag(),
            multiple: ack.mutiple(),
        });
    }
    async fn publish_nack(&mut self, _channel: &Channel, nack: Nack) {
        let _ = self.0.send(Event::Nack {
            tag: nack.delivery_tag(),
        });
    }
    async fn publish_return(
        &mut self,
        _channel: &Channel,
        ret: Return,
        _basic_properties: BasicProperties,
        content: Vec<u8>,
    ) {
        let _ = self.0.send(Event::Return {
            code: ret.reply_code(),
            text: ret.reply_text().to_string(),
            body: content,
        });
    }
}

async fn open(broker: &TestBroker) -> Connection {
    let args = OpenConnectionArguments::new(
        broker.host(),
        broker.port(),
        broker.user(),
        broker.password(),
    )
    .virtual_host(&broker.vhost())
    .finish();
    let conn = Connection::open(&args)
        .await
        .unwrap_or_else(|e| panic!("amqprs connect to {}: {e}", broker.addr()));
    conn.register_callback(DefaultConnectionCallback)
        .await
        .expect("connection callback");
    conn
}

/// A channel in confirm mode whose broker-initiated events land in the returned receiver.
async fn confirm_channel(conn: &Connection) -> (Channel, mpsc::UnboundedReceiver<Event>) {
    let ch = conn.open_channel(None).await.expect("open channel");
    let (tx, rx) = mpsc::unbounded_channel();
    ch.register_callback(Recorder(tx))
        .await
        .expect("channel callback");
    ch.confirm_select(ConfirmSelectArguments::default())
        .await
        .expect("confirm.select");
    (ch, rx)
}

async fn next_event(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        Ok(Some(ev)) => ev,
        Ok(None) => panic!("channel callback dropped"),
        Err(_) => panic!("no confirm/return within 10 s"),
    }
}

/// Wait until every tag in `tags` is acked; a nack or a close fails the test.
async fn wait_acked(rx: &mut mpsc::UnboundedReceiver<Event>, tags: std::ops::RangeInclusive<u64>) {
    let mut pending: BTreeSet<u64> = tags.collect();
    while !pending.is_empty() {
        match next_event(rx).await {
            Event::Ack { tag, multiple } => {
                if multiple {
                    pending.retain(|t| *t > tag);
                } else {
                    pending.remove(&tag);
                }
            }
            other => panic!("expected acks for {pending:?}, got {other:?}"),
        }
    }
}

async fn next_message(rx: &mut mpsc::UnboundedReceiver<ConsumerMessage>) -> ConsumerMessage {
    match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        Ok(Some(m)) => m,
        Ok(None) => panic!("consumer ended"),
        Err(_) => panic!("no delivery within 10 s"),
    }
}

fn publish_args(exchange: &str, routing_key: &str, mandatory: bool) -> BasicPublishArguments {
    let mut args = BasicPublishArguments::new(exchange, routing_key);
    args.mandatory = mandatory;
    args
}

#[tokio::test]
async fn declare_bind_publish_confirm_consume_ack() {
    within(async {
        let broker = TestBroker::start().await;
        let conn = open(&broker).await;
        let (ch, mut events) = confirm_channel(&conn).await;
        let x = unique("amqprs-x");
        let q = unique("amqprs-q");
        ch.exchange_declare(ExchangeDeclareArguments::new(&x, "direct"))
            .await
            .expect("exchange.declare");
        let (name, messages, consumers) = ch
            .queue_declare(QueueDeclareArguments::new(&q))
            .await
            .expect("queue.declare")
            .expect("declare-ok");
        assert_eq!((name.as_str(), messages, consumers), (q.as_str(), 0, 0));
        ch.queue_bind(QueueBindArguments::new(&q, &x, "rk"))
            .await
            .expect("queue.bind");

        let mut headers = FieldTable::new();
        headers.insert("x-test".try_into().unwrap(), "yes".into());
        for i in 0..5 {
            let props = BasicProperties::default()
                .with_content_type("text/plain")
                .with_message_id(&format!("id-{i}"))
                .with_headers(headers.clone())
                .finish();
            ch.basic_publish(
                props,
                format!("body-{i}").into_bytes(),
                publish_args(&x, "rk", false),
            )
            .await
            .expect("publish");
        }
        wait_acked(&mut events, 1..=5).await;

        let (_, messages, _) = ch
            .queue_declare(QueueDeclareArguments::new(&q).passive(true).finish())
            .await
            .expect("passive declare")
            .expect("declare-ok");
        assert_eq!(messages, 5);

        let consume_ch = conn.open_channel(None).await.expect("open channel");
        let (tag, mut rx) = consume_ch
            .basic_consume_rx(
                BasicConsumeArguments::new(&q, "amqprs-consumer")
                    .manual_ack(true)
                    .finish(),
            )
            .await
            .expect("basic.consume");
        assert_eq!(tag, "amqprs-consumer");
        for i in 0..5u64 {
            let m = next_message(&mut rx).await;
            let deliver = m.deliver.expect("deliver");
            let props = m.basic_properties.expect("properties");
            assert_eq!(m.content.as_deref(), Some(format!("body-{i}").as_bytes()));
            assert_eq!(deliver.delivery_tag(), i + 1);
            assert!(!deliver.redelivered());
            assert_eq!(deliver.exchange(), &x);
            assert_eq!(deliver.routing_key(), "rk");
            assert_eq!(props.content_type().map(String::as_str), Some("text/plain"));
            assert_eq!(props.message_id().cloned(), Some(format!("id-{i}")));
            let h = props.headers().expect("headers");
            assert_eq!(
                h.get(&"x-test".try_into().unwrap()).map(|v| v.to_string()),
                Some("yes".to_string())
            );
            consume_ch
                .basic_ack(BasicAckArguments::new(deliver.delivery_tag(), false))
                .await
                .expect("ack");
        }
        consume_ch
            .basic_cancel(BasicCancelArguments::new(&tag))
            .await
            .expect("cancel");
        consume_ch.close().await.expect("channel close");
        // Everything was acked: nothing comes back.
        assert!(ch
            .basic_get(BasicGetArguments::new(&q).no_ack(true).finish())
            .await
            .expect("get")
            .is_none());

        ch.queue_delete(QueueDeleteArguments::new(&q))
            .await
            .expect("queue.delete");
        ch.exchange_delete(ExchangeDeleteArguments::new(&x))
            .await
            .expect("exchange.delete");
        ch.close().await.expect("close channel");
        conn.close().await.expect("close connection");
    })
    .await
}

#[tokio::test]
async fn mandatory_return_before_ack_and_nack_requeue() {
    within(async {
        let broker = TestBroker::start().await;
        let conn = open(&broker).await;
        let (ch, mut events) = confirm_channel(&conn).await;

        // Unroutable + mandatory: basic.return 312 NO_ROUTE, then the ack for tag 1.
        let missing = unique("amqprs-missing");
        ch.basic_publish(
            BasicProperties::default(),
            b"bounce".to_vec(),
            publish_args("", &missing, true),
        )
        .await
        .expect("publish");
        match next_event(&mut events).await {
            Event::Return { code, text, body } => {
                assert_eq!((code, text.as_str()), (312, "NO_ROUTE"));
                assert_eq!(body, b"bounce");
            }
            other => panic!("expected basic.return before the ack, got {other:?}"),
        }
        match next_event(&mut events).await {
            Event::Ack { tag: 1, .. } => {}
            other => panic!("expected the ack of tag 1, got {other:?}"),
        }

        // basic.get + nack requeue: the message comes back redelivered.
        let q = unique("amqprs-nack");
        ch.queue_declare(QueueDeclareArguments::new(&q))
            .await
            .expect("declare");
        ch.basic_publish(
            BasicProperties::default(),
            b"again".to_vec(),
            publish_args("", &q, true),
        )
        .await
        .expect("publish");
        wait_acked(&mut events, 2..=2).await;
        let get_ch = conn.open_channel(None).await.expect("channel");
        let (get_ok, _, body) = get_ch
            .basic_get(BasicGetArguments::new(&q))
            .await
            .expect("get")
            .expect("get-ok");
        assert_eq!(body, b"again");
        assert!(!get_ok.redelivered());
        assert_eq!(get_ok.message_count(), 0);
        get_ch
            .basic_nack(BasicNackArguments::new(get_ok.delivery_tag(), false, true))
            .await
            .expect("nack");
        let (get_ok, _, body) = get_ch
            .basic_get(BasicGetArguments::new(&q))
            .await
            .expect("get")
            .expect("requeued message");
        assert_eq!(body, b"again");
        assert!(get_ok.redelivered());
        get_ch
            .basic_ack(BasicAckArguments::new(get_ok.delivery_tag(), false))
            .await
            .expect("ack");
        ch.queue_delete(QueueDeleteArguments::new(&q))
            .await
            .expect("delete");
        conn.close().await.expect("close");
    })
    .await
}
