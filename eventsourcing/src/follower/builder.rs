//! Configuring and starting a follower: its name, its upstreams, its
//! options; then registering the name, taking its rows over, and
//! rebuilding or setting up its target.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::causal::{Causal, Partition};
use super::policy::Policy;
use super::processing::Processing;
use super::runner::{Follower, Options, Rebuilding, Upstream};
use super::target::{Failure, InMemory, ProcessTarget, Target};
use super::watch::Shared;
use crate::application::Application;
use crate::error::{Error, Result};
use crate::recorder::{Position, Registration, TrackingKey};

/// Configures a [`Follower`]; [`start`](FollowerBuilder::start) it when
/// done. Made by [`Follower::process`], [`Follower::in_memory`] and the
/// SQL projection constructors.
#[must_use = "a follower does nothing until it is started"]
pub struct FollowerBuilder<P, T> {
    name: String,
    kind: String,
    claim: bool,
    policy: P,
    target: T,
    upstreams: Vec<(Arc<str>, Application)>,
    options: Options,
}

impl<P, T> std::fmt::Debug for FollowerBuilder<P, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowerBuilder")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<P: Policy<Processing>> Follower<P, ProcessTarget> {
    /// A process application: `policy`'s handlers react to upstream events
    /// by changing `app`'s aggregates (through [`Processing`]); what they
    /// record and the follower's new positions are saved in one
    /// transaction of `app`'s database.
    pub fn process(policy: P, app: &Application) -> FollowerBuilder<P, ProcessTarget> {
        FollowerBuilder::new(policy, ProcessTarget::new(app.clone()))
    }
}

impl<P> FollowerBuilder<P, ProcessTarget> {
    /// Keeps up to `capacity` aggregates between batches, as last saved,
    /// so that a handler that gets one again needs no load (0, the
    /// default, keeps none). Another writer of the same aggregates costs
    /// a retry of the batch, never a wrong result: a stale aggregate's
    /// save is a concurrency conflict, and the batch is handled again on
    /// fresh loads.
    pub fn cache_aggregates(mut self, capacity: usize) -> Self {
        self.target.cache.capacity = capacity;
        self
    }
}

#[cfg(feature = "http-client")]
impl<P> FollowerBuilder<P, ProcessTarget> {
    /// Follows the notification log a [`NotificationServer`] serves, under
    /// the name `upstream`, through `remote`: the rows come over HTTP as
    /// stored and are decrypted and checked with this process
    /// application's own mapper (its key and compression), exactly as a
    /// local log's; the position stays in this application's database.
    ///
    /// [`NotificationServer`]: crate::http::NotificationServer
    pub fn follow_remote(mut self, upstream: &str, remote: crate::http::RemoteRecorder) -> Self {
        let mapper = self.target.app().event_store().mapper().clone();
        let app = remote.application(upstream, mapper);
        self.upstreams.push((Arc::from(upstream), app));
        self
    }
}

impl<S: Send + 'static, P: Policy<S>> Follower<P, InMemory<S>> {
    /// A projection into `state`, kept in this process: `policy`'s
    /// handlers take `&mut S`. Read it with [`Follower::state`].
    pub fn in_memory(policy: P, state: S) -> FollowerBuilder<P, InMemory<S>> {
        FollowerBuilder::new(policy, InMemory::new(state))
    }
}

impl<P, S> Follower<P, InMemory<S>> {
    /// The projected state, shared with the follower (lock it to read).
    #[must_use]
    pub fn state(&self) -> Arc<Mutex<S>> {
        self.target.state()
    }
}

impl<P, T> FollowerBuilder<P, T> {
    pub(crate) fn new(policy: P, target: T) -> Self
    where
        T: Target<P>,
    {
        FollowerBuilder {
            name: T::policy_name().to_owned(),
            kind: std::any::type_name::<P>().to_owned(),
            claim: false,
            policy,
            target,
            upstreams: Vec::new(),
            options: Options::default(),
        }
    }

    /// Follows `app`'s notification log, under the application's name.
    pub fn follow(self, app: &Application) -> Self {
        let name = app.shared_name();
        self.follow_as(&name, app)
    }

    /// Follows `app`'s notification log under the name `upstream` (the
    /// follower's tracking row for it names it).
    pub fn follow_as(mut self, upstream: &str, app: &Application) -> Self {
        self.upstreams.push((Arc::from(upstream), app.clone()));
        self
    }

    /// The follower's name in place of the policy's (`Policy::NAME`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// What the follower registers its name as, in place of the policy's
    /// type name: another follower kind is refused that name.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }

    /// Takes the name over even when it is registered to another kind (say,
    /// after renaming the policy's type). A projection is then rebuilt.
    pub fn claim_name(mut self) -> Self {
        self.claim = true;
        self
    }

    /// At most this many upstream events per transaction
    /// ([`DEFAULT_BATCH_SIZE`](super::DEFAULT_BATCH_SIZE) unless set):
    /// larger batches catch up faster, and cost more to handle again after
    /// a concurrency conflict. In-memory projections take one at a time.
    pub fn batch_size(mut self, events: usize) -> Self {
        self.options.batch_size = events.max(1);
        self
    }

    /// How many times a batch is handled before a concurrency conflict
    /// stops the follower with [`Error::Contended`] (5 unless set).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.options.attempts = attempts.max(1);
        self
    }

    /// Parks failing events instead of stopping: a handler error sets its
    /// event's aggregate aside (that event, and its later ones as they
    /// come), and the follower goes on with the others. See
    /// [`Follower::parked`].
    pub fn park_failures(mut self, park: bool) -> Self {
        self.options.park = park;
        self
    }

    /// Makes this worker one partition of the follower: it handles the
    /// upstream events of the aggregates [`Partition::owns`], in order per
    /// aggregate, and moves a tracking row of its own (the row's
    /// `partition` column). Run one worker per partition, side by side.
    /// When the follower is partitioned, an event carrying causal
    /// dependencies on its upstream waits until every partition has
    /// passed them (see [`record_dependencies`](Self::record_dependencies)).
    ///
    /// A projection whose version changed is not rebuilt partitioned:
    /// [`start`](Self::start) refuses it; rebuild it with one partition.
    pub fn partition(mut self, partition: Partition) -> Self {
        self.options.partition = partition;
        self
    }

    /// Records causal dependencies with what this process application's
    /// handlers record: the place, in its own log, of the latest event of
    /// each aggregate they read. Needed when a partitioned follower
    /// follows this application (a [`System`](crate::system::System) turns
    /// it on where so); costs a read per aggregate loaded.
    pub fn record_dependencies(mut self, record: bool) -> Self {
        self.options.record_dependencies = record;
        self
    }

    /// Moves the position over notifications the follower has nothing to
    /// do with (events of other topics) in memory only: the move is
    /// committed with the next batch that has events, or once it is
    /// [`batch_size`](Self::batch_size) notifications ahead of the recorded
    /// position. Saves a transaction for each such page (in a busy system,
    /// most of them); costs reading those notifications again after a
    /// restart, never handling anything twice. Partitioned followers
    /// commit every move (their siblings read each other's positions).
    pub fn lazy_moves(mut self, lazy: bool) -> Self {
        self.options.lazy_moves = lazy;
        self
    }

    /// Stops every upstream at notification `until` (for bringing the
    /// partitions of a follower level before their number changes).
    pub(crate) fn until(mut self, until: u64) -> Self {
        self.options.until = Some(until);
        self
    }

    /// How often a running follower looks at its upstream logs when
    /// nothing wakes it: from `min` after an event, doubling while there is
    /// nothing, up to `max` (1 ms and 100 ms unless set). Commits in this
    /// process and, on PostgreSQL, in any process wake it at once.
    pub fn poll_interval(mut self, min: Duration, max: Duration) -> Self {
        self.options.poll_min = min.max(Duration::from_micros(100));
        self.options.poll_max = max.max(self.options.poll_min);
        self
    }
}

impl<P, T: Target<P>> FollowerBuilder<P, T> {
    /// Starts the follower: registers its name (refused with
    /// [`Error::NameTaken`] when a follower of another kind holds it),
    /// takes its tracking rows over (raising their epochs, so that an
    /// older worker of the same follower records nothing more), rebuilds
    /// a projection whose version changed or sets it up, and reads its
    /// parked notifications. It does not read any upstream event yet.
    ///
    /// [`Error::InvalidArgument`] when it follows no upstream, or two
    /// under one name.
    pub fn start(self) -> Result<Follower<P, T>> {
        let FollowerBuilder {
            name,
            kind,
            claim,
            mut policy,
            mut target,
            upstreams,
            options,
        } = self;
        check_upstreams(&name, &upstreams)?;
        let wanted = Registration::new(name.clone(), kind.clone(), T::policy_version());
        let held = target.recorder().register_follower(&wanted)?;
        if held.kind != kind && !claim {
            return Err(Error::NameTaken {
                follower: name,
                kind,
                held_by: held.kind,
            });
        }
        target.set_causal(Causal {
            partition: Some(options.partition),
            record: options.record_dependencies,
        });
        let mut rows = Vec::with_capacity(upstreams.len());
        for (upstream, app) in upstreams {
            let key = TrackingKey::new(name.clone(), upstream.to_string())
                .partition(options.partition.index());
            let at = target.recorder().raise_epoch(&key)?;
            rows.push(Upstream {
                name: upstream,
                log: app.notification_log(),
                app,
                key,
                read: at.notification_id,
                at,
                inbox: None,
            });
        }
        let setup_error = |failure: Failure, step| failure.into_error(&name, step, None);
        let mut rebuilding = None;
        if held == wanted {
            target
                .setup(&mut policy)
                .map_err(|failure| setup_error(failure, "setup"))?;
        } else if options.partition.count() > 1 && T::policy_version() != held.version {
            return Err(Error::InvalidArgument {
                name: "partition",
                reason: format!(
                    "follower `{name}` changed version ({} to {}) and would be rebuilt; \
                     rebuild it with one partition, then partition it",
                    held.version,
                    T::policy_version()
                ),
            });
        } else {
            let rewind: Vec<(TrackingKey, u64)> =
                rows.iter().map(|u| (u.key.clone(), u.at.epoch)).collect();
            let started = Instant::now();
            let rebuilt = target
                .rebuild(&mut policy, &rewind, &wanted)
                .map_err(|failure| setup_error(failure, "rebuild"))?;
            if rebuilt {
                for row in &mut rows {
                    row.at = Position {
                        notification_id: 0,
                        epoch: row.at.epoch,
                    };
                    row.read = 0;
                }
                rebuilding = Some(Rebuilding {
                    version: wanted.version,
                    from_version: held.version,
                    started,
                    events: 0,
                });
            }
        }
        let parked = parked_of(&target, &name, &rows, options.partition)?;
        let rows_len = rows.len();
        let shared = Arc::new(Shared::new(
            name.clone(),
            rows.iter().map(|u| u.name.to_string()).collect(),
            rows.iter().map(|u| u.read).collect(),
        ));
        Ok(Follower {
            name,
            policy,
            target,
            upstreams: rows,
            topics: T::policy_topics(),
            options,
            parked,
            shared,
            rebuilding,
            rebuilt: None,
            siblings: vec![0; rows_len],
            blocked: false,
        })
    }
}

/// The aggregates with parked notifications, of this partition: (upstream
/// index, originator).
fn parked_of<P, T: Target<P>>(
    target: &T,
    name: &str,
    rows: &[Upstream],
    partition: Partition,
) -> Result<HashSet<(usize, uuid::Uuid)>> {
    Ok(target
        .recorder()
        .select_parked(name)?
        .into_iter()
        .filter(|p| partition.owns(p.originator_id))
        .filter_map(|p| {
            let index = rows.iter().position(|u| *u.name == p.upstream)?;
            Some((index, p.originator_id))
        })
        .collect())
}

/// A follower needs an upstream, and one name for each.
fn check_upstreams(follower: &str, upstreams: &[(Arc<str>, Application)]) -> Result<()> {
    if upstreams.is_empty() {
        return Err(Error::InvalidArgument {
            name: "upstreams",
            reason: format!("follower `{follower}` follows no application; call `follow`"),
        });
    }
    let mut names = HashSet::new();
    for (name, _) in upstreams {
        if !names.insert(name) {
            return Err(Error::InvalidArgument {
                name: "upstreams",
                reason: format!(
                    "follower `{follower}` follows two applications named `{name}`; name them \
                     (`ApplicationBuilder::name`) or follow one with `follow_as`"
                ),
            });
        }
    }
    Ok(())
}
