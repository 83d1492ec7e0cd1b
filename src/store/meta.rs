//! Durable definitions in sled: vhosts, durable exchanges, durable queues (with
//! their arguments and log ids) and the bindings between durable objects.
//!
//! Every change is flushed before the method that made it is answered, so a
//! declare-ok means the definition survives a crash. Values are JSON; the AMQP
//! argument tables inside them are stored in their wire encoding (base64),
//! written and read without recursion however deeply a client nested them
//! (tables stored by earlier versions as JSON maps still read back).

use std::io;
use std::path::Path;

use amq_protocol::types::FieldTable;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct ExchangeDef {
    pub(crate) vhost: String,
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) durable: bool,
    pub(crate) auto_delete: bool,
    pub(crate) internal: bool,
    #[serde(with = "wire_table")]
    pub(crate) arguments: FieldTable,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct QueueDef {
    pub(crate) vhost: String,
    pub(crate) name: String,
    /// The queue's id in its vhost's message log; never reused.
    pub(crate) id: u32,
    pub(crate) auto_delete: bool,
    #[serde(with = "wire_table")]
    pub(crate) arguments: FieldTable,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct BindingDef {
    pub(crate) vhost: String,
    pub(crate) source: String,
    /// "queue" or "exchange", as in RabbitMQ's definitions.
    pub(crate) destination_type: String,
    pub(crate) destination: String,
    pub(crate) routing_key: String,
    #[serde(with = "wire_table")]
    pub(crate) arguments: FieldTable,
}

/// An argument table as base64 of its AMQP encoding.
mod wire_table {
    use amq_protocol::types::FieldTable;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::protocol::field;

    pub(crate) fn serialize<S: Serializer>(table: &FieldTable, s: S) -> Result<S::Ok, S::Error> {
        let encoded = field::encoded_table(table);
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(encoded))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Wire(String),
        /// Written by versions that stored tables as JSON maps.
        Json(FieldTable),
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<FieldTable, D::Error> {
        match Stored::deserialize(d)? {
            Stored::Json(table) => Ok(table),
            Stored::Wire(text) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(serde::de::Error::custom)?;
                field::decode_table(&bytes)
                    .map(|(table, _)| table)
                    .map_err(serde::de::Error::custom)
            }
        }
    }
}

/// The document holding users, permissions, policies and parameters.
const ACCESS_DOC: &str = "access";

/// The sled database of definitions.
pub(crate) struct Meta {
    db: sled::Db,
    vhosts: sled::Tree,
    exchanges: sled::Tree,
    queues: sled::Tree,
    bindings: sled::Tree,
}

fn to_io(e: sled::Error) -> io::Error {
    io::Error::other(e)
}

fn key(parts: &[&str]) -> Vec<u8> {
    parts.join("\u{0}").into_bytes()
}

impl Meta {
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(None)
            .open()
            .map_err(to_io)?;
        Ok(Self {
            vhosts: db.open_tree("vhosts").map_err(to_io)?,
            exchanges: db.open_tree("exchanges").map_err(to_io)?,
            queues: db.open_tree("queues").map_err(to_io)?,
            bindings: db.open_tree("bindings").map_err(to_io)?,
            db,
        })
    }

    fn flush(&self) -> io::Result<()> {
        self.db.flush().map(|_| ()).map_err(to_io)
    }

    fn put<T: Serialize>(&self, tree: &sled::Tree, k: Vec<u8>, v: &T) -> io::Result<()> {
        let value = serde_json::to_vec(v).map_err(io::Error::other)?;
        tree.insert(k, value).map_err(to_io)?;
        self.flush()
    }

    fn remove(&self, tree: &sled::Tree, k: Vec<u8>) -> io::Result<()> {
        tree.remove(k).map_err(to_io)?;
        self.flush()
    }

    fn all<T: for<'de> Deserialize<'de>>(&self, tree: &sled::Tree) -> io::Result<Vec<T>> {
        let mut out = Vec::new();
        for item in tree.iter() {
            let (k, v) = item.map_err(to_io)?;
            match serde_json::from_slice(&v) {
                Ok(value) => out.push(value),
                Err(e) => {
                    tracing::error!(key = %String::from_utf8_lossy(&k), error = %e, "unreadable definition skipped")
                }
            }
        }
        Ok(out)
    }

    /// A fresh queue id (persisted, so it is never handed out twice).
    pub(crate) fn next_queue_id(&self) -> io::Result<u32> {
        let id = self.db.generate_id().map_err(to_io)?;
        // generate_id starts at 0; ids are shifted by one so 0 never names a queue.
        u32::try_from(id + 1).map_err(|_| io::Error::other("queue ids exhausted"))
    }

    /// A whole document stored under `name` (the access-control definitions).
    pub(crate) fn doc(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self
            .db
            .get(format!("doc:{name}"))
            .map_err(to_io)?
            .map(|v| v.to_vec()))
    }

    pub(crate) fn put_doc(&self, name: &str, value: &[u8]) -> io::Result<()> {
        self.db
            .insert(format!("doc:{name}"), value)
            .map_err(to_io)?;
        self.flush()
    }

    /// The stored users, permissions, policies and parameters (None in a
    /// fresh store).
    pub(crate) fn access(&self) -> io::Result<Option<super::access::AccessRecords>> {
        match self.doc(ACCESS_DOC)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(io::Error::other),
        }
    }

    /// Replaces the stored users, permissions, policies and parameters.
    pub(crate) fn put_access(&self, records: &super::access::AccessRecords) -> io::Result<()> {
        let bytes = serde_json::to_vec(records).map_err(io::Error::other)?;
        self.put_doc(ACCESS_DOC, &bytes)
    }

    pub(crate) fn vhosts(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for item in self.vhosts.iter() {
            let (k, _) = item.map_err(to_io)?;
            out.push(String::from_utf8_lossy(&k).into_owned());
        }
        Ok(out)
    }

    pub(crate) fn put_vhost(&self, name: &str) -> io::Result<()> {
        self.vhosts.insert(name.as_bytes(), &[]).map_err(to_io)?;
        self.flush()
    }

    pub(crate) fn remove_vhost(&self, name: &str) -> io::Result<()> {
        self.vhosts.remove(name.as_bytes()).map_err(to_io)?;
        self.flush()
    }

    pub(crate) fn exchanges(&self) -> io::Result<Vec<ExchangeDef>> {
        self.all(&self.exchanges)
    }

    pub(crate) fn put_exchange(&self, def: &ExchangeDef) -> io::Result<()> {
        self.put(&self.exchanges, key(&[&def.vhost, &def.name]), def)
    }

    pub(crate) fn remove_exchange(&self, vhost: &str, name: &str) -> io::Result<()> {
        self.remove(&self.exchanges, key(&[vhost, name]))
    }

    pub(crate) fn queues(&self) -> io::Result<Vec<QueueDef>> {
        self.all(&self.queues)
    }

    pub(crate) fn put_queue(&self, def: &QueueDef) -> io::Result<()> {
        self.put(&self.queues, key(&[&def.vhost, &def.name]), def)
    }

    pub(crate) fn remove_queue(&self, vhost: &str, name: &str) -> io::Result<()> {
        self.remove(&self.queues, key(&[vhost, name]))
    }

    pub(crate) fn bindings(&self) -> io::Result<Vec<BindingDef>> {
        self.all(&self.bindings)
    }

    fn binding_key(def: &BindingDef) -> Vec<u8> {
        let args = serde_json::to_string(&def.arguments).unwrap_or_default();
        key(&[
            &def.vhost,
            &def.source,
            &def.destination_type,
            &def.destination,
            &def.routing_key,
            &args,
        ])
    }

    pub(crate) fn put_binding(&self, def: &BindingDef) -> io::Result<()> {
        self.put(&self.bindings, Self::binding_key(def), def)
    }

    pub(crate) fn remove_binding(&self, def: &BindingDef) -> io::Result<()> {
        self.remove(&self.bindings, Self::binding_key(def))
    }

    /// Removes every binding of `vhost` that names `name` (a deleted queue or
    /// exchange) as source or destination.
    pub(crate) fn remove_bindings_of(
        &self,
        vhost: &str,
        destination_type: &str,
        name: &str,
    ) -> io::Result<()> {
        for def in self.bindings()? {
            let touches = def.vhost == vhost
                && ((def.destination_type == destination_type && def.destination == name)
                    || (destination_type == "exchange" && def.source == name));
            if touches {
                self.bindings
                    .remove(Self::binding_key(&def))
                    .map_err(to_io)?;
            }
        }
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        {
            let meta = Meta::open(dir.path()).unwrap();
            meta.put_vhost("/").unwrap();
            let mut args = FieldTable::default();
            args.insert(
                "x-max-length".into(),
                amq_protocol::types::AMQPValue::LongInt(10),
            );
            meta.put_queue(&QueueDef {
                vhost: "/".into(),
                name: "q".into(),
                id: meta.next_queue_id().unwrap(),
                auto_delete: false,
                arguments: args,
            })
            .unwrap();
            meta.put_binding(&BindingDef {
                vhost: "/".into(),
                source: "amq.direct".into(),
                destination_type: "queue".into(),
                destination: "q".into(),
                routing_key: "k".into(),
                arguments: FieldTable::default(),
            })
            .unwrap();
        }
        let meta = Meta::open(dir.path()).unwrap();
        assert_eq!(meta.vhosts().unwrap(), vec!["/".to_string()]);
        let queues = meta.queues().unwrap();
        assert_eq!(queues.len(), 1);
        assert_eq!(queues[0].id, 1);
        assert_eq!(meta.bindings().unwrap().len(), 1);
        meta.remove_bindings_of("/", "queue", "q").unwrap();
        assert!(meta.bindings().unwrap().is_empty());
        assert!(meta.next_queue_id().unwrap() > 1);
    }

    #[test]
    fn argument_tables_read_back_deep_and_in_the_old_json_form() {
        use amq_protocol::types::AMQPValue;
        let mut deep = FieldTable::default();
        for _ in 0..1000 {
            let mut outer = FieldTable::default();
            outer.insert("x".into(), AMQPValue::FieldTable(deep));
            deep = outer;
        }
        let def = QueueDef {
            vhost: "/".into(),
            name: "q".into(),
            id: 1,
            auto_delete: false,
            arguments: deep,
        };
        let json = serde_json::to_vec(&def).unwrap();
        let back: QueueDef = serde_json::from_slice(&json).unwrap();
        assert!(back == def);
        let old = r#"{"vhost":"/","name":"q","id":2,"auto_delete":false,
            "arguments":{"x-max-length":{"LongInt":10}}}"#;
        let old: QueueDef = serde_json::from_str(old).unwrap();
        assert_eq!(
            old.arguments.inner().get("x-max-length"),
            Some(&AMQPValue::LongInt(10))
        );
    }
}
