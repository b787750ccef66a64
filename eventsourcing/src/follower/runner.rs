//! Following: reading each upstream log from the follower's position,
//! handing its events to the target in batches, and moving the position
//! with their effects. The rules that make it exactly-once live here:
//!
//! - a batch's effects and the position after it commit together, by a
//!   compare-and-set on position and epoch (see [`Batch`](crate::recorder::Batch));
//! - the position moves only over notifications that were handled, parked,
//!   or not wanted (their topics have no handler), and never past the
//!   upstream's settled bound, so nothing is ever skipped;
//! - a failing handler stops the follower before its event, or parks the
//!   event's aggregate, and either way the failed event has no effect;
//! - a concurrency conflict is retried with the whole batch handled
//!   again, a bounded number of times.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::causal::{Partition, waits_for};
use super::inbox::Inbox;
use super::policy::{Envelope, HandleError};
use super::reader::{Page, ReadAhead, Source};
use super::target::{Commit, Failure, Target};
use super::watch::Shared;
use crate::application::Application;
use crate::error::{Error, Result};
use crate::notification::NotificationLog;
use crate::recorder::{ParkChange, Parked, Position, TrackingKey, TrackingUpdate};
use crate::trace::Timed;

/// One upstream log and where the follower stands in it.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub(crate) name: Arc<str>,
    pub(crate) app: Application,
    pub(crate) log: NotificationLog,
    pub(crate) key: TrackingKey,
    /// The position recorded, and the epoch this worker holds the row with.
    pub(crate) at: Position,
    /// How far the follower has read: past `at` by notifications it had
    /// nothing to do with, when such moves are not committed on their own
    /// ([`FollowerBuilder::lazy_moves`](super::FollowerBuilder::lazy_moves)).
    pub(crate) read: u64,
    /// What the upstream just committed, when the follower runs on the
    /// committing thread (the single-thread runner).
    pub(crate) inbox: Option<Arc<Inbox>>,
}

/// How many upstream events a follower handles per transaction unless
/// told otherwise ([`FollowerBuilder::batch_size`](super::FollowerBuilder::batch_size)).
pub const DEFAULT_BATCH_SIZE: usize = 1000;

/// How a follower behaves; set on its builder.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) batch_size: usize,
    pub(crate) attempts: u32,
    pub(crate) park: bool,
    pub(crate) poll_min: Duration,
    pub(crate) poll_max: Duration,
    /// The share of the upstream events this worker handles.
    pub(crate) partition: Partition,
    /// Whether what the follower records carries causal dependencies.
    pub(crate) record_dependencies: bool,
    /// Stop at this notification of every upstream (a repartition brings
    /// the old partitions level first).
    pub(crate) until: Option<u64>,
    /// Whether a page with nothing to handle moves the position in memory
    /// only (committed with the next batch, or once `batch_size` behind).
    pub(crate) lazy_moves: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_size: DEFAULT_BATCH_SIZE,
            attempts: 5,
            park: false,
            poll_min: Duration::from_millis(1),
            poll_max: Duration::from_millis(100),
            partition: Partition::whole(),
            record_dependencies: false,
            until: None,
            lazy_moves: false,
        }
    }
}

/// What a call of [`Follower::run_until_caught_up`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Upstream events handed to a handler (or parked).
    pub events: u64,
    /// Transactions committed.
    pub batches: u64,
}

/// How a rebuild of a projection went: it was reset when it started,
/// and had replayed the upstream logs up to their heads when it ended.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Rebuild {
    /// The version the projection was rebuilt for.
    pub version: u32,
    /// The version it had before (0 when it had none).
    pub from_version: u32,
    /// Upstream events replayed.
    pub events: u64,
    /// From the reset to being caught up.
    pub elapsed: Duration,
}

impl Rebuild {
    /// Events replayed per second.
    #[must_use]
    pub fn events_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            #[allow(clippy::cast_precision_loss, reason = "a rate")]
            let events = self.events as f64;
            events / seconds
        } else {
            0.0
        }
    }
}

/// A rebuild under way.
#[derive(Debug)]
pub(crate) struct Rebuilding {
    pub(crate) version: u32,
    pub(crate) from_version: u32,
    pub(crate) started: Instant,
    pub(crate) events: u64,
}

/// A process application or projection at work: it holds its tracking
/// rows (it raised their epochs when it started, so an older worker of
/// the same follower can record nothing more) and moves them with the
/// effects of each batch of upstream events.
///
/// Built with [`Follower::process`], [`Follower::in_memory`] or one of the
/// SQL projection constructors; run with
/// [`run_until_caught_up`](Follower::run_until_caught_up) or
/// [`spawn`](Follower::spawn).
pub struct Follower<P, T> {
    pub(crate) name: String,
    pub(crate) policy: P,
    pub(crate) target: T,
    pub(crate) upstreams: Vec<Upstream>,
    pub(crate) topics: Option<Vec<&'static str>>,
    pub(crate) options: Options,
    /// Aggregates with parked notifications: (upstream index, originator).
    pub(crate) parked: HashSet<(usize, Uuid)>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) rebuilding: Option<Rebuilding>,
    pub(crate) rebuilt: Option<Rebuild>,
    /// For each upstream, the least position of the other partitions of
    /// this follower, as last read (dependencies below it are met).
    pub(crate) siblings: Vec<u64>,
    /// Whether the last catch-up stopped at an event whose dependencies
    /// other partitions have not handled yet.
    pub(crate) blocked: bool,
}

impl<P, T> std::fmt::Debug for Follower<P, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("name", &self.name)
            .field("upstreams", &self.upstreams)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// What catching up with one upstream did.
#[derive(Default)]
struct Step {
    events: u64,
    batches: u64,
}

impl<P, T: Target<P>> Follower<P, T> {
    /// The follower's name: its rows in the tracking table.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// Where the follower stands in the log of `upstream`: every
    /// notification up to this one has its effects recorded, or is of no
    /// interest to the follower (with [`lazy_moves`], the recorded position
    /// may be behind it by such notifications only); `None` for an
    /// upstream it does not follow.
    ///
    /// [`lazy_moves`]: super::FollowerBuilder::lazy_moves
    #[must_use]
    pub fn position(&self, upstream: &str) -> Option<u64> {
        self.upstreams
            .iter()
            .find(|u| &*u.name == upstream)
            .map(|u| u.read)
    }

    /// Reads what upstream `name` commits from `inbox` when it can
    /// (`follower/inbox.rs`).
    pub(crate) fn attach_inbox(&mut self, name: &str, inbox: &Arc<Inbox>) {
        for upstream in self.upstreams.iter_mut().filter(|u| &*u.name == name) {
            upstream.inbox = Some(Arc::clone(inbox));
        }
    }

    /// The last rebuild, once it has caught up.
    #[must_use]
    pub fn rebuild(&self) -> Option<Rebuild> {
        self.rebuilt
    }

    /// Handles every upstream event recorded so far, in batches, and
    /// returns when the follower has reached the head of each upstream log
    /// (as it was when it was last read).
    ///
    /// Stops at the first error: a failing handler ([`Error::Handler`],
    /// unless failures are parked), an upstream record that fails its
    /// hash or decryption, a batch that met a concurrency conflict on
    /// every attempt ([`Error::Contended`]), a lost row
    /// ([`Error::TrackingConflict`]: another worker took this follower
    /// over), or a database error. Whatever was committed before stays;
    /// nothing of the failed batch does.
    pub fn run_until_caught_up(&mut self) -> Result<Progress> {
        let mut progress = Progress::default();
        self.blocked = false;
        for index in 0..self.upstreams.len() {
            let step = self.catch_up(index)?;
            progress.events += step.events;
            progress.batches += step.batches;
            if self.shared.stop.load(Ordering::SeqCst) {
                return Ok(progress);
            }
        }
        self.finish_rebuild();
        Ok(progress)
    }

    /// Marks a rebuild done once the follower has caught up.
    fn finish_rebuild(&mut self) {
        if let Some(rebuilding) = self.rebuilding.take() {
            self.rebuilt = Some(Rebuild {
                version: rebuilding.version,
                from_version: rebuilding.from_version,
                events: rebuilding.events,
                elapsed: rebuilding.started.elapsed(),
            });
        }
    }

    /// Reads and records upstream `index` up to its head, page by page.
    /// When there is more than one page, the next one is read on another
    /// thread while the current one is recorded.
    fn catch_up(&mut self, index: usize) -> Result<Step> {
        let source = Source {
            name: Arc::clone(&self.upstreams[index].name),
            log: self.upstreams[index].log.clone(),
            topics: self.topics.clone(),
            // Without transactions, one event at a time: a failure then
            // leaves at most what its own handler did.
            limit: if T::TRANSACTIONAL {
                self.options.batch_size.max(1)
            } else {
                1
            },
            until: self.options.until,
            inbox: self.upstreams[index].inbox.clone(),
        };
        let mut step = Step::default();
        let first = source.read(self.upstreams[index].read)?;
        if !self.record_page(index, first, &mut step)? {
            return Ok(step);
        }
        // Inside a transaction this thread holds open (the single-thread
        // runner's drain), only this thread sees what it holds: every page
        // is read here.
        #[cfg(feature = "sqlite")]
        if crate::recorder::in_scope() {
            loop {
                let page = source.read(self.upstreams[index].read)?;
                if !self.record_page(index, page, &mut step)? {
                    return Ok(step);
                }
            }
        }

        std::thread::scope(|scope| {
            let reader = ReadAhead::start(scope, source);
            reader.ask(self.upstreams[index].read);
            let result = loop {
                let page = match reader.next() {
                    Ok(page) => page,
                    Err(error) => break Err(error),
                };
                // Read the next page while this one is recorded.
                if !page.at_head && page.unreadable.is_none() {
                    reader.ask(page.to);
                }
                match self.record_page(index, page, &mut step) {
                    Ok(true) => {}
                    Ok(false) => break Ok(()),
                    Err(error) => break Err(error),
                }
            };
            reader.finish();
            result
        })?;
        Ok(step)
    }

    /// Records one page; says whether there is more to read (and the
    /// follower was not told to stop).
    fn record_page(&mut self, index: usize, page: Page, step: &mut Step) -> Result<bool> {
        let from = self.upstreams[index].read;
        if page.to > from || !page.envelopes.is_empty() {
            let (batches, events) = self.record(index, page.envelopes, page.to)?;
            step.batches += batches;
            step.events += events;
            if let Some(rebuilding) = &mut self.rebuilding {
                rebuilding.events += events;
            }
        }
        if self.blocked {
            return Ok(false);
        }
        if let Some(error) = page.unreadable {
            return Err(error);
        }
        Ok(!page.at_head && !self.shared.stop.load(Ordering::SeqCst))
    }

    /// Records the effects of `envelopes` (in notification order) and
    /// moves upstream `index` to `to`, in one transaction; returns how
    /// many transactions committed (0 or 1) and how many events were
    /// handled or parked. Events of other partitions are passed over; an
    /// event whose dependencies another partition has not handled yet
    /// ends the batch before it (and sets `blocked`).
    fn record(
        &mut self,
        index: usize,
        envelopes: Vec<Envelope>,
        mut to: u64,
    ) -> Result<(u64, u64)> {
        let from = self.upstreams[index].at.notification_id;
        let (mut handle, mut park) = self.sort(index, envelopes, &mut to)?;
        let mut newly_parked = Vec::new();
        if handle.is_empty() && park.is_empty() {
            let behind = to.saturating_sub(from);
            if behind == 0 || self.lazy(behind) {
                // Nothing to commit, or a move that can wait for the next
                // batch: only the position in memory moves.
                let upstream = &mut self.upstreams[index];
                upstream.read = upstream.read.max(to);
                self.shared.advance(index, upstream.read);
                return Ok((0, 0));
            }
        }
        let span = self.batch_span(index);
        let _entered = span.enter();
        let mut stopped = None;
        let mut attempts = 0_u32;
        loop {
            let upstream = &self.upstreams[index];
            let tracking = TrackingUpdate::new(upstream.key.clone(), upstream.at.epoch, from, to);
            let parked: Vec<ParkChange> = park.iter().cloned().map(ParkChange::Park).collect();
            let commit = Commit {
                tracking: Some(&tracking),
                parked: &parked,
            };
            match self.target.process(&mut self.policy, &handle, commit) {
                Ok(_) => {
                    self.upstreams[index].at.notification_id = to;
                    self.upstreams[index].read = to;
                    self.parked
                        .extend(newly_parked.iter().map(|id| (index, *id)));
                    self.shared.advance(index, to);
                    if self.options.partition.count() > 1 {
                        super::causal::wake_siblings(&self.name);
                    }
                    let events = u64::try_from(handle.len() + park.len()).unwrap_or(u64::MAX);
                    traced(
                        &span,
                        [from, to, events, park.len() as u64, u64::from(attempts) + 1],
                    );
                    return match stopped {
                        Some(error) => Err(error),
                        None => Ok((1, events)),
                    };
                }
                Err(Failure::Store(Error::Concurrency { id, version })) => {
                    crate::trace::trace_event!(
                        debug,
                        aggregate_id = %id,
                        version,
                        "the batch met a concurrency conflict and is handled again"
                    );
                    attempts += 1;
                    if attempts >= self.options.attempts.max(1) {
                        return Err(Error::Contended {
                            follower: self.name.clone(),
                            upstream: self.upstreams[index].name.to_string(),
                            notification_id: to,
                            attempts,
                            source: Box::new(Error::Concurrency { id, version }),
                        });
                    }
                }
                Err(failure @ (Failure::Store(_) | Failure::Setup(_))) => {
                    return Err(self.failure_error(failure, None));
                }
                Err(Failure::Handler { index: at, error }) => {
                    let failed = handle[at].clone();
                    if self.options.park {
                        // Set its aggregate aside, with every later event of
                        // it in this batch, and handle the rest again.
                        let originator = failed.originator_id();
                        let reason = describe(&error);
                        let mut rest = handle.split_off(at);
                        for envelope in rest.drain(..) {
                            if envelope.originator_id() == originator {
                                let why = if envelope.notification_id() == failed.notification_id()
                                {
                                    reason.as_str()
                                } else {
                                    "an earlier event of its aggregate is parked"
                                };
                                park.push(self.parked_record(&envelope, why));
                            } else {
                                handle.push(envelope);
                            }
                        }
                        newly_parked.push(originator);
                    } else {
                        // Record what came before it, then stop there.
                        to = failed.notification_id() - 1;
                        handle.truncate(at);
                        park.retain(|p| p.notification_id <= to);
                        stopped =
                            Some(self.failure_error(
                                Failure::Handler { index: at, error },
                                Some(&failed),
                            ));
                    }
                }
            }
        }
    }

    /// The span of a batch of upstream `index`.
    fn batch_span(&self, index: usize) -> Timed {
        crate::trace::timed_span!(
            "follower_batch",
            follower = %self.name,
            upstream = %self.upstreams[index].name;
            from, to, events, parked, attempts
        )
    }

    /// Splits a page into the events to handle and those to park (their
    /// aggregate is parked), passing over other partitions' events, and
    /// ending it before an event that must wait for another partition
    /// (`to` is moved back, and `blocked` set).
    fn sort(
        &mut self,
        index: usize,
        envelopes: Vec<Envelope>,
        to: &mut u64,
    ) -> Result<(Vec<Envelope>, Vec<Parked>)> {
        let partition = self.options.partition;
        let mut handle = Vec::with_capacity(envelopes.len());
        let mut park = Vec::new();
        for envelope in envelopes {
            if !partition.owns(envelope.originator_id()) {
                continue;
            }
            if self.must_wait(index, &envelope)? {
                *to = envelope.notification_id() - 1;
                self.blocked = true;
                break;
            }
            if self.parked.contains(&(index, envelope.originator_id())) {
                park.push(
                    self.parked_record(&envelope, "an earlier event of its aggregate is parked"),
                );
            } else {
                handle.push(envelope);
            }
        }
        Ok((handle, park))
    }

    /// Whether a move of `behind` notifications with nothing in them need
    /// not be committed now.
    fn lazy(&self, behind: u64) -> bool {
        self.options.lazy_moves
            && self.options.partition.count() <= 1
            && usize::try_from(behind).is_ok_and(|b| b < self.options.batch_size)
    }

    /// Whether `envelope` depends on what another partition of this
    /// follower has not handled yet.
    fn must_wait(&mut self, index: usize, envelope: &Envelope) -> Result<bool> {
        if self.options.partition.count() <= 1 {
            return Ok(false);
        }
        match waits_for(envelope)? {
            Some(wanted) => Ok(!self.dependency_met(index, wanted)?),
            None => Ok(false),
        }
    }

    /// Whether every other partition of this follower has passed
    /// notification `wanted` of upstream `index` (read again from their
    /// tracking rows when what was last read is not enough).
    fn dependency_met(&mut self, index: usize, wanted: u64) -> Result<bool> {
        if self.siblings[index] >= wanted {
            return Ok(true);
        }
        let partition = self.options.partition;
        let key = &self.upstreams[index].key;
        let mut least = u64::MAX;
        for other in (0..partition.count()).filter(|&p| p != partition.index()) {
            let position = self
                .target
                .recorder()
                .select_tracking(&key.clone().partition(other))?
                .map_or(0, |at| at.notification_id);
            least = least.min(position);
        }
        self.siblings[index] = least;
        Ok(least >= wanted)
    }

    /// A parked row for `envelope`.
    fn parked_record(&self, envelope: &Envelope, reason: &str) -> Parked {
        Parked {
            follower: self.name.clone(),
            upstream: envelope.upstream().to_owned(),
            notification_id: envelope.notification_id(),
            originator_id: envelope.originator_id(),
            topic: envelope.topic().to_owned(),
            reason: reason.to_owned(),
        }
    }

    /// The error the follower stops with when `failure` ends a batch
    /// whose failing event, if a handler failed, is `envelope`.
    pub(crate) fn failure_error(&self, failure: Failure, envelope: Option<&Envelope>) -> Error {
        failure.into_error(&self.name, "setup", envelope)
    }
}

/// Records a committed batch's figures on its span: `[from, to, events,
/// parked, attempts]`.
#[inline]
fn traced(span: &Timed, figures: [u64; 5]) {
    if span.enabled() {
        let [from, to, events, parked, attempts] = figures;
        span.record_u64("from", from);
        span.record_u64("to", to);
        span.record_u64("events", events);
        span.record_u64("parked", parked);
        span.record_u64("attempts", attempts);
    }
}

/// A handler's error as a parked notification's reason.
fn describe(error: &HandleError) -> String {
    match error {
        HandleError::Handler(source) => source.to_string(),
        HandleError::Event(error) => error.to_string(),
    }
}
