//! One stored record described for people and scripts: what the row says
//! without a key (topic, version, size, flags), and what the record holds
//! when it can be read (hashes, timestamp, data).

use eventsourcing::json::{Map, Value, json};
use eventsourcing::{Mapper, RecordedEvent, StoredEvent};

/// The flag bits of a stored record (FORMAT.md), with their names.
const FLAGS: [(u8, &str); 3] = [
    (0x01, "compressed"),
    (0x02, "encrypted"),
    (0x04, "aggregate_key"),
];

/// A stored row, read as far as the key allows.
pub(crate) struct Described {
    pub(crate) row: StoredEvent,
    /// The record, when it is plaintext or the key opens it.
    pub(crate) event: Option<RecordedEvent>,
    /// Why the record could not be read, when it could not.
    pub(crate) opaque: Option<String>,
}

impl Described {
    /// Reads `row` with `mapper`; a record that cannot be read is kept
    /// opaque, with the reason.
    pub(crate) fn read(mapper: &Mapper, row: StoredEvent) -> Described {
        match mapper.decode(row.clone()) {
            Ok(event) => Described {
                row,
                event: Some(event),
                opaque: None,
            },
            Err(error) => Described {
                row,
                event: None,
                opaque: Some(error.to_string()),
            },
        }
    }

    /// The flags byte, 0 for an empty record.
    fn flags(&self) -> u8 {
        self.row.state.first().copied().unwrap_or(0)
    }

    /// The names of the flags set.
    fn flag_names(&self) -> Vec<&'static str> {
        let flags = self.flags();
        FLAGS
            .iter()
            .filter(|(bit, _)| flags & bit != 0)
            .map(|(_, name)| *name)
            .collect()
    }

    /// The record as a JSON object; `extra` fields (a notification id, say)
    /// come first.
    pub(crate) fn to_json(&self, extra: Map<String, Value>) -> Value {
        let mut object = extra;
        object.insert("originator_id".into(), json!(self.row.originator_id));
        object.insert(
            "originator_version".into(),
            json!(self.row.originator_version),
        );
        object.insert("topic".into(), json!(self.row.topic));
        object.insert("size".into(), json!(self.row.state.len()));
        object.insert("flags".into(), json!(self.flag_names()));
        match &self.event {
            Some(event) => {
                object.insert("timestamp".into(), json!(event.timestamp));
                object.insert("previous_hash".into(), json!(event.previous_hash.to_hex()));
                object.insert("event_hash".into(), json!(event.event_hash.to_hex()));
                object.insert("hash_ok".into(), json!(event.check_hash().is_ok()));
                object.insert("data".into(), data(event));
            }
            None => {
                object.insert("opaque".into(), json!(self.opaque));
            }
        }
        Value::Object(object)
    }

    /// The record as one line of text, after `prefix`.
    pub(crate) fn to_text(&self, prefix: &str) -> String {
        let flags = match self.flag_names().join(",") {
            names if names.is_empty() => "plain".to_owned(),
            names => names,
        };
        let head = format!(
            "{prefix}{} v{} {} ({} bytes, {flags})",
            self.row.originator_id,
            self.row.originator_version,
            self.row.topic,
            self.row.state.len()
        );
        match &self.event {
            Some(event) => {
                let checked = if event.check_hash().is_ok() {
                    ""
                } else {
                    " HASH MISMATCH"
                };
                format!(
                    "{head} hash={}{checked} at={} data={}",
                    short(&event.event_hash.to_hex()),
                    event.timestamp,
                    data(event)
                )
            }
            None => format!("{head} opaque"),
        }
    }
}

/// The event's data: its JSON, or its text when it is not JSON.
fn data(event: &RecordedEvent) -> Value {
    eventsourcing::json::from_slice(&event.data)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&event.data).into_owned()))
}

/// The first 16 hex digits of a hash, enough to tell hashes apart by eye.
fn short(hex: &str) -> &str {
    hex.get(..16).unwrap_or(hex)
}
