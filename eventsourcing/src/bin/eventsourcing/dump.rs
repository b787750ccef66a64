//! The export format: JSON lines, a header, one line per stored event in
//! notification order with its record in standard base64, and a trailer
//! that counts the events (so that a cut-off file is refused).
//!
//! ```text
//! {"kind":"header","format":"eventsourcing-export","version":1}
//! {"kind":"event","notification_id":1,"originator_id":"…","originator_version":1,"topic":"World.Created","state":"AzQ…"}
//! {"kind":"end","events":1}
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use eventsourcing::recorder::Notification;
use eventsourcing::{StoredEvent, Uuid};
use serde::{Deserialize, Serialize};

/// The header's `format`.
pub(crate) const FORMAT: &str = "eventsourcing-export";
/// The header's `version`: the one this build writes and reads.
pub(crate) const VERSION: u32 = 1;

/// One line of an export.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Line {
    /// The first line.
    Header {
        /// Always [`FORMAT`].
        format: String,
        /// [`VERSION`].
        version: u32,
    },
    /// A stored event, its record byte for byte.
    Event {
        /// Its notification id in the store it came from.
        notification_id: u64,
        /// The row's columns.
        originator_id: Uuid,
        originator_version: u64,
        topic: String,
        /// The stored record (flags byte and payload), standard base64.
        state: String,
    },
    /// The last line: how many events came before it.
    End {
        /// The number of event lines.
        events: u64,
    },
}

impl Line {
    /// The header this build writes.
    pub(crate) fn header() -> Line {
        Line::Header {
            format: FORMAT.to_owned(),
            version: VERSION,
        }
    }

    /// The line of a stored row.
    pub(crate) fn event(notification: &Notification) -> Line {
        Line::Event {
            notification_id: notification.id,
            originator_id: notification.originator_id,
            originator_version: notification.originator_version,
            topic: notification.topic.clone(),
            state: STANDARD.encode(&notification.state),
        }
    }
}

/// The row of an event line; its notification id apart.
pub(crate) fn stored(
    originator_id: Uuid,
    originator_version: u64,
    topic: String,
    state: &str,
) -> Result<StoredEvent, base64::DecodeError> {
    Ok(StoredEvent {
        originator_id,
        originator_version,
        topic,
        state: STANDARD.decode(state)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines are the file format: a change here breaks old exports.
    #[test]
    fn lines_are_written_and_read_as_documented() {
        let notification = Notification {
            id: 7,
            originator_id: Uuid::from_u128(1),
            originator_version: 2,
            topic: "World.Created".to_owned(),
            state: vec![0, 1, 2, 255],
        };
        let written = [
            Line::header(),
            Line::event(&notification),
            Line::End { events: 1 },
        ]
        .map(|line| eventsourcing::json::to_string(&line).unwrap());
        assert_eq!(
            written,
            [
                r#"{"kind":"header","format":"eventsourcing-export","version":1}"#,
                r#"{"kind":"event","notification_id":7,"originator_id":"00000000-0000-0000-0000-000000000001","originator_version":2,"topic":"World.Created","state":"AAEC/w=="}"#,
                r#"{"kind":"end","events":1}"#,
            ]
        );
        let Line::Event {
            originator_id,
            originator_version,
            topic,
            state,
            ..
        } = eventsourcing::json::from_str(&written[1]).unwrap()
        else {
            panic!("not an event line");
        };
        let row = stored(originator_id, originator_version, topic, &state).unwrap();
        assert_eq!(row, notification.into_event());
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        for line in [
            r#"{"kind":"end","events":1,"extra":true}"#,
            r#"{"kind":"snapshot"}"#,
            r#"{"events":1}"#,
        ] {
            assert!(
                eventsourcing::json::from_str::<Line>(line).is_err(),
                "{line}"
            );
        }
    }
}
