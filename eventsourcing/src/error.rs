//! The crate's one error type.

use uuid::Uuid;

/// Everything that can go wrong in this crate.
///
/// Each variant says what failed and which aggregate, version or
/// notification it concerns. Nothing in the crate panics on stored data or
/// on configuration: such faults come back as one of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The repository holds no aggregate with this id, or it was discarded.
    #[error("aggregate {id} not found")]
    NotFound {
        /// The id that was asked for.
        id: Uuid,
    },

    /// Another writer recorded this version of the aggregate first; nothing
    /// of the save was written.
    #[error("concurrency conflict: version {version} of aggregate {id} is already recorded")]
    Concurrency {
        /// The aggregate written to.
        id: Uuid,
        /// The version that was already recorded.
        version: u64,
    },

    /// A tracking update found the follower's row elsewhere: another worker
    /// recorded further, or took the row over (raised its epoch). Nothing
    /// of the batch was written.
    #[error(
        "tracking conflict: follower `{follower}` of `{upstream}` (partition {partition}) is no longer at notification {expected} with epoch {epoch}"
    )]
    TrackingConflict {
        /// The follower (the row's `application_name`).
        follower: String,
        /// The upstream application it follows (the row's `upstream_name`).
        upstream: String,
        /// The follower's partition.
        partition: u32,
        /// The notification id the update expected the row to be at.
        expected: u64,
        /// The epoch the update expected the row to have.
        epoch: u64,
    },

    /// A release of parked notifications named one that is not parked
    /// (any more): another worker released it first. Nothing was written.
    #[error(
        "notification {notification_id} of `{upstream}` is not parked by follower `{follower}` (released by another worker?)"
    )]
    NotParked {
        /// The follower.
        follower: String,
        /// The upstream log.
        upstream: String,
        /// The notification that is not parked.
        notification_id: u64,
    },

    /// A follower's handler failed on an upstream event. The follower
    /// stopped there, having recorded nothing of that event (its position
    /// is at the notification before it), unless it parks failing
    /// aggregates.
    #[error(
        "follower `{follower}`: the handler of `{topic}` failed on notification {notification_id} of `{upstream}` (aggregate {originator_id}, version {originator_version}): {source}"
    )]
    Handler {
        /// The follower.
        follower: String,
        /// The upstream log.
        upstream: String,
        /// The event's notification id in that log.
        notification_id: u64,
        /// The event's topic.
        topic: String,
        /// The aggregate whose event it is.
        originator_id: Uuid,
        /// The event's version within its aggregate.
        originator_version: u64,
        /// What the handler returned.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A follower's effects of a batch of upstream events met a concurrency
    /// conflict (another writer changed one of the aggregates it changed)
    /// on every one of its attempts. Nothing of the batch was recorded.
    #[error(
        "follower `{follower}`: notifications up to {notification_id} of `{upstream}` met a concurrency conflict {attempts} times in a row: {source}"
    )]
    Contended {
        /// The follower.
        follower: String,
        /// The upstream log.
        upstream: String,
        /// The last notification of the batch.
        notification_id: u64,
        /// How many times the batch was handled and refused.
        attempts: u32,
        /// The last conflict.
        #[source]
        source: Box<Error>,
    },

    /// A follower's `setup` or `reset` failed; nothing of it was kept.
    #[error("follower `{follower}`: its {step} failed: {source}")]
    Setup {
        /// The follower.
        follower: String,
        /// `"setup"`, or `"rebuild"` (reset, then setup).
        step: &'static str,
        /// What the policy returned.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A running follower has stopped (it failed, or was told to stop), so
    /// it will not reach what was waited for.
    #[error("follower `{follower}` has stopped: {reason}")]
    Stopped {
        /// The follower.
        follower: String,
        /// Why: its error, or that it was told to stop.
        reason: String,
    },

    /// A follower's name is registered to a follower of another kind: two
    /// different policies would share one position and split the upstream
    /// log between them.
    #[error(
        "the follower name `{follower}` is held by `{held_by}`, not `{kind}`; choose another name, or claim it deliberately"
    )]
    NameTaken {
        /// The name.
        follower: String,
        /// The kind of the follower that asked for it.
        kind: String,
        /// The kind of the follower registered under it.
        held_by: String,
    },

    /// A stored event's hash does not match its contents, or the events of
    /// an aggregate do not form an unbroken chain.
    #[error("integrity check failed for aggregate {id} at version {version}: {fault}")]
    Integrity {
        /// The aggregate whose chain is broken.
        id: Uuid,
        /// The version of the offending event.
        version: u64,
        /// What exactly did not check out.
        fault: IntegrityFault,
    },

    /// A record could not be decrypted: wrong key, tampered ciphertext, a
    /// ciphertext moved to another row, or plaintext where a key is required.
    #[error("cannot decrypt aggregate {id} version {version}: {reason}")]
    Decryption {
        /// The aggregate of the record.
        id: Uuid,
        /// The version of the record.
        version: u64,
        /// Why decryption failed.
        reason: &'static str,
    },

    /// The aggregate was forgotten ([`Application::forget`]): its data key
    /// is destroyed, so its records before the `Forgotten` event can no
    /// longer be read, with any key. Loading it, reading it at a version,
    /// or decoding one of its older notifications ends here, never in a
    /// decryption failure.
    ///
    /// [`Application::forget`]: crate::Application::forget
    #[error(
        "aggregate {id} was forgotten: its data key is destroyed and its records cannot be read"
    )]
    Forgotten {
        /// The forgotten aggregate.
        id: Uuid,
    },

    /// An aggregate's data key (FORMAT.md, `aggregate_keys`) cannot be
    /// used: it was wrapped under an application key that is not
    /// configured (its fingerprint names neither `CIPHER_KEY` nor a
    /// previous key), the wrapped key was moved from another aggregate's
    /// row or tampered with, or a data key is needed and no application
    /// key is configured.
    #[error("data key of aggregate {id}: {reason}")]
    DataKey {
        /// The aggregate whose key it is.
        id: Uuid,
        /// What is wrong.
        reason: String,
    },

    /// Only an aggregate encrypted under a data key of its own can be
    /// forgotten: this one's type does not take per-aggregate keys, or it
    /// was recorded before its type did.
    #[error(
        "aggregate {id} has no data key of its own, so it cannot be forgotten (declare its type with `#[aggregate(key = per_aggregate)]`)"
    )]
    NoDataKey {
        /// The aggregate.
        id: Uuid,
    },

    /// A stored record is malformed: truncated, an unknown flag bit, a bad
    /// compressed stream, or a column that holds something impossible.
    #[error("corrupt record (aggregate {id}, version {version}): {reason}")]
    Corrupt {
        /// The aggregate of the record (nil when the row's id itself is bad).
        id: Uuid,
        /// The version of the record.
        version: u64,
        /// What is wrong with it.
        reason: String,
    },

    /// A stored event's data is not valid for the event type its topic names.
    #[error("cannot decode `{topic}` (aggregate {id}, version {version}): {source}")]
    Decode {
        /// The event's topic.
        topic: String,
        /// The aggregate of the event.
        id: Uuid,
        /// The version of the event.
        version: u64,
        /// What the JSON decoder said.
        source: serde_json::Error,
    },

    /// A stored event's topic is not one of the aggregate type's events: the
    /// id belongs to another type of aggregate, or the topic was tampered with.
    #[error(
        "aggregate {id} version {version} has topic `{topic}`, which is not an event of `{aggregate}`"
    )]
    UnknownTopic {
        /// The aggregate type that was asked for.
        aggregate: &'static str,
        /// The topic found in the store.
        topic: String,
        /// The aggregate of the event.
        id: Uuid,
        /// The version of the event.
        version: u64,
    },

    /// A stored record has an old schema version and no upcaster leads from
    /// it to the current one.
    #[error(
        "no upcaster from schema version {from} for `{topic}` (aggregate {id}, version {version})"
    )]
    Upcast {
        /// The stored topic.
        topic: String,
        /// The aggregate of the record.
        id: Uuid,
        /// The version of the record.
        version: u64,
        /// The schema version with no upcaster.
        from: u32,
    },

    /// An event could not be serialised when it was triggered (for example a
    /// map with non-string keys); the event was neither recorded nor applied.
    #[error("cannot encode event `{topic}` of aggregate {id}: {source}")]
    Encode {
        /// The event's topic.
        topic: &'static str,
        /// The aggregate the event was triggered on.
        id: Uuid,
        /// What the JSON encoder said.
        source: serde_json::Error,
    },

    /// An event was triggered on an aggregate that was discarded, or that was
    /// never created; it was neither recorded nor applied, and saving the
    /// aggregate fails with this error.
    #[error("event `{topic}` was refused: aggregate {id} is {state}")]
    Refused {
        /// The event's topic.
        topic: &'static str,
        /// The aggregate the event was triggered on.
        id: Uuid,
        /// `"discarded"` or `"not created"`.
        state: &'static str,
    },

    /// A record could not be made ready for storage: compressing or
    /// encrypting it failed (in practice, only a record beyond the cipher's
    /// size limit of 64 GiB).
    #[error("cannot map aggregate {id} version {version} to a stored record: {reason}")]
    Mapping {
        /// The aggregate of the record.
        id: Uuid,
        /// The version of the record.
        version: u64,
        /// What failed.
        reason: String,
    },

    /// The operating system's random number generator failed, so no nonce
    /// or key could be drawn; nothing was encrypted or written.
    #[error("the operating system's random number generator failed: {reason}")]
    Random {
        /// What the generator reported.
        reason: String,
    },

    /// An event was triggered while another event's body was being
    /// applied (an event method calling another event method, or `trigger`
    /// inside `apply`). It was neither recorded nor applied, and saving the
    /// aggregate fails with this error, so nothing of the command is
    /// stored.
    #[error(
        "event `{topic}` was triggered while `{during}` was being applied (aggregate {id}): \
         an event body applies a fact and must not trigger events; trigger both from a command method"
    )]
    Reentrant {
        /// The event triggered inside the other's body.
        topic: &'static str,
        /// The event whose body was running.
        during: &'static str,
        /// The aggregate.
        id: Uuid,
    },

    /// With the replay check on (`#[aggregate(check_replay)]`, in debug
    /// builds), applying an event to a fresh copy of the aggregate gave
    /// another state than applying it live: its body depends on something
    /// other than the aggregate and the event (a clock, randomness, I/O), so
    /// replay would not rebuild what was saved. Compute such values in the
    /// command and pass them as event fields. Saving the aggregate fails with
    /// this error.
    #[error(
        "event `{topic}` of aggregate {id} (version {version}) applied to a copy gave another state than applied live: its body is not deterministic; pass computed values (times, random numbers) as event fields"
    )]
    NonDeterministic {
        /// The event's topic.
        topic: &'static str,
        /// The aggregate.
        id: Uuid,
        /// The event's version.
        version: u64,
    },

    /// An aggregate type can be neither built from its creation event nor
    /// started from `Default`: its `Aggregate` impl is written by hand for a
    /// struct without `Default`. Give the struct `Default`.
    #[error(
        "aggregate {id} of type `{aggregate}` cannot be rebuilt: it has no `Default` to apply its creation event to"
    )]
    Unconstructible {
        /// The aggregate type.
        aggregate: &'static str,
        /// The aggregate.
        id: Uuid,
    },

    /// A configuration value is malformed; names the variable or option.
    #[error("invalid {variable}: {reason}")]
    Config {
        /// The environment variable or builder option.
        variable: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// An argument is outside what the function accepts (for example a
    /// malformed notification log section id).
    #[error("invalid {name}: {reason}")]
    InvalidArgument {
        /// The argument.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// A call of the async facade (feature `tokio`) could not run its
    /// blocking work: it was awaited outside a tokio runtime, or the
    /// runtime was shutting down before the work started. Nothing of the
    /// call was done.
    #[error("async call: {reason}")]
    Runtime {
        /// Why the work did not run.
        reason: String,
    },

    /// A system's definition was refused, or its runner cannot run it.
    #[error("system: {0}")]
    System(#[from] crate::system::SystemError),

    /// A notification log read over HTTP could not be read: the server
    /// refused the request (with its reason), or every attempt failed on
    /// the way (feature `http-client`).
    #[error("notification log at {url}: {reason}")]
    Remote {
        /// The request's URL.
        url: String,
        /// What went wrong.
        reason: String,
    },

    /// The notification log server could not bind, accept or serve
    /// (feature `http`).
    #[error("notification log server: {0}")]
    Server(#[source] std::io::Error),

    /// The database reported an error (connection, I/O, constraint other than
    /// the concurrency one).
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What an integrity check found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IntegrityFault {
    /// The stored `event_hash` is not the SHA-256 of the record's pre-image.
    HashMismatch,
    /// The record's `previous_hash` is not the `event_hash` of the event before it.
    BrokenLink,
    /// The versions of the aggregate's events are not 1, 2, 3, ... without gaps.
    VersionGap,
    /// The record belongs to another aggregate than the one being loaded.
    WrongOriginator,
}

impl std::fmt::Display for IntegrityFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::HashMismatch => "event hash does not match the record",
            Self::BrokenLink => "previous hash does not link to the event before",
            Self::VersionGap => "versions are not consecutive",
            Self::WrongOriginator => "record belongs to another aggregate",
        })
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
