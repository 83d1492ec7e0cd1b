//! Routing decisions per second through `Topology::route` for each exchange
//! type at a realistic scale: topic with 10,000 mixed bindings, direct with
//! 10,000, headers with 1,000, fanout to 100 queues. Each iteration routes a
//! batch of messages and criterion reports them as elements per second.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use warren_routing::{
    AMQPValue, Destination, ExchangeKind, FieldTable, RoutableMessage, Route, Topology,
};

fn queue(n: usize) -> Destination {
    Destination::Queue(format!("queue-{}", n % 1_000).into())
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.as_bytes().to_vec().into())
}

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

/// Routes every message once per iteration, reusing one `Route`.
fn bench_messages(
    c: &mut Criterion,
    name: &str,
    topology: &Topology,
    exchange: &str,
    messages: &[RoutableMessage<'_>],
) {
    let mut route = Route::default();
    let reached: usize = messages
        .iter()
        .map(|message| {
            topology.route(exchange, message, &mut route);
            route.queues.len()
        })
        .sum();
    eprintln!(
        "{name}: {} messages per iteration, {:.1} queues reached per message",
        messages.len(),
        reached as f64 / messages.len() as f64
    );
    let mut group = c.benchmark_group("route");
    group.throughput(Throughput::Elements(messages.len() as u64));
    let mut delivered = 0usize;
    group.bench_function(name, |b| {
        b.iter(|| {
            for message in messages {
                topology.route(exchange, black_box(message), &mut route);
                delivered += route.queues.len();
            }
        })
    });
    group.finish();
    black_box(delivered);
}

fn topic(c: &mut Criterion) {
    let mut t = Topology::new();
    t.add_exchange("events", ExchangeKind::Topic);
    let none = FieldTable::default();
    let mut patterns = Vec::with_capacity(10_000);
    for n in 0..2_500 {
        patterns.push(format!("region.{n}.*"));
        patterns.push(format!("*.orders.{n}"));
    }
    for n in 0..4_000 {
        patterns.push(format!("service.{n}.events"));
    }
    for n in 0..997 {
        patterns.push(format!("logs.{n}.#"));
    }
    patterns.extend([
        "audit.#".to_string(),
        "#.error".to_string(),
        "*.*.critical".to_string(),
    ]);
    assert_eq!(patterns.len(), 10_000);
    for (i, p) in patterns.iter().enumerate() {
        t.bind("events", queue(i), p, &none).unwrap();
    }
    let mut keys = Vec::new();
    for n in 0..100 {
        keys.push(format!("region.{}.created", n * 17));
        keys.push(format!("eu.orders.{}", n * 23));
        keys.push(format!("service.{}.events", n * 31));
        keys.push(format!("audit.login.user-{n}"));
        keys.push(format!("logs.{}.app.info", n * 7));
        keys.push(format!("db.{n}.error"));
        keys.push(format!("eu.orders.{}", 9_000 + n)); // no binding
        keys.push(format!("unknown.{n}.key.with.many.words"));
        keys.push(format!("region.{}.x.y", n)); // too many words for region.*
        keys.push(format!("service.{}.events", 5_000 + n)); // miss
    }
    let messages: Vec<RoutableMessage<'_>> = keys
        .iter()
        .map(|k| RoutableMessage {
            routing_key: k,
            headers: warren_routing::Headers::None,
            ..Default::default()
        })
        .collect();
    bench_messages(c, "topic_10k_bindings", &t, "events", &messages);
}

fn direct(c: &mut Criterion) {
    let mut t = Topology::new();
    t.add_exchange("direct", ExchangeKind::Direct);
    let none = FieldTable::default();
    for n in 0..10_000 {
        t.bind("direct", queue(n), &format!("key-{n}"), &none)
            .unwrap();
    }
    // Nine hits to one miss.
    let keys: Vec<String> = (0..1_000)
        .map(|i| {
            if i % 10 == 9 {
                format!("missing-{i}")
            } else {
                format!("key-{}", i * 7 % 10_000)
            }
        })
        .collect();
    let messages: Vec<RoutableMessage<'_>> = keys
        .iter()
        .map(|k| RoutableMessage {
            routing_key: k,
            headers: warren_routing::Headers::None,
            ..Default::default()
        })
        .collect();
    bench_messages(c, "direct_10k_bindings", &t, "direct", &messages);
}

fn headers(c: &mut Criterion) {
    let mut t = Topology::new();
    t.add_exchange("headers", ExchangeKind::Headers);
    let regions = ["eu", "us", "apac", "latam"];
    for n in 0..1_000 {
        let region = long(regions[n % regions.len()]);
        let kind = long(&format!("type-{}", n % 50));
        let args = match n % 4 {
            0 => table(&[("region", region), ("type", kind)]),
            1 => table(&[("x-match", long("any")), ("region", region), ("type", kind)]),
            2 => table(&[
                ("type", kind),
                ("priority", AMQPValue::LongInt((n % 3) as i32)),
            ]),
            _ => table(&[
                ("x-match", long("all")),
                ("tenant", long(&format!("t{}", n % 100))),
                ("traced", AMQPValue::Void),
            ]),
        };
        t.bind("headers", queue(n), "", &args).unwrap();
    }
    let tables: Vec<FieldTable> = (0..100)
        .map(|i| {
            let mut pairs = vec![
                ("region", long(regions[i % regions.len()])),
                ("type", long(&format!("type-{}", i % 60))),
                ("priority", AMQPValue::LongInt((i % 3) as i32)),
                ("content-encoding", long("gzip")),
            ];
            if i % 5 == 0 {
                pairs.push(("tenant", long(&format!("t{}", i))));
                pairs.push(("traced", AMQPValue::Boolean(true)));
            }
            table(&pairs)
        })
        .collect();
    let messages: Vec<RoutableMessage<'_>> = tables
        .iter()
        .map(|h| RoutableMessage {
            routing_key: "",
            headers: Some(h).into(),
            ..Default::default()
        })
        .collect();
    bench_messages(c, "headers_1k_bindings", &t, "headers", &messages);
}

fn fanout(c: &mut Criterion) {
    let mut t = Topology::new();
    t.add_exchange("fanout", ExchangeKind::Fanout);
    let none = FieldTable::default();
    for n in 0..100 {
        t.bind("fanout", queue(n), "", &none).unwrap();
    }
    let messages = [RoutableMessage {
        routing_key: "anything",
        headers: warren_routing::Headers::None,
        ..Default::default()
    }];
    bench_messages(c, "fanout_100_queues", &t, "fanout", &messages);
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = topic, direct, headers, fanout
}
criterion_main!(benches);
