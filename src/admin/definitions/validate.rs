//! Whole-file validation, before anything is applied.
//!
//! Every entry is checked against the file itself and against what the broker
//! already has (an export of it): users and vhosts that permissions name,
//! binding ends, exchange types, regexes, queue arguments (RabbitMQ's rules and
//! texts), policy definitions. All problems are collected, each naming its
//! entry, and a file with any problem is refused as a whole.

use std::collections::{HashMap, HashSet};

use warren_routing::Selector;

use super::model::{to_field_table, Definitions};
use super::{DefinitionsError, Problem};
use crate::access::password::{self, HashingAlgorithm};
use crate::access::permissions::{check_regex, regex_excerpt, TopicPermission};
use crate::engine::policy;

/// The exchanges every vhost has.
pub(crate) const SYSTEM_EXCHANGES: &[(&str, &str)] = &[
    ("amq.direct", "direct"),
    ("amq.fanout", "fanout"),
    ("amq.topic", "topic"),
    ("amq.headers", "headers"),
    ("amq.match", "headers"),
    ("amq.rabbitmq.trace", "topic"),
];

/// Queue arguments Warren stores and validates but does not act on yet.
pub(crate) const QUEUE_ARGS_NOT_ENFORCED: &[&str] = &[];

/// What exists once the file is applied: the broker's objects plus the file's.
struct World<'a> {
    vhosts: HashSet<&'a str>,
    users: HashSet<&'a str>,
    /// (vhost, exchange) -> type
    exchanges: HashMap<(&'a str, &'a str), &'a str>,
    queues: HashSet<(&'a str, &'a str)>,
}

impl<'a> World<'a> {
    fn new(desired: &'a Definitions, existing: &'a Definitions) -> Self {
        let mut w = World {
            vhosts: HashSet::new(),
            users: HashSet::new(),
            exchanges: HashMap::new(),
            queues: HashSet::new(),
        };
        for d in [existing, desired] {
            w.vhosts.extend(d.vhosts.iter().map(|v| v.name.as_str()));
            w.users.extend(d.users.iter().map(|u| u.name.as_str()));
            for x in &d.exchanges {
                w.exchanges.insert((&x.vhost, &x.name), &x.kind);
            }
            w.queues
                .extend(d.queues.iter().map(|q| (q.vhost.as_str(), q.name.as_str())));
        }
        let vhosts: Vec<&str> = w.vhosts.iter().copied().collect();
        for v in vhosts {
            for (name, kind) in SYSTEM_EXCHANGES {
                w.exchanges.insert((v, name), kind);
            }
        }
        w
    }
}

/// Collects problems and warnings, with what exists once the file is applied.
struct Check<'a> {
    world: World<'a>,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

impl Check<'_> {
    fn problem(&mut self, entry: String, text: String) {
        self.problems.push(Problem {
            entry,
            problem: text,
        });
    }

    fn vhost_missing(&self, vhost: &str) -> Option<String> {
        (!self.world.vhosts.contains(vhost))
            .then(|| format!("vhost '{vhost}' exists neither in the file nor in the broker"))
    }

    fn user_missing(&self, user: &str) -> Option<String> {
        (!self.world.users.contains(user))
            .then(|| format!("user '{user}' exists neither in the file nor in the broker"))
    }
}

/// Checks `desired` against itself and `existing`, kind by kind; the warnings
/// are for things that will be stored but not acted on.
pub(crate) fn validate(
    desired: &Definitions,
    existing: &Definitions,
) -> Result<Vec<String>, DefinitionsError> {
    let mut c = Check {
        world: World::new(desired, existing),
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    check_users(&mut c, desired);
    check_vhosts(&mut c, desired);
    check_permissions(&mut c, desired);
    check_topic_permissions(&mut c, desired);
    check_parameters(&mut c, desired);
    check_global_parameters(&mut c, desired);
    check_policies(&mut c, desired);
    check_exchanges(&mut c, desired);
    check_queues(&mut c, desired);
    check_bindings(&mut c, desired);
    if c.problems.is_empty() {
        Ok(c.warnings)
    } else {
        Err(DefinitionsError::Invalid(c.problems))
    }
}

fn check_users(c: &mut Check<'_>, desired: &Definitions) {
    let mut seen = HashSet::new();
    for (i, u) in desired.users.iter().enumerate() {
        let entry = format!("users[{i}] (user '{}')", u.name);
        if u.name.is_empty() {
            c.problem(entry.clone(), "the user has no name".into());
        }
        if !seen.insert(u.name.as_str()) {
            c.problem(entry.clone(), "the user is defined twice".into());
        }
        let alg = match &u.hashing_algorithm {
            None => Some(HashingAlgorithm::Sha256),
            Some(name) => HashingAlgorithm::parse(name),
        };
        match alg {
            None => c.problem(
                entry.clone(),
                format!(
                    "unknown hashing_algorithm '{}' (expected rabbit_password_hashing_sha256, _sha512 or _md5)",
                    u.hashing_algorithm.as_deref().unwrap_or_default()
                ),
            ),
            Some(alg) => {
                if let Some(hash) = &u.password_hash {
                    if !password::is_valid_hash(alg, hash) {
                        c.problem(
                            entry.clone(),
                            format!("password_hash is not a base64 {} hash", alg.as_str()),
                        );
                    }
                }
            }
        }
        if u.password.is_some() && u.password_hash.is_some() {
            c.problem(
                entry,
                "give either password or password_hash, not both".into(),
            );
        }
    }
}

fn check_vhosts(c: &mut Check<'_>, desired: &Definitions) {
    let mut seen = HashSet::new();
    for (i, v) in desired.vhosts.iter().enumerate() {
        let entry = format!("vhosts[{i}] (vhost '{}')", v.name);
        if v.name.is_empty() {
            c.problem(entry.clone(), "the vhost has no name".into());
        }
        if let Some(text) = too_long("vhost name", &v.name) {
            c.problem(entry.clone(), text);
        }
        if !seen.insert(v.name.as_str()) {
            c.problem(entry, "the vhost is defined twice".into());
        }
    }
}

fn check_permissions(c: &mut Check<'_>, desired: &Definitions) {
    for (i, p) in desired.permissions.iter().enumerate() {
        let entry = format!(
            "permissions[{i}] (user '{}' in vhost '{}')",
            p.user, p.vhost
        );
        if let Some(text) = c
            .user_missing(&p.user)
            .or_else(|| c.vhost_missing(&p.vhost))
        {
            c.problem(entry.clone(), text);
        }
        for (what, re) in [
            ("configure", &p.configure),
            ("write", &p.write),
            ("read", &p.read),
        ] {
            if let Err(e) = check_regex(re) {
                c.problem(
                    entry.clone(),
                    format!("invalid regex in '{what}' ({}): {e}", regex_excerpt(re)),
                );
            }
        }
    }
}

fn check_topic_permissions(c: &mut Check<'_>, desired: &Definitions) {
    for (i, p) in desired.topic_permissions.iter().enumerate() {
        let entry = format!(
            "topic_permissions[{i}] (user '{}' in vhost '{}', exchange '{}')",
            p.user, p.vhost, p.exchange
        );
        if let Some(text) = c
            .user_missing(&p.user)
            .or_else(|| c.vhost_missing(&p.vhost))
        {
            c.problem(entry.clone(), text);
        }
        if p.exchange.is_empty() {
            c.problem(entry.clone(), "a topic permission needs an exchange".into());
        }
        if let Err(e) = TopicPermission::new(&p.user, &p.vhost, &p.write, &p.read) {
            c.problem(entry, format!("invalid regex: {e}"));
        }
    }
}

fn check_parameters(c: &mut Check<'_>, desired: &Definitions) {
    for (i, p) in desired.parameters.iter().enumerate() {
        let entry = format!(
            "parameters[{i}] (component '{}', name '{}' in vhost '{}')",
            p.component, p.name, p.vhost
        );
        if let Some(text) = c.vhost_missing(&p.vhost) {
            c.problem(entry.clone(), text);
        }
        if p.component.is_empty() || p.name.is_empty() {
            c.problem(entry, "a parameter needs a component and a name".into());
        }
    }
}

fn check_global_parameters(c: &mut Check<'_>, desired: &Definitions) {
    for (i, p) in desired.global_parameters.iter().enumerate() {
        if p.name.is_empty() {
            c.problem(
                format!("global_parameters[{i}]"),
                "a global parameter needs a name".into(),
            );
        }
    }
}

fn check_policies(c: &mut Check<'_>, desired: &Definitions) {
    let mut seen = HashSet::new();
    for (i, p) in desired.policies.iter().enumerate() {
        let entry = format!("policies[{i}] ({})", p.label());
        if let Some(text) = c.vhost_missing(&p.vhost) {
            c.problem(entry.clone(), text);
        }
        if !seen.insert((p.vhost.as_str(), p.name.as_str())) {
            c.problem(entry.clone(), "the policy is defined twice".into());
        }
        match policy::validate(&p.pattern, &p.apply_to, &p.definition) {
            Err(e) => c.problem(entry, e),
            Ok(()) => {
                let pending = policy::not_enforced(&p.definition);
                if !pending.is_empty() {
                    c.warnings.push(format!(
                        "{}: {} stored but not enforced yet",
                        p.label(),
                        pending.join(", ")
                    ));
                }
            }
        }
    }
}

fn check_exchanges(c: &mut Check<'_>, desired: &Definitions) {
    let mut seen = HashSet::new();
    for (i, x) in desired.exchanges.iter().enumerate() {
        let entry = format!("exchanges[{i}] ({})", x.label());
        if let Some(text) = c.vhost_missing(&x.vhost) {
            c.problem(entry.clone(), text);
        }
        if x.name.is_empty() {
            c.problem(
                entry.clone(),
                "the default exchange cannot be declared".into(),
            );
        }
        if let Some(text) = too_long("exchange name", &x.name) {
            c.problem(entry.clone(), text);
        }
        if !seen.insert((x.vhost.as_str(), x.name.as_str())) {
            c.problem(entry.clone(), "the exchange is defined twice".into());
        }
        // Plugin types (delayed, deduplication) check their own arguments.
        if let Err(e) = crate::engine::exchange::resolve(&x.kind, &to_field_table(&x.arguments)) {
            let text = e.to_string();
            let text = text.split_once(" - ").map_or(text.as_str(), |(_, t)| t);
            c.problem(entry.clone(), text.to_string());
        }
        if let Some(ae) = x.arguments.get("alternate-exchange") {
            match ae.as_str() {
                None => c.problem(
                    entry.clone(),
                    format!("invalid arg 'alternate-exchange': expected a string, got {ae}"),
                ),
                Some(ae) if !c.world.exchanges.contains_key(&(x.vhost.as_str(), ae)) => c.warnings
                    .push(format!(
                        "{}: its alternate exchange '{ae}' does not exist (unroutable messages are dropped until it does)",
                        x.label()
                    )),
                Some(_) => {}
            }
        }
        if x.name.starts_with("amq.") {
            if SYSTEM_EXCHANGES.iter().any(|(n, _)| *n == x.name) {
                c.warnings
                    .push(format!("{}: a system exchange, skipped", x.label()));
            } else {
                c.problem(
                    entry,
                    format!(
                        "exchange name '{}' contains reserved prefix 'amq.*'",
                        x.name
                    ),
                );
            }
        }
    }
}

fn check_queues(c: &mut Check<'_>, desired: &Definitions) {
    let mut seen = HashSet::new();
    for (i, q) in desired.queues.iter().enumerate() {
        let entry = format!("queues[{i}] ({})", q.label());
        if let Some(text) = c.vhost_missing(&q.vhost) {
            c.problem(entry.clone(), text);
        }
        if q.name.is_empty() {
            c.problem(entry.clone(), "the queue has no name".into());
        }
        if let Some(text) = too_long("queue name", &q.name) {
            c.problem(entry.clone(), text);
        }
        if !seen.insert((q.vhost.as_str(), q.name.as_str())) {
            c.problem(entry.clone(), "the queue is defined twice".into());
        }
        let table = to_field_table(&q.arguments);
        if let Err(e) =
            crate::engine::arguments::validate_queue_arguments(&q.name, &q.vhost, &table)
        {
            let text = e.to_string();
            let text = text.strip_prefix("PRECONDITION_FAILED - ").unwrap_or(&text);
            c.problem(entry.clone(), text.to_string());
        }
        match q.kind.as_deref() {
            None | Some("classic") | Some("quorum") => {}
            Some(other) => c.problem(entry.clone(), format!("unsupported queue type '{other}'")),
        }
        if let Err(e) = crate::engine::queue::args::check_queue_type(
            &q.name,
            &q.vhost,
            q.durable,
            false,
            q.auto_delete,
            &table,
        ) {
            let text = e.to_string();
            let text = text.strip_prefix("PRECONDITION_FAILED - ").unwrap_or(&text);
            c.problem(entry, text.to_string());
        }
        let pending: Vec<&str> = QUEUE_ARGS_NOT_ENFORCED
            .iter()
            .copied()
            .filter(|a| q.arguments.contains_key(*a))
            .collect();
        if !pending.is_empty() {
            c.warnings.push(format!(
                "{}: {} stored but not enforced yet",
                q.label(),
                pending.join(", ")
            ));
        }
    }
}

fn check_bindings(c: &mut Check<'_>, desired: &Definitions) {
    for (i, b) in desired.bindings.iter().enumerate() {
        let entry = format!("bindings[{i}] ({})", b.label());
        if let Some(text) = c.vhost_missing(&b.vhost) {
            c.problem(entry.clone(), text);
            continue;
        }
        for (what, name) in [
            ("source", &b.source),
            ("destination", &b.destination),
            ("routing key", &b.routing_key),
        ] {
            if let Some(text) = too_long(what, name) {
                c.problem(entry.clone(), text);
            }
        }
        let source_kind = c
            .world
            .exchanges
            .get(&(b.vhost.as_str(), b.source.as_str()))
            .copied();
        if b.source.is_empty() {
            c.problem(
                entry.clone(),
                "bindings of the default exchange cannot be declared".into(),
            );
        } else if source_kind.is_none() {
            c.problem(
                entry.clone(),
                format!(
                    "source exchange '{}' exists neither in the file nor in the broker",
                    b.source
                ),
            );
        }
        let destination_exists = match b.destination_type.as_str() {
            "queue" => c
                .world
                .queues
                .contains(&(b.vhost.as_str(), b.destination.as_str())),
            "exchange" => c
                .world
                .exchanges
                .contains_key(&(b.vhost.as_str(), b.destination.as_str())),
            other => {
                c.problem(
                    entry.clone(),
                    format!("invalid destination_type '{other}' (expected queue or exchange)"),
                );
                continue;
            }
        };
        if !destination_exists {
            c.problem(
                entry.clone(),
                format!(
                    "destination {} '{}' exists neither in the file nor in the broker",
                    b.destination_type, b.destination
                ),
            );
        }
        // A selector compiles here exactly as at queue.bind.
        if let Err(e) = Selector::from_binding_arguments(&to_field_table(&b.arguments)) {
            c.problem(entry.clone(), e.to_string());
        }
        if source_kind == Some("headers") {
            if let Some(m) = b.arguments.get("x-match") {
                if !matches!(
                    m.as_str(),
                    Some("all" | "any" | "all-with-x" | "any-with-x")
                ) {
                    c.problem(
                        entry,
                        format!("invalid x-match field value {m}; expected all, any, all-with-x, or any-with-x"),
                    );
                }
            }
        }
    }
}

/// AMQP carries names and routing keys as short strings: a longer one could
/// be stored but never named by a client.
fn too_long(what: &str, name: &str) -> Option<String> {
    (name.len() > 255).then(|| {
        format!(
            "the {what} is {} bytes long; AMQP allows at most 255",
            name.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::definitions::{parse, Format};

    fn check(text: &str) -> Result<Vec<String>, String> {
        let existing = parse(
            r#"{"vhosts":[{"name":"/"}],"users":[{"name":"guest"}]}"#,
            Format::Json,
        )
        .unwrap();
        let desired = parse(text, Format::Json).map_err(|e| e.to_string())?;
        validate(&desired, &existing).map_err(|e| e.to_string())
    }

    #[test]
    fn a_good_file_passes() {
        let w = check(
            r##"{"vhosts":[{"name":"shop"}],"users":[{"name":"u","password":"p"}],
                "permissions":[{"user":"u","vhost":"shop","configure":"^x","write":".*","read":""}],
                "exchanges":[{"name":"x","vhost":"shop","type":"topic","arguments":{"alternate-exchange":"ae"}},
                             {"name":"ae","vhost":"shop","type":"fanout"}],
                "queues":[{"name":"q","vhost":"shop","arguments":{"x-max-length":5}}],
                "bindings":[{"source":"x","vhost":"shop","destination":"q","destination_type":"queue","routing_key":"#"},
                            {"source":"amq.topic","vhost":"/","destination":"amq.fanout","destination_type":"exchange"}]}"##,
        )
        .unwrap();
        // Queue arguments are all enforced (issue 5): nothing to warn about.
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn each_problem_names_its_entry() {
        let e = check(r#"{"exchanges":[{"name":"x","type":"x-consistent-hash"}]}"#).unwrap_err();
        assert!(e.contains("exchanges[0] (exchange 'x' in vhost '/'): invalid exchange type 'x-consistent-hash'"), "{e}");
        let e = check(r#"{"exchanges":[{"name":"x","type":"x-delayed-message"}]}"#).unwrap_err();
        assert!(e.contains("exchanges[0] (exchange 'x' in vhost '/'): Invalid argument, 'x-delayed-type' must bean existing exchnage type"), "{e}");
        let e = check(
            r#"{"queues":[{"name":"q","durable":false,"arguments":{"x-queue-type":"quorum"}}]}"#,
        )
        .unwrap_err();
        assert!(e.contains("queues[0] (queue 'q' in vhost '/'): invalid property 'non-durable' for queue 'q' in vhost '/'"), "{e}");
        let e = check(
            r#"{"bindings":[{"source":"nope","destination":"q","destination_type":"queue"}]}"#,
        )
        .unwrap_err();
        assert!(
            e.contains("source exchange 'nope' exists neither in the file nor in the broker"),
            "{e}"
        );
        assert!(
            e.contains("destination queue 'q' exists neither in the file nor in the broker"),
            "{e}"
        );
        let e = check(r#"{"permissions":[{"user":"guest","vhost":"/","configure":"(","write":".*","read":".*"}]}"#).unwrap_err();
        assert!(
            e.contains(
                "permissions[0] (user 'guest' in vhost '/'): invalid regex in 'configure' (()"
            ),
            "{e}"
        );
        let e = check(r#"{"queues":[{"name":"q","arguments":{"x-max-length":-1}}]}"#).unwrap_err();
        assert!(e.contains("queues[0] (queue 'q' in vhost '/'): invalid arg 'x-max-length' for queue 'q' in vhost '/': {value_negative,-1}"), "{e}");
        let e = check(r#"{"queues":[{"name":"q","vhost":"nope"}]}"#).unwrap_err();
        assert!(
            e.contains("vhost 'nope' exists neither in the file nor in the broker"),
            "{e}"
        );
        let e = check(r#"{"users":[{"name":"u","password_hash":"xx","hashing_algorithm":"rabbit_password_hashing_sha256"}]}"#).unwrap_err();
        assert!(e.contains("password_hash is not a base64"), "{e}");
        let e = check(
            r#"{"policies":[{"name":"p","pattern":".*","definition":{"max-length":"ten"}}]}"#,
        )
        .unwrap_err();
        assert!(e.contains("policies[0] (policy 'p' in vhost '/'): 'max-length' must be a non-negative integer"), "{e}");
    }

    #[test]
    fn binding_selectors_are_compiled() {
        let file = |args: &str| {
            format!(
                r#"{{"exchanges":[{{"name":"x","type":"fanout"}}],"queues":[{{"name":"q"}}],
                    "bindings":[{{"source":"x","destination":"q","destination_type":"queue","arguments":{args}}}]}}"#
            )
        };
        check(&file(r#"{"x-selector":"region = 'eu' AND amount > 1000"}"#)).unwrap();
        check(&file(r#"{"x-filter-jms-selector":"body.total > 1"}"#)).unwrap();
        let e = check(&file(r#"{"x-selector":"region = 'eu' AND"}"#)).unwrap_err();
        assert!(e.contains("bindings[0] ("), "{e}");
        assert!(
            e.contains("invalid x-selector at position 18: expected an operand, found the end of the selector"),
            "{e}"
        );
        let e = check(&file(r#"{"x-filter-jms-selector":"a MATCHES '('"}"#)).unwrap_err();
        assert!(
            e.contains("invalid x-filter-jms-selector at position 11: invalid regex"),
            "{e}"
        );
    }
}
