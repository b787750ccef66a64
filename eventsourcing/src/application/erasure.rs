//! Per-aggregate keys at the application: which key seals a save, how an
//! aggregate is forgotten, and the rotation of the application key.

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::sync::Arc;

use uuid::Uuid;

use super::{Application, Pending};
use crate::cipher::Cipher;
use crate::domain::{Aggregate, AggregateId, RecordedEvent};
use crate::error::{Error, Result};
use crate::format::{FORGOTTEN_SUFFIX, now_micros};
use crate::keys::{Encryption, Rotation};
use crate::mapper::Seal;
use crate::recorder::{Batch, DataKeyRow, EventQuery};

/// How many data keys a rotation re-wraps in one transaction.
const ROTATION_BATCH: usize = 100;

impl Application {
    /// The data key that seals the pending events of `aggregate`, whose
    /// first pending event is `first`: `None` for the application key (or
    /// none). A new aggregate of a type with per-aggregate keys gets a new
    /// key, whose row goes into `rows` (written with the events) and which
    /// goes into `new` (cached once they are committed).
    pub(super) fn sealing(
        &self,
        aggregate: &dyn Pending,
        first: &RecordedEvent,
        new: &mut Vec<(Uuid, Arc<Cipher>)>,
        rows: &mut Vec<DataKeyRow>,
    ) -> Result<Option<Arc<Cipher>>> {
        let mapper = self.store.mapper();
        aggregate.learn(mapper.public_topics());
        if aggregate.encryption() != Encryption::PerAggregate {
            return Ok(None);
        }
        let Some(keys) = mapper.data_keys() else {
            return Ok(None);
        };
        let id = first.originator_id;
        if first.originator_version == 1 {
            let (key, row) = keys.create(id)?;
            new.push((id, Arc::clone(&key)));
            rows.push(row);
            return Ok(Some(key));
        }
        // An aggregate recorded before its type took per-aggregate keys
        // has none, and stays under the application key.
        keys.find(id)
    }

    /// Forgets aggregate `id` for good (crypto-shredding, FORMAT.md
    /// "Per-aggregate keys"): in one transaction, deletes its data key and
    /// its snapshots and records its last event, `<Aggregate>.Forgotten`,
    /// in plaintext with data `{}`, chained to its head. Returns that
    /// event's notification id.
    ///
    /// Its earlier records stay where they are (the log is append-only,
    /// and their rows keep their place in the notification log), but no
    /// key can read them any more: loading the aggregate, reading it at a
    /// version, [`EventStore::verify`](crate::EventStore::verify) and
    /// decoding its older notifications are [`Error::Forgotten`], and
    /// followers pass over those notifications. The `Forgotten` event
    /// itself reaches followers, so that read models can delete their
    /// copies. See the README's section on erasure for what is and is not
    /// erased.
    ///
    /// [`Error::NoDataKey`] when the aggregate has no data key of its own
    /// (its type is not declared `#[aggregate(key = per_aggregate)]`, it
    /// was recorded before that, or the application has no key);
    /// [`Error::Forgotten`] when it was forgotten already;
    /// [`Error::NotFound`] when it has no events; [`Error::Concurrency`]
    /// when another writer recorded a new event meanwhile (forget again).
    ///
    /// ```
    /// # use eventsourcing::prelude::*;
    /// # use eventsourcing::generate_cipher_key;
    /// #[aggregate(key = per_aggregate)]
    /// #[derive(Default)]
    /// struct Patient { name: String }
    ///
    /// #[aggregate]
    /// impl Patient {
    ///     #[created(Admitted)]
    ///     fn admit(&mut self, name: String) { self.name = name }
    /// }
    ///
    /// let app = Application::builder().cipher_key(generate_cipher_key()?).build()?;
    /// let mut patient = Patient::admit("Ada".into());
    /// app.save(&mut patient)?;
    /// app.forget::<Patient>(patient.id())?;
    /// assert!(matches!(
    ///     app.repository().get::<Patient>(patient.id()),
    ///     Err(Error::Forgotten { .. })
    /// ));
    /// # Ok::<(), eventsourcing::Error>(())
    /// ```
    pub fn forget<A: Aggregate>(&self, id: A::Id) -> Result<u64> {
        let id = id.to_uuid();
        let store = &self.store;
        let last = store
            .recorder()
            .events(&EventQuery::new(id).descending(true).limit(1))?
            .pop()
            .ok_or(Error::NotFound { id })?;
        if last.topic.ends_with(FORGOTTEN_SUFFIX) {
            return Err(Error::Forgotten { id });
        }
        let keys = store.mapper().data_keys().ok_or(Error::NoDataKey { id })?;
        if keys.find(id)?.is_none() {
            return Err(Error::NoDataKey { id });
        }
        let last = store.mapper().decode_checked(last)?;
        let forgotten = RecordedEvent::new(
            id,
            last.originator_version + 1,
            Cow::Borrowed(A::FORGOTTEN_TOPIC),
            now_micros(),
            last.event_hash,
            b"{}".to_vec(),
        );
        let row = store.mapper().encode_with(&forgotten, Seal::Bare)?;
        let rows = [row];
        let ids = [id];
        let written = store.write(&Batch::new(&rows).with_forgotten(&ids));
        // Whatever the outcome, this process drops the key: a committed
        // forget must not leave it readable here.
        keys.evict(id);
        written?.first().copied().ok_or_else(|| {
            Error::Database("the Forgotten event was given no notification id".into())
        })
    }

    /// Re-wraps every aggregate's data key under the current application
    /// key (`CIPHER_KEY`), unwrapping each with the key its stored
    /// fingerprint names (`CIPHER_KEY_PREVIOUS` during a rotation). No
    /// event record is rewritten.
    ///
    /// Resumable and idempotent: rows are re-wrapped a hundred at a time,
    /// each batch in one transaction, and a row already under the current
    /// key (its `key_fingerprint` says so) is left alone, so a run that
    /// was interrupted is finished by running it again, and a second run
    /// changes nothing. Once it returns, every data key opens with the new
    /// key alone; records encrypted directly under the old application key
    /// (flags `0x02`) still need the old key (see the README on retiring
    /// it).
    ///
    /// [`Error::DataKey`] for a row wrapped under a key that is not
    /// configured, or that does not open (tampered, or moved from another
    /// aggregate's row); the rows before it stay done.
    pub fn rotate_keys(&self) -> Result<Rotation> {
        match self.store.mapper().data_keys() {
            Some(keys) => keys.rotate(ROTATION_BATCH),
            None => Err(Error::Config {
                variable: crate::config::CIPHER_KEY,
                reason: "rotating the data keys needs the new application key".to_owned(),
            }),
        }
    }

    /// Whether aggregate `id` was forgotten: its last event is
    /// `<Aggregate>.Forgotten`.
    pub fn is_forgotten(&self, id: impl Into<Uuid>) -> Result<bool> {
        let id = id.into();
        let mut forgotten = false;
        self.store.recorder().select_events(
            &EventQuery::new(id).descending(true).limit(1),
            &mut |row| {
                forgotten = row.topic.ends_with(FORGOTTEN_SUFFIX);
                Ok(ControlFlow::Break(()))
            },
        )?;
        Ok(forgotten)
    }
}
