//! The attribute keys the macros understand, in one table.

/// `#[event(Name)]` on a method of an `#[aggregate]` impl block.
pub(crate) const EVENT: &str = "event";
/// `#[created(Name)]` on the creation method of an `#[aggregate]` impl block.
pub(crate) const CREATED: &str = "created";
/// `#[es(...)]` on an enum deriving `Event`, and on its variants.
pub(crate) const ES: &str = "es";

/// `crate = "path"`: where the runtime crate is, when it is renamed.
pub(crate) const CRATE: &str = "crate";
/// `topic = "..."`: the stored name of an event.
pub(crate) const TOPIC: &str = "topic";
/// `prefix = "..."`: the first part of every topic of a derived event enum.
pub(crate) const PREFIX: &str = "prefix";
/// `version = N`: the schema version of an event, or of the aggregate's state.
pub(crate) const VERSION: &str = "version";
/// `id = T` on the struct (the id type), or `id = expr` on `#[created]`
/// (the new aggregate's id, from the creation method's parameters).
pub(crate) const ID: &str = "id";
/// `check_replay` on the struct: check, in debug builds, that each event
/// replays to the state it left live.
pub(crate) const CHECK_REPLAY: &str = "check_replay";
/// `key = per_aggregate` on the struct: the aggregate's records are
/// encrypted under a data key of its own (or `key = application`, the
/// default).
pub(crate) const KEY: &str = "key";
/// The value of `key` that gives each aggregate a data key of its own.
pub(crate) const PER_AGGREGATE: &str = "per_aggregate";
/// The value of `key` for the application key (the default).
pub(crate) const APPLICATION: &str = "application";
/// `public` on the struct (every record of the type) or on an event (its
/// records): stored in plaintext even when the application has a key.
pub(crate) const PUBLIC: &str = "public";
/// `from = N`: the schema version an upcaster reads.
pub(crate) const FROM: &str = "from";
/// `upcasters = [...]`: a derived event variant's upcasters, oldest first.
pub(crate) const UPCASTERS: &str = "upcasters";
/// `#[upcast(state, from = N)]`: an upcaster of the aggregate's state.
pub(crate) const STATE: &str = "state";

/// The event name that `discard()` records; users cannot declare it.
pub(crate) const DISCARDED: &str = "Discarded";
/// The event name that forgetting an aggregate records; reserved too.
pub(crate) const FORGOTTEN: &str = "Forgotten";
/// Generated items start with this; user names may not.
pub(crate) const RESERVED_PREFIX: &str = "__es_";
/// The field `#[aggregate]` adds to the struct.
pub(crate) const META_FIELD: &str = "__es_meta";

/// The inherent methods `#[aggregate]` adds to the struct.
pub(crate) const GENERATED_METHODS: &[&str] = &["id", "version", "head", "discard"];
/// Appended to the creation method's name for the twin that takes an id.
pub(crate) const WITH_ID_SUFFIX: &str = "_with_id";
/// `apply! { ... }`: the event's body, last in a command with checks.
pub(crate) const APPLY: &str = "apply";
/// `#[upcast(Name, from = N)]` on an upcaster in an `#[aggregate]` impl block.
pub(crate) const UPCAST: &str = "upcast";

/// `#[policy]` on the inherent impl block of a follower's handlers.
pub(crate) const POLICY: &str = "policy";
/// `#[on(Enum::Variant)]` on a handler of a `#[policy]` impl block.
pub(crate) const ON: &str = "on";
/// `#[setup]` on the method of a `#[policy]` impl block that creates what
/// the handlers need.
pub(crate) const SETUP: &str = "setup";
/// `#[reset]` on the method of a `#[policy]` impl block that removes what
/// the handlers made.
pub(crate) const RESET: &str = "reset";
/// `name = "..."`: a policy's name, its row in the tracking table.
pub(crate) const NAME: &str = "name";
/// What a handler parameter's type is named to receive the envelope.
pub(crate) const ENVELOPE: &str = "Envelope";
/// The lifetime the context type's elided lifetimes become in the
/// generated `impl Policy<C>`.
pub(crate) const CONTEXT_LIFETIME: &str = "'__es";
