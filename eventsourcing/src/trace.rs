//! Spans for saves, loads, snapshots, follower batches and HTTP requests
//! (feature `tracing`), and nothing at all without the feature.
//!
//! Every span is at the `DEBUG` level, with the module's path as its target
//! (`eventsourcing::application`, `eventsourcing::store`,
//! `eventsourcing::follower::runner`), and ends with an `elapsed_us` field:
//! the microseconds from its start to its end. Its other fields are declared
//! empty and recorded when known, only when the span is enabled: with no
//! subscriber, or one that does not want the span, a span costs the
//! `tracing` crate's check of the level and callsite, and no clock is read
//! and no field is computed or formatted.
//!
//! Without the feature, [`Timed`] is an empty type whose methods do
//! nothing, and `enabled` is a constant `false`, so the recording code
//! compiles away.

#[cfg(feature = "tracing")]
use std::time::Instant;

use uuid::Uuid;

/// A span that records how long it lasted, in `elapsed_us`, when it ends.
#[derive(Debug)]
pub(crate) struct Timed {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
    #[cfg(feature = "tracing")]
    start: Option<Instant>,
}

/// Opens a [`Timed`] span at `DEBUG`: its name, fields known now
/// (`key = %value`, formatted only if a subscriber records them), then,
/// after a semicolon, fields recorded later.
#[cfg(feature = "tracing")]
macro_rules! timed_span {
    ($name:literal $(, $key:ident = %$value:expr)* ; $($later:ident),* $(,)?) => {
        $crate::trace::Timed::new(::tracing::debug_span!(
            $name,
            $($key = ::tracing::field::display(&$value),)*
            $($later = ::tracing::field::Empty,)*
            elapsed_us = ::tracing::field::Empty
        ))
    };
}

/// Without the feature: a span that is never enabled (the values are
/// named in a closure that is never called, so they count as used and
/// nothing is computed).
#[cfg(not(feature = "tracing"))]
macro_rules! timed_span {
    ($name:literal $(, $key:ident = %$value:expr)* ; $($later:ident),* $(,)?) => {{
        let _ = || ($(&$value,)*);
        $crate::trace::Timed::disabled()
    }};
}

/// An event at `level` (`warn`, `debug`...) when the feature is on; nothing
/// otherwise.
#[cfg(feature = "tracing")]
macro_rules! trace_event {
    ($level:ident, $($tokens:tt)*) => {
        ::tracing::$level!($($tokens)*)
    };
}

#[cfg(not(feature = "tracing"))]
macro_rules! trace_event {
    ($($tokens:tt)*) => {};
}

pub(crate) use {timed_span, trace_event};

/// What entering a span returns: the span is current until it is dropped.
#[cfg(feature = "tracing")]
pub(crate) type Entered<'a> = tracing::span::Entered<'a>;
#[cfg(not(feature = "tracing"))]
pub(crate) type Entered<'a> = std::marker::PhantomData<&'a ()>;

#[cfg_attr(
    not(feature = "tracing"),
    allow(
        clippy::unused_self,
        reason = "the methods do nothing without the feature"
    )
)]
impl Timed {
    /// A span whose clock starts now, if the span is enabled.
    #[cfg(feature = "tracing")]
    #[inline]
    pub(crate) fn new(span: tracing::Span) -> Timed {
        let start = if span.is_disabled() {
            None
        } else {
            Some(Instant::now())
        };
        Timed { span, start }
    }

    /// A span that records nothing.
    #[cfg(not(feature = "tracing"))]
    pub(crate) const fn disabled() -> Timed {
        Timed {}
    }

    /// The span itself: for a future to run in
    /// (`tracing::Instrument`).
    #[cfg(feature = "tracing")]
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Whether a subscriber records this span: the fields are worth
    /// computing.
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        #[cfg(feature = "tracing")]
        {
            self.start.is_some()
        }
        #[cfg(not(feature = "tracing"))]
        {
            false
        }
    }

    /// Makes the span current (its children nest in it) until the guard
    /// is dropped.
    #[inline]
    pub(crate) fn enter(&self) -> Entered<'_> {
        #[cfg(feature = "tracing")]
        {
            self.span.enter()
        }
        #[cfg(not(feature = "tracing"))]
        {
            std::marker::PhantomData
        }
    }

    /// Records a number.
    #[inline]
    pub(crate) fn record_u64(&self, field: &'static str, value: u64) {
        #[cfg(feature = "tracing")]
        self.span.record(field, value);
        #[cfg(not(feature = "tracing"))]
        let _ = (field, value);
    }

    /// Records a yes or no.
    #[inline]
    pub(crate) fn record_bool(&self, field: &'static str, value: bool) {
        #[cfg(feature = "tracing")]
        self.span.record(field, value);
        #[cfg(not(feature = "tracing"))]
        let _ = (field, value);
    }

    /// Records an id, formatted only by a subscriber that records it.
    #[inline]
    pub(crate) fn record_id(&self, field: &'static str, value: Uuid) {
        #[cfg(feature = "tracing")]
        self.span.record(field, tracing::field::display(value));
        #[cfg(not(feature = "tracing"))]
        let _ = (field, value);
    }
}

#[cfg(feature = "tracing")]
impl Drop for Timed {
    #[inline]
    fn drop(&mut self) {
        if let Some(start) = self.start {
            let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.span.record("elapsed_us", micros);
        }
    }
}

/// Records in a save's span how many aggregates it saved and the
/// notification ids of its events.
#[inline]
pub(crate) fn saved(span: &Timed, aggregates: usize, ids: &[u64]) {
    if span.enabled() {
        span.record_u64("aggregates", u64::try_from(aggregates).unwrap_or(u64::MAX));
        span.record_u64("events", u64::try_from(ids.len()).unwrap_or(u64::MAX));
        if let (Some(&first), Some(&last)) = (ids.first(), ids.last()) {
            span.record_u64("first_notification_id", first);
            span.record_u64("last_notification_id", last);
        }
    }
}

/// Tells the subscriber, at `DEBUG`, that a save's transaction failed
/// (a concurrency conflict, a database error): an event in the save's span.
#[inline]
pub(crate) fn save_failed(error: &crate::Error) {
    trace_event!(debug, error = %error, "the save's transaction failed");
    #[cfg(not(feature = "tracing"))]
    let _ = error;
}
