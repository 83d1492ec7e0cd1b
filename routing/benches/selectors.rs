//! Selector costs: evaluations per second of a header selector and of a JSON
//! body selector (the body parsed once per message, as routing does), and
//! routing throughput of a fanout exchange with 1,000 selector bindings (every
//! message evaluates every selector). Criterion reports elements per second.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use warren_routing::{
    AMQPValue, Destination, ExchangeKind, FieldTable, MessageProperties, RoutableMessage, Route,
    Selector, SelectorInput, Topology,
};

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

const REGIONS: [&str; 4] = ["eu", "us", "apac", "latam"];

fn headers(i: usize) -> FieldTable {
    table(&[
        ("region", long(REGIONS[i % 4])),
        ("amount", AMQPValue::LongInt((i * 37 % 3_000) as i32)),
        ("customer", long(&format!("c-{}", i % 97))),
        ("channel", long("web")),
        ("priority", AMQPValue::ShortShortUInt((i % 10) as u8)),
    ])
}

fn body(i: usize) -> Vec<u8> {
    format!(
        r#"{{"order": {{"id": "o-{i}", "total": {}.50, "currency": "EUR",
            "customer": {{"id": "c-{}", "region": "{}", "vip": {}}},
            "lines": [{{"sku": "SKU-{}", "qty": 2}}, {{"sku": "SKU-9", "qty": 1}}]}}}}"#,
        i * 37 % 3_000,
        i % 97,
        REGIONS[i % 4],
        i.is_multiple_of(5),
        i % 13
    )
    .into_bytes()
}

fn properties() -> MessageProperties<'static> {
    MessageProperties {
        content_type: Some("application/json"),
        delivery_mode: Some(2),
        message_id: Some("m-1"),
        ..Default::default()
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// One selector over 100 distinct messages, a fresh `SelectorInput` each (as
/// one routing call makes).
fn evaluate(c: &mut Criterion, name: &str, selector: &str, messages: &[RoutableMessage<'_>]) {
    let selector = Selector::parse(selector).expect("valid selector");
    let hits = messages
        .iter()
        .filter(|m| selector.matches(&SelectorInput::new(m)))
        .count();
    eprintln!("{name}: {hits} of {} messages match", messages.len());
    let mut group = c.benchmark_group("selector");
    group.throughput(Throughput::Elements(messages.len() as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut n = 0usize;
            for m in messages {
                n += usize::from(selector.matches(&SelectorInput::new(black_box(m))));
            }
            n
        })
    });
    group.finish();
}

fn header_selector(c: &mut Criterion) {
    let tables: Vec<FieldTable> = (0..100).map(headers).collect();
    let messages: Vec<RoutableMessage<'_>> = tables
        .iter()
        .map(|h| RoutableMessage {
            routing_key: "orders.new",
            headers: Some(h).into(),
            exchange: "orders",
            properties: properties(),
            ..Default::default()
        })
        .collect();
    evaluate(
        c,
        "header_selector",
        "region IN ('eu', 'us') AND amount > 1000 AND customer LIKE 'c-1%' OR priority >= 9",
        &messages,
    );
}

fn json_body_selector(c: &mut Criterion) {
    let bodies: Vec<Vec<u8>> = (0..100).map(body).collect();
    let messages: Vec<RoutableMessage<'_>> = bodies
        .iter()
        .map(|b| RoutableMessage {
            routing_key: "orders.new",
            exchange: "orders",
            properties: properties(),
            body: b,
            ..Default::default()
        })
        .collect();
    eprintln!("json body: {} bytes", bodies[0].len());
    evaluate(
        c,
        "json_body_selector",
        "body.order.total > 1000 AND body.order.customer.region = 'eu' \
         AND body.order.lines[0].sku LIKE 'SKU-1%'",
        &messages,
    );
}

fn fanout_1k_selector_bindings(c: &mut Criterion) {
    let mut t = Topology::new();
    t.add_exchange("fanout", ExchangeKind::Fanout);
    for n in 0..1_000 {
        let selector = match n % 4 {
            0 => format!("region = '{}' AND amount > {}", REGIONS[n % 4], n * 3),
            1 => format!("customer = 'c-{}'", n % 97),
            2 => format!("amount BETWEEN {} AND {}", n * 2, n * 2 + 100),
            _ => format!(
                "region IN ('{}', '{}') AND priority >= {}",
                REGIONS[n % 4],
                REGIONS[(n + 1) % 4],
                n % 10
            ),
        };
        let args = table(&[("x-selector", long(&selector))]);
        t.bind(
            "fanout",
            Destination::Queue(format!("queue-{n}").into()),
            "",
            &args,
        )
        .expect("valid selector");
    }
    let tables: Vec<FieldTable> = (0..100).map(headers).collect();
    let messages: Vec<RoutableMessage<'_>> = tables
        .iter()
        .map(|h| RoutableMessage {
            routing_key: "orders.new",
            headers: Some(h).into(),
            exchange: "fanout",
            properties: properties(),
            ..Default::default()
        })
        .collect();
    let mut route = Route::default();
    let reached: usize = messages
        .iter()
        .map(|m| {
            t.route("fanout", m, &mut route);
            route.queues.len()
        })
        .sum();
    eprintln!(
        "fanout_1k_selector_bindings: {:.1} queues reached per message",
        reached as f64 / messages.len() as f64
    );
    let mut group = c.benchmark_group("route");
    group.throughput(Throughput::Elements(messages.len() as u64));
    group.bench_function("fanout_1k_selector_bindings", |b| {
        b.iter(|| {
            let mut delivered = 0usize;
            for m in &messages {
                t.route("fanout", black_box(m), &mut route);
                delivered += route.queues.len();
            }
            delivered
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = header_selector, json_body_selector, fanout_1k_selector_bindings
}
criterion_main!(benches);
