//! Permissions: what a user may do in a vhost, checked as RabbitMQ 3.10 does.
//!
//! A permission is three regular expressions (configure, write, read) matched
//! against resource names with an unanchored search, as RabbitMQ's `re:run`
//! does; an empty expression matches only the empty name (RabbitMQ turns `""`
//! into `^$`). Topic permissions add a write and a read expression per topic
//! exchange, matched against routing keys and binding keys; `{username}` and
//! `{vhost}` in them are expanded when they are set. Every expression is
//! compiled once, when the permission is set, never per operation.
//!
//! Connections hold an [`AccessSlot`] for their (user, vhost): setting or
//! clearing a permission swaps the slot's contents, so open connections see
//! the change on their next operation without taking a lock.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use regex::Regex;

use amq_protocol::types::FieldTable;
use warren_routing::{Destination, ExchangeKind};

use crate::protocol::error::AmqpError;
use crate::protocol::field::value_as_str;

/// One compiled expression and the text it came from.
#[derive(Clone, Debug)]
pub(crate) struct Pattern {
    source: String,
    regex: Option<Regex>,
}

impl Pattern {
    /// Compiles `source` as RabbitMQ would use it; the error is the regex crate's text.
    pub(crate) fn new(source: &str) -> Result<Self, String> {
        Self::expanded(source, source)
    }

    /// `source` is kept for export; `effective` (after variable expansion) is compiled.
    fn expanded(source: &str, effective: &str) -> Result<Self, String> {
        let effective = if effective.is_empty() {
            "^$"
        } else {
            effective
        };
        // ".*" matches everything: skip the regex engine on the hot path.
        let regex = if effective == ".*" {
            None
        } else {
            Some(compile_regex(effective)?)
        };
        Ok(Self {
            source: source.to_string(),
            regex,
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.source
    }

    pub(crate) fn is_match(&self, name: &str) -> bool {
        match &self.regex {
            None => true,
            Some(re) => re.is_match(name),
        }
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// The longest regex (permission, topic permission, policy pattern) accepted:
/// checked before the regex engine parses anything, so a hostile 1 MB pattern
/// costs nothing.
pub(crate) const MAX_REGEX_LEN: usize = 16 * 1024;
/// The most memory a compiled regex (and its lazy DFA cache) may take.
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles an administrator's regex within [`MAX_REGEX_LEN`] and
/// [`REGEX_SIZE_LIMIT`]; the error says which limit or what syntax failed.
pub(crate) fn compile_regex(source: &str) -> Result<Regex, String> {
    if source.len() > MAX_REGEX_LEN {
        return Err(format!(
            "the regex is {} bytes long; at most {MAX_REGEX_LEN} are accepted",
            source.len()
        ));
    }
    regex::RegexBuilder::new(source)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| e.to_string())
}

/// A regex as error texts show it: whole, or its first 64 characters.
pub(crate) fn regex_excerpt(source: &str) -> String {
    match source.char_indices().nth(64) {
        None => source.to_string(),
        Some((at, _)) => format!("{}...", &source[..at]),
    }
}

/// Checks a regex the way set_permissions would, for validation.
pub(crate) fn check_regex(source: &str) -> Result<(), String> {
    Pattern::new(source).map(|_| ())
}

/// configure / write / read for one user in one vhost.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Permission {
    pub(crate) configure: Pattern,
    pub(crate) write: Pattern,
    pub(crate) read: Pattern,
}

impl Permission {
    pub(crate) fn new(configure: &str, write: &str, read: &str) -> Result<Self, String> {
        Ok(Self {
            configure: Pattern::new(configure)?,
            write: Pattern::new(write)?,
            read: Pattern::new(read)?,
        })
    }

    /// Full access (`.*` everywhere), what the default user gets.
    pub(crate) fn all() -> Self {
        Self {
            configure: Pattern::expanded(".*", ".*").unwrap_or_else(|_| unreachable!()),
            write: Pattern::expanded(".*", ".*").unwrap_or_else(|_| unreachable!()),
            read: Pattern::expanded(".*", ".*").unwrap_or_else(|_| unreachable!()),
        }
    }
}

/// Topic permission on one topic exchange.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TopicPermission {
    pub(crate) write: Pattern,
    pub(crate) read: Pattern,
}

impl TopicPermission {
    /// Compiles the expressions with `{username}` and `{vhost}` expanded.
    pub(crate) fn new(user: &str, vhost: &str, write: &str, read: &str) -> Result<Self, String> {
        let expand = |s: &str| s.replace("{username}", user).replace("{vhost}", vhost);
        Ok(Self {
            write: Pattern::expanded(write, &expand(write))?,
            read: Pattern::expanded(read, &expand(read))?,
        })
    }
}

/// What one user may do in one vhost.
#[derive(Clone, Debug, Default)]
pub(crate) struct Access {
    pub(crate) permission: Option<Permission>,
    /// By exchange name.
    pub(crate) topic: HashMap<String, TopicPermission>,
}

/// Kinds of access, as RabbitMQ names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Perm {
    Configure,
    Write,
    Read,
}

/// The kind of resource a check is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resource {
    Exchange,
    Queue,
}

/// A connection's view of its (user, vhost) access; updated in place.
pub(crate) struct AccessSlot {
    access: ArcSwap<Access>,
}

impl AccessSlot {
    fn new() -> Self {
        Self {
            access: ArcSwap::from_pointee(Access::default()),
        }
    }

    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<Access>> {
        self.access.load()
    }

    /// Whether the user may open a connection to the vhost at all.
    pub(crate) fn can_connect(&self) -> bool {
        self.access.load().permission.is_some()
    }
}

/// The permission checks of one connection: who, where, and the live slot.
#[derive(Clone)]
pub(crate) struct Checker {
    pub(crate) user: Arc<str>,
    pub(crate) vhost: Arc<str>,
    slot: Arc<AccessSlot>,
}

impl Checker {
    pub(crate) fn new(user: &str, vhost: &str, slot: Arc<AccessSlot>) -> Self {
        Self {
            user: Arc::from(user),
            vhost: Arc::from(vhost),
            slot,
        }
    }

    /// Checks `perm` on a resource; the default exchange is `amq.default`.
    pub(crate) fn check(&self, perm: Perm, kind: Resource, name: &str) -> Result<(), AmqpError> {
        let name = match (kind, name) {
            (Resource::Exchange, "") => "amq.default",
            _ => name,
        };
        let access = self.slot.load();
        let allowed = access.permission.as_ref().is_some_and(|p| {
            match perm {
                Perm::Configure => &p.configure,
                Perm::Write => &p.write,
                Perm::Read => &p.read,
            }
            .is_match(name)
        });
        if allowed {
            return Ok(());
        }
        let kind = match kind {
            Resource::Exchange => "exchange",
            Resource::Queue => "queue",
        };
        Err(AmqpError::AccessRefused(format!(
            "access to {kind} '{name}' in vhost '{}' refused for user '{}'",
            self.vhost, self.user
        )))
    }

    /// Checks a routing key (write) or binding key (read) against the topic
    /// permission of a topic exchange; no topic permission means allowed.
    pub(crate) fn check_topic(
        &self,
        perm: Perm,
        exchange: &str,
        key: &str,
    ) -> Result<(), AmqpError> {
        let access = self.slot.load();
        let Some(topic) = access.topic.get(exchange) else {
            return Ok(());
        };
        let pattern = match perm {
            Perm::Write => &topic.write,
            _ => &topic.read,
        };
        if pattern.is_match(key) {
            return Ok(());
        }
        Err(AmqpError::AccessRefused(format!(
            "access to topic '{key}' in exchange '{exchange}' in vhost '{}' refused for user '{}'",
            self.vhost, self.user
        )))
    }
}

/// What the checks need to know of a vhost's objects (the engine's vhost
/// answers): access decides, it does not look anything up itself.
pub(crate) trait VhostObjects {
    fn has_exchange(&self, name: &str) -> bool;
    fn has_queue(&self, name: &str) -> bool;
    /// The kind of an exchange and whether it is internal.
    fn exchange_kind(&self, name: &str) -> Option<(ExchangeKind, bool)>;
}

/// The checks of each AMQP operation, in RabbitMQ 3.10's order. Each runs
/// before the operation touches the vhost; where RabbitMQ refuses something
/// for another reason first (the default exchange, an `amq.` name, an unknown
/// exchange type) the check is skipped and the vhost gives that refusal.
impl Checker {
    /// exchange.declare (not passive): configure on the exchange, even if it
    /// exists; for a new one with an alternate exchange also read on it and
    /// write on the alternate exchange.
    pub(crate) fn exchange_declare(
        &self,
        vhost: &dyn VhostObjects,
        name: &str,
        kind: &str,
        arguments: &FieldTable,
    ) -> Result<(), AmqpError> {
        if name.is_empty() || ExchangeKind::parse(kind).is_none() {
            return Ok(());
        }
        self.check(Perm::Configure, Resource::Exchange, name)?;
        if vhost.has_exchange(name) || name.starts_with("amq.") {
            return Ok(());
        }
        if let Some(ae) = arguments
            .inner()
            .get("alternate-exchange")
            .and_then(value_as_str)
        {
            self.check(Perm::Read, Resource::Exchange, name)?;
            self.check(Perm::Write, Resource::Exchange, ae)?;
        }
        Ok(())
    }

    /// queue.declare (not passive): configure on the queue (a server-named
    /// queue by its generated name); for a new one with a dead-letter exchange
    /// also read on the queue and write on the dead-letter exchange.
    pub(crate) fn queue_declare(
        &self,
        vhost: &dyn VhostObjects,
        name: &str,
        arguments: &FieldTable,
    ) -> Result<(), AmqpError> {
        self.check(Perm::Configure, Resource::Queue, name)?;
        if vhost.has_queue(name) {
            return Ok(());
        }
        if let Some(dlx) = arguments
            .inner()
            .get("x-dead-letter-exchange")
            .and_then(value_as_str)
        {
            self.check(Perm::Read, Resource::Queue, name)?;
            self.check(Perm::Write, Resource::Exchange, dlx)?;
        }
        Ok(())
    }

    /// exchange.delete: configure, even when the exchange is missing.
    pub(crate) fn exchange_delete(&self, name: &str) -> Result<(), AmqpError> {
        if name.is_empty() || name.starts_with("amq.") {
            return Ok(());
        }
        self.check(Perm::Configure, Resource::Exchange, name)
    }

    /// queue.bind/unbind and exchange.bind/unbind: write on the destination,
    /// read on the source, and the topic read permission against the binding
    /// key when the source is a topic exchange.
    pub(crate) fn bind(
        &self,
        vhost: &dyn VhostObjects,
        source: &str,
        destination: &Destination,
        routing_key: &str,
    ) -> Result<(), AmqpError> {
        match destination {
            Destination::Queue(q) => self.check(Perm::Write, Resource::Queue, q)?,
            Destination::Exchange(x) => self.check(Perm::Write, Resource::Exchange, x)?,
        }
        if source.is_empty() || matches!(destination, Destination::Exchange(x) if x.is_empty()) {
            return Ok(());
        }
        self.check(Perm::Read, Resource::Exchange, source)?;
        let is_topic = vhost
            .exchange_kind(source)
            .is_some_and(|(kind, _)| kind == ExchangeKind::Topic);
        if is_topic {
            self.check_topic(Perm::Read, source, routing_key)?;
        }
        Ok(())
    }

    /// basic.publish: write on the exchange (the default one is `amq.default`),
    /// then the topic write permission against the routing key.
    pub(crate) fn publish(
        &self,
        vhost: &dyn VhostObjects,
        exchange: &str,
        routing_key: &str,
    ) -> Result<(), AmqpError> {
        self.check(Perm::Write, Resource::Exchange, exchange)?;
        if exchange.is_empty() {
            return Ok(());
        }
        let is_topic = vhost
            .exchange_kind(exchange)
            .is_some_and(|(kind, internal)| kind == ExchangeKind::Topic && !internal);
        if is_topic {
            self.check_topic(Perm::Write, exchange, routing_key)?;
        }
        Ok(())
    }
}

/// Every (user, vhost) access of the broker.
#[derive(Default)]
pub(crate) struct Permissions {
    slots: RwLock<HashMap<(String, String), Arc<AccessSlot>>>,
}

impl Permissions {
    /// The slot for (user, vhost), created empty if needed.
    pub(crate) fn slot(&self, user: &str, vhost: &str) -> Arc<AccessSlot> {
        let key = (user.to_string(), vhost.to_string());
        if let Some(slot) = self.slots.read().get(&key) {
            return slot.clone();
        }
        self.slots
            .write()
            .entry(key)
            .or_insert_with(|| Arc::new(AccessSlot::new()))
            .clone()
    }

    fn modify(&self, user: &str, vhost: &str, change: impl FnOnce(&mut Access)) {
        let slot = self.slot(user, vhost);
        let mut access = Access::clone(&slot.access.load());
        change(&mut access);
        slot.access.store(Arc::new(access));
    }

    pub(crate) fn set(&self, user: &str, vhost: &str, permission: Permission) {
        self.modify(user, vhost, |a| a.permission = Some(permission));
    }

    pub(crate) fn clear(&self, user: &str, vhost: &str) {
        self.modify(user, vhost, |a| a.permission = None);
    }

    pub(crate) fn set_topic(
        &self,
        user: &str,
        vhost: &str,
        exchange: &str,
        topic: TopicPermission,
    ) {
        self.modify(user, vhost, |a| {
            a.topic.insert(exchange.to_string(), topic);
        });
    }

    pub(crate) fn clear_topic(&self, user: &str, vhost: &str, exchange: &str) {
        self.modify(user, vhost, |a| {
            a.topic.remove(exchange);
        });
    }

    /// Forgets everything about a user (deleted) or a vhost (deleted).
    pub(crate) fn remove_where(&self, mut doomed: impl FnMut(&str, &str) -> bool) {
        let slots = self.slots.read();
        for ((user, vhost), slot) in slots.iter() {
            if doomed(user, vhost) {
                slot.access.store(Arc::new(Access::default()));
            }
        }
    }

    /// Every (user, vhost, access) with something set, sorted by vhost then user.
    pub(crate) fn list(&self) -> Vec<(String, String, Arc<Access>)> {
        let mut out: Vec<_> = self
            .slots
            .read()
            .iter()
            .map(|((u, v), slot)| (u.clone(), v.clone(), slot.access.load_full()))
            .filter(|(_, _, a)| a.permission.is_some() || !a.topic.is_empty())
            .collect();
        out.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        out
    }

    pub(crate) fn get(&self, user: &str, vhost: &str) -> Arc<Access> {
        self.slot(user, vhost).access.load_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker(p: Permission) -> Checker {
        let perms = Permissions::default();
        perms.set("u", "v", p);
        Checker::new("u", "v", perms.slot("u", "v"))
    }

    #[test]
    fn unanchored_search_like_rabbitmq() {
        let c = checker(Permission::new("^app-", "orders", "").unwrap());
        assert!(c.check(Perm::Configure, Resource::Queue, "app-1").is_ok());
        assert!(c
            .check(Perm::Configure, Resource::Queue, "x-app-1")
            .is_err());
        // "orders" matches anywhere in the name.
        assert!(c
            .check(Perm::Write, Resource::Exchange, "eu.orders.x")
            .is_ok());
        // An empty expression matches only the empty name.
        assert!(c.check(Perm::Read, Resource::Queue, "q").is_err());
    }

    #[test]
    fn default_exchange_is_amq_default() {
        let c = checker(Permission::new("", "^amq\\.default$", "").unwrap());
        assert!(c.check(Perm::Write, Resource::Exchange, "").is_ok());
        let c = checker(Permission::new("", "^x$", "").unwrap());
        assert_eq!(
            c.check(Perm::Write, Resource::Exchange, "")
                .unwrap_err()
                .to_string(),
            "ACCESS_REFUSED - access to exchange 'amq.default' in vhost 'v' refused for user 'u'"
        );
    }

    #[test]
    fn refusal_texts() {
        let c = checker(Permission::new("^$", "^$", "^$").unwrap());
        assert_eq!(
            c.check(Perm::Read, Resource::Queue, "q1")
                .unwrap_err()
                .to_string(),
            "ACCESS_REFUSED - access to queue 'q1' in vhost 'v' refused for user 'u'"
        );
    }

    #[test]
    fn no_permission_refuses_everything_and_updates_are_live() {
        let perms = Permissions::default();
        let c = Checker::new("u", "v", perms.slot("u", "v"));
        assert!(!perms.slot("u", "v").can_connect());
        assert!(c.check(Perm::Read, Resource::Queue, "q").is_err());
        perms.set("u", "v", Permission::all());
        assert!(c.check(Perm::Read, Resource::Queue, "q").is_ok());
        perms.clear("u", "v");
        assert!(c.check(Perm::Read, Resource::Queue, "q").is_err());
    }

    #[test]
    fn topic_permissions_expand_variables() {
        let perms = Permissions::default();
        perms.set("alice", "v", Permission::all());
        perms.set_topic(
            "alice",
            "v",
            "amq.topic",
            TopicPermission::new("alice", "v", "^{username}\\.", "^eu\\.").unwrap(),
        );
        let c = Checker::new("alice", "v", perms.slot("alice", "v"));
        assert!(c.check_topic(Perm::Write, "amq.topic", "alice.x").is_ok());
        assert_eq!(
            c.check_topic(Perm::Write, "amq.topic", "bob.x").unwrap_err().to_string(),
            "ACCESS_REFUSED - access to topic 'bob.x' in exchange 'amq.topic' in vhost 'v' refused for user 'alice'"
        );
        assert!(c.check_topic(Perm::Read, "amq.topic", "eu.#").is_ok());
        assert!(c.check_topic(Perm::Read, "other", "anything").is_ok());
        assert_eq!(
            perms.get("alice", "v").topic["amq.topic"].write.as_str(),
            "^{username}\\."
        );
    }

    #[test]
    fn invalid_regex_is_refused() {
        assert!(Permission::new("(", ".*", ".*").is_err());
        assert!(check_regex("[a-").is_err());
        assert!(check_regex("^a.*$").is_ok());
    }
}
