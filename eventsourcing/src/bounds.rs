//! What `#[aggregate]` requires of your types, as traits: the compile
//! errors of the macros name them, and say what to do. Every type that
//! meets the requirement has them already; there is nothing to implement.

/// A type an event field can have: one that serde can serialise and
/// deserialise, because events are stored as JSON. Every type with serde's
/// `Serialize` and `Deserialize` has it.
#[diagnostic::on_unimplemented(
    message = "event field type `{Self}` must implement serde's `Serialize` and `Deserialize`",
    label = "events are stored as JSON, so every field type needs `Serialize` and `Deserialize`",
    note = "derive `serde::Serialize` and `serde::Deserialize` on your own types inside `{Self}`, or use types that implement both"
)]
pub trait EventField {}

// `do_not_recommend` makes a missing `Serialize` or `Deserialize` one error
// with the message above, rather than one error per missing serde trait.
#[diagnostic::do_not_recommend]
impl<T: serde::Serialize + serde::de::DeserializeOwned> EventField for T {}

/// Asserts at compile time that `T` can be an event field: the macros call
/// it once per field, spanned at the field's type, so that a type without
/// serde's traits is one error, there.
pub const fn assert_field<T: EventField>() {}

/// A type an aggregate's state field can have: snapshots store the state
/// as JSON. Every type with serde's `Serialize` and `Deserialize` has it.
#[diagnostic::on_unimplemented(
    message = "aggregate state field type `{Self}` must implement serde's `Serialize` and `Deserialize`",
    label = "snapshots store the aggregate's state as JSON, so every field type needs `Serialize` and `Deserialize`",
    note = "derive `serde::Serialize` and `serde::Deserialize` on your own types inside `{Self}`, or mark the field `#[serde(skip)]` to leave it out of snapshots (it is then `Default` in an aggregate loaded from one)"
)]
pub trait StateField {}

// See `EventField` for why `do_not_recommend`.
#[diagnostic::do_not_recommend]
impl<T: serde::Serialize + serde::de::DeserializeOwned> StateField for T {}

/// Asserts at compile time that `T` can be a field of an aggregate's state,
/// as [`assert_field`] does for events.
pub const fn assert_state_field<T: StateField>() {}

/// An aggregate whose creation method takes `&mut self` starts from
/// `Default::default()`: the requirement of such a creation method. Every
/// type with `Default` has it. (A creation method that returns `Self`
/// builds the aggregate, which then needs no `Default`.)
#[diagnostic::on_unimplemented(
    message = "`{Self}` needs `Default`: its creation method takes `&mut self`, so a new `{Self}` starts from `Default::default()`",
    label = "`{Self}` has no `Default`",
    note = "derive or implement `Default` for `{Self}`, or write the creation method as a constructor: `fn create(...) -> Self {{ Self {{ ... }} }}`, without `&mut self`"
)]
pub trait StartsFromDefault: Default {}

#[diagnostic::do_not_recommend]
impl<T: Default> StartsFromDefault for T {}
