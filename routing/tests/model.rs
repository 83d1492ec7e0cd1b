//! Model-based test: random sequences of topology changes, checked after each
//! step against a deliberately naive reference (a flat binding list, textbook
//! recursive topic matching, a plain breadth-first walk). Also checks that a
//! snapshot taken before each change still routes as before (copy-on-write).

use std::collections::{BTreeSet, HashMap};

use warren_routing::{
    AMQPValue, Destination, ExchangeKind, FieldTable, RoutableMessage, Route, Topology,
};

/// Small deterministic generator (64-bit LCG, high bits).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const EXCHANGES: [(&str, ExchangeKind); 5] = [
    ("direct", ExchangeKind::Direct),
    ("fanout", ExchangeKind::Fanout),
    ("topic", ExchangeKind::Topic),
    ("headers", ExchangeKind::Headers),
    ("topic2", ExchangeKind::Topic),
];
const QUEUES: [&str; 6] = ["q0", "q1", "q2", "q3", "q4", "q5"];
const BINDING_KEYS: [&str; 12] = [
    "a", "b", "", "a.*", "#", "a.#", "*.b", "a.b", "#.b", "a..b", "*.*", "*",
];
const ROUTING_KEYS: [&str; 9] = ["a", "b", "", ".", "a.b", "a..b", "x.b", "a.b.c", "a.b.b"];

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

fn binding_arguments(rng: &mut Rng) -> FieldTable {
    match rng.below(6) {
        0 | 1 => FieldTable::default(),
        2 => table(&[("h1", long("1"))]),
        3 => table(&[
            ("x-match", long("any")),
            ("h1", long("1")),
            ("h2", long("1")),
        ]),
        4 => table(&[("h2", AMQPValue::Void)]),
        _ => table(&[
            ("x-match", long("all")),
            ("h1", long("2")),
            ("h2", long("1")),
        ]),
    }
}

fn message_headers(rng: &mut Rng) -> Option<FieldTable> {
    match rng.below(5) {
        0 => None,
        1 => Some(table(&[("h1", long("1"))])),
        2 => Some(table(&[("h1", long("2")), ("h2", long("1"))])),
        3 => Some(table(&[("h2", long("7"))])),
        _ => Some(table(&[("h1", long("1")), ("h2", long("1"))])),
    }
}

fn words(s: &str) -> Vec<&str> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split('.').collect()
    }
}

fn topic_matches(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|i| topic_matches(rest, &key[i..])),
        Some((&"*", rest)) => !key.is_empty() && topic_matches(rest, &key[1..]),
        Some((w, rest)) => key.first() == Some(w) && topic_matches(rest, &key[1..]),
    }
}

/// Headers matching for the argument shapes `binding_arguments` makes.
fn headers_match(args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let empty = FieldTable::default();
    let headers = headers.unwrap_or(&empty).inner();
    let any = args.inner().get("x-match") == Some(&long("any"));
    let mut conditions = args
        .inner()
        .iter()
        .filter(|(k, _)| !k.as_str().starts_with("x-"))
        .map(|(k, v)| match (headers.get(k.as_str()), v) {
            (None, _) => false,
            (Some(_), AMQPValue::Void) => true,
            (Some(h), v) => h == v,
        });
    if any {
        conditions.any(|c| c)
    } else {
        conditions.all(|c| c)
    }
}

#[derive(Clone, Default)]
struct Model {
    /// name -> (kind, alternate exchange)
    exchanges: HashMap<String, (ExchangeKind, Option<String>)>,
    /// (source, destination, key, arguments)
    bindings: Vec<(String, Destination, String, FieldTable)>,
}

impl Model {
    fn route(&self, exchange: &str, key: &str, headers: Option<&FieldTable>) -> BTreeSet<String> {
        let mut queues = BTreeSet::new();
        if !self.exchanges.contains_key(exchange) {
            return queues;
        }
        let mut walk = vec![exchange.to_string()];
        let mut next = 0;
        while next < walk.len() {
            let name = walk[next].clone();
            next += 1;
            let Some((kind, alternate)) = self.exchanges.get(&name) else {
                continue;
            };
            let mut matched = false;
            for (source, destination, binding_key, args) in &self.bindings {
                if *source != name {
                    continue;
                }
                let hit = match kind {
                    ExchangeKind::Direct => binding_key == key,
                    ExchangeKind::Fanout => true,
                    ExchangeKind::Topic => topic_matches(&words(binding_key), &words(key)),
                    ExchangeKind::Headers => headers_match(args, headers),
                };
                if !hit {
                    continue;
                }
                matched = true;
                match destination {
                    Destination::Queue(q) => {
                        queues.insert(q.to_string());
                    }
                    Destination::Exchange(x) => {
                        if !walk.iter().any(|w| **w == **x) {
                            walk.push(x.to_string());
                        }
                    }
                }
            }
            if let (false, Some(alternate)) = (matched, alternate) {
                if !walk.contains(alternate) {
                    walk.push(alternate.clone());
                }
            }
        }
        queues
    }

    fn sorted_bindings(&self) -> Vec<String> {
        let mut all: Vec<String> = self.bindings.iter().map(|b| format!("{b:?}")).collect();
        all.sort();
        all
    }
}

fn routed(
    topology: &Topology,
    exchange: &str,
    key: &str,
    headers: Option<&FieldTable>,
) -> BTreeSet<String> {
    let mut route = Route::default();
    topology.route(
        exchange,
        &RoutableMessage {
            routing_key: key,
            headers: headers.into(),
            ..Default::default()
        },
        &mut route,
    );
    let set: BTreeSet<String> = route.queues.iter().map(|q| q.to_string()).collect();
    assert_eq!(
        set.len(),
        route.queues.len(),
        "duplicate queue in {:?}",
        route.queues
    );
    set
}

fn check(topology: &Topology, model: &Model, rng: &mut Rng, context: &str) {
    for _ in 0..6 {
        let key = *rng.pick(&ROUTING_KEYS);
        let headers = message_headers(rng);
        for (exchange, _) in EXCHANGES.iter().chain(&[("missing", ExchangeKind::Direct)]) {
            assert_eq!(
                routed(topology, exchange, key, headers.as_ref()),
                model.route(exchange, key, headers.as_ref()),
                "{context}: route {exchange} key {key:?} headers {headers:?}"
            );
        }
    }
    let listed: Vec<String> = {
        let mut all: Vec<String> = topology
            .bindings()
            .into_iter()
            .map(|b| {
                format!(
                    "{:?}",
                    (
                        b.source.to_string(),
                        b.destination,
                        b.routing_key.to_string(),
                        b.arguments
                    )
                )
            })
            .collect();
        all.sort();
        all
    };
    assert_eq!(listed, model.sorted_bindings(), "{context}: bindings");
    for (name, _) in EXCHANGES {
        let count = model.bindings.iter().filter(|b| b.0 == name).count();
        if let Some(table) = topology.exchange(name) {
            assert_eq!(table.binding_count(), count, "{context}: count of {name}");
        }
    }
}

fn random_destination(rng: &mut Rng) -> Destination {
    if rng.below(4) == 0 {
        Destination::Exchange(rng.pick(&EXCHANGES).0.into())
    } else {
        Destination::Queue((*rng.pick(&QUEUES)).into())
    }
}

fn run(seed: u64, steps: usize) {
    let mut rng = Rng(seed);
    let mut topology = Topology::new();
    let mut model = Model::default();
    for (name, kind) in EXCHANGES {
        topology.add_exchange(name, kind);
        model.exchanges.insert(name.to_string(), (kind, None));
    }
    for step in 0..steps {
        let snapshot = (topology.clone(), model.clone());
        let op = rng.below(20);
        let context = format!("seed {seed} step {step} op {op}");
        match op {
            0..=9 => {
                let source = rng.pick(&EXCHANGES).0;
                let destination = random_destination(&mut rng);
                let key = *rng.pick(&BINDING_KEYS);
                let args = binding_arguments(&mut rng);
                let result = topology.bind(source, destination.clone(), key, &args);
                if !model.exchanges.contains_key(source) {
                    assert!(result.is_err(), "{context}");
                    continue;
                }
                let entry = (source.to_string(), destination, key.to_string(), args);
                let fresh = !model.bindings.contains(&entry);
                assert_eq!(result, Ok(fresh), "{context}: bind {entry:?}");
                if fresh {
                    model.bindings.push(entry);
                }
            }
            10..=13 => {
                // Mostly unbind something that exists.
                let entry = if !model.bindings.is_empty() && rng.below(4) != 0 {
                    model.bindings[rng.below(model.bindings.len())].clone()
                } else {
                    let source = rng.pick(&EXCHANGES).0.to_string();
                    let key = rng.pick(&BINDING_KEYS).to_string();
                    (
                        source,
                        random_destination(&mut rng),
                        key,
                        binding_arguments(&mut rng),
                    )
                };
                let existed = model.bindings.contains(&entry);
                model.bindings.retain(|b| *b != entry);
                assert_eq!(
                    topology.unbind(&entry.0, &entry.1, &entry.2, &entry.3),
                    existed,
                    "{context}"
                );
            }
            14 | 15 => {
                let queue = *rng.pick(&QUEUES);
                topology.remove_queue(queue);
                model
                    .bindings
                    .retain(|b| b.1 != Destination::Queue(queue.into()));
            }
            16 => {
                let (name, kind) = *rng.pick(&EXCHANGES);
                let existed = model.exchanges.remove(name).is_some();
                assert_eq!(topology.remove_exchange(name), existed, "{context}");
                model
                    .bindings
                    .retain(|b| b.0 != name && b.1 != Destination::Exchange(name.into()));
                // Usually bring it back, empty.
                if rng.below(3) != 0 {
                    assert!(topology.add_exchange(name, kind));
                    model.exchanges.insert(name.to_string(), (kind, None));
                }
            }
            _ => {
                let name = rng.pick(&EXCHANGES).0;
                let alternate = match rng.below(3) {
                    0 => None,
                    1 => Some("dangling".to_string()),
                    _ => Some(rng.pick(&EXCHANGES).0.to_string()),
                };
                if let Some(table) = topology.exchange_mut(name) {
                    table.set_alternate_exchange(alternate.as_deref().map(Into::into));
                    model.exchanges.get_mut(name).unwrap().1 = alternate;
                }
            }
        }
        check(&topology, &model, &mut rng, &context);
        check(
            &snapshot.0,
            &snapshot.1,
            &mut rng,
            &format!("{context} (snapshot)"),
        );
    }
}

#[test]
fn random_operations_agree_with_reference_model() {
    for seed in 1..=40 {
        run(seed, 300);
    }
}
