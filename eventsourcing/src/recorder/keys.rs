//! Rows of FORMAT.md's `aggregate_keys` table: one aggregate's data key,
//! wrapped under the application key.

use uuid::Uuid;

use crate::error::{Error, Result};

/// One row of `aggregate_keys`: the data key of one aggregate, wrapped
/// under an application key (FORMAT.md, "Per-aggregate keys").
#[derive(Clone, PartialEq, Eq)]
pub struct DataKeyRow {
    /// The aggregate.
    pub originator_id: Uuid,
    /// `nonce ‖ AES-256-GCM(data key) ‖ tag` under the application key
    /// named by `key_fingerprint`.
    pub wrapped_key: Vec<u8>,
    /// The first 16 hex digits of the SHA-256 of the application key that
    /// wrapped it.
    pub key_fingerprint: String,
    /// When the key was created, in microseconds since the Unix epoch.
    pub created_at: i64,
}

impl std::fmt::Debug for DataKeyRow {
    // The wrapped key is left out: harmless without the application key,
    // but nothing a log needs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeyRow")
            .field("originator_id", &self.originator_id)
            .field("key_fingerprint", &self.key_fingerprint)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// The compare-and-set of one data key's re-wrapping: the row of
/// `originator_id` takes `wrapped_key` and `key_fingerprint` provided that
/// it still has the fingerprint `expected`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrap {
    /// The new row (its `created_at` is left as stored).
    pub row: DataKeyRow,
    /// The fingerprint the stored row must still have.
    pub expected: String,
}

/// The error of a recorder that keeps no data keys.
pub(crate) fn no_data_keys() -> Error {
    Error::Database("this recorder does not keep data keys (aggregate_keys)".into())
}

/// The recorder-independent check of a batch's data key rows: one per
/// aggregate.
pub(crate) fn check_key_rows(rows: &[DataKeyRow]) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    for row in rows {
        if !seen.insert(row.originator_id) {
            return Err(Error::InvalidArgument {
                name: "data keys",
                reason: format!("two data keys for aggregate {}", row.originator_id),
            });
        }
    }
    Ok(())
}
