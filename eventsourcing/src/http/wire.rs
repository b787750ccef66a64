//! The JSON the server sends and the client reads: notifications with
//! their stored bytes in base64, sections, pages and error reasons.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "http-client")]
use crate::error::{Error, Result};
use crate::notification::Section;
use crate::recorder::Notification;

/// One row of `stored_events` (FORMAT.md), as stored: `state` is the
/// record's bytes in standard base64, ciphertext if the application
/// encrypts.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireNotification {
    pub(crate) id: u64,
    pub(crate) originator_id: Uuid,
    pub(crate) originator_version: u64,
    pub(crate) topic: String,
    pub(crate) state: String,
}

impl WireNotification {
    #[cfg(feature = "http")]
    pub(crate) fn from_notification(notification: &Notification) -> Self {
        WireNotification {
            id: notification.id,
            originator_id: notification.originator_id,
            originator_version: notification.originator_version,
            topic: notification.topic.clone(),
            state: STANDARD.encode(&notification.state),
        }
    }

    /// The row back, with the exact stored bytes.
    #[cfg(feature = "http-client")]
    pub(crate) fn into_notification(self) -> Result<Notification> {
        let state = STANDARD
            .decode(self.state.as_bytes())
            .map_err(|e| Error::Corrupt {
                id: self.originator_id,
                version: self.originator_version,
                reason: format!("notification {}: `state` is not base64: {e}", self.id),
            })?;
        Ok(Notification {
            id: self.id,
            originator_id: self.originator_id,
            originator_version: self.originator_version,
            topic: self.topic,
            state,
        })
    }
}

/// `GET /notifications/{first},{last}`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireSection {
    pub(crate) id: String,
    pub(crate) items: Vec<WireNotification>,
    pub(crate) previous_id: Option<String>,
    pub(crate) next_id: Option<String>,
}

impl WireSection {
    #[cfg(feature = "http")]
    pub(crate) fn from_section(section: &Section) -> Self {
        WireSection {
            id: section.id.clone(),
            items: section
                .items
                .iter()
                .map(WireNotification::from_notification)
                .collect(),
            previous_id: section.previous_id.clone(),
            next_id: section.next_id.clone(),
        }
    }

    #[cfg(feature = "http-client")]
    pub(crate) fn into_section(self) -> Result<Section> {
        Ok(Section {
            id: self.id,
            items: self
                .items
                .into_iter()
                .map(WireNotification::into_notification)
                .collect::<Result<_>>()?,
            previous_id: self.previous_id,
            next_id: self.next_id,
        })
    }
}

/// `GET /notifications?after=&limit=&topics=`: the greatest notification
/// id when the page was read, and the rows after `after`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WirePage {
    pub(crate) head: u64,
    pub(crate) items: Vec<WireNotification>,
}

/// The body of every refused request.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireError {
    pub(crate) error: String,
}
