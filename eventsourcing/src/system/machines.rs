//! The machine runner: nodes, on one machine or many, sharing a PostgreSQL
//! database, share a system's work units (one per following application
//! and partition) by leases with an expiry (`lease.rs`).
//!
//! Each node, every third of a lease: renews the leases it holds (a unit
//! whose lease it lost, or could not renew in time, is stopped here), says
//! it is alive, and takes free or expired units up to its fair share (the
//! units divided by the live nodes, rounded up), giving up any beyond it.
//! Taking a unit starts its follower, which raises the epochs of the
//! unit's tracking rows: from then on, the node that held it before can
//! commit nothing for it, however long it was paused or cut off, and
//! whatever its clock says. A node that dies leaves its leases to expire;
//! the others then take its units over. Followers are woken by
//! PostgreSQL's LISTEN/NOTIFY, and poll as a fallback.
//!
//! A follower is started (its epochs raised) before it runs; the node then
//! renews the unit's lease once more, and runs the follower only if it
//! still holds it: a node paused between taking a lease and starting the
//! follower may find the lease lapsed and the unit another node's, and
//! must not run a follower whose epochs it raised too late.
//!
//! A unit a node stops running against its will (its lease lost, not
//! renewed in time, or its follower ended) counts as a loss
//! ([`SystemRunning::lost`](super::SystemRunning::lost)); with
//! [`MachineOptions::stop_taking_after_loss`], the node takes no unit
//! again after its first loss, decided in the same round that noticed it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::definition::{System, SystemError};
use super::lease::Leases;
use super::worker::Spawned;
use crate::application::Application;
use crate::error::Result;
use crate::recorder::PostgresRecorder;

/// How a node of the machine runner behaves.
#[derive(Clone, Debug)]
pub struct MachineOptions {
    node: String,
    lease: Duration,
    poll: Duration,
    stop_taking_after_loss: bool,
}

impl MachineOptions {
    /// A node named `node`, unique among the system's nodes (say, the
    /// host name and process id); leases of 5 s, polling every 100 ms at
    /// most when no notification comes.
    #[must_use]
    pub fn new(node: impl Into<String>) -> Self {
        MachineOptions {
            node: node.into(),
            lease: Duration::from_secs(5),
            poll: Duration::from_millis(100),
            stop_taking_after_loss: false,
        }
    }

    /// How long a lease lasts without renewal: how long a dead node's
    /// units wait before another node takes them (renewed every third of
    /// it). At least 300 ms.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(300));
        self
    }

    /// The longest a follower waits before looking at its upstreams again
    /// when no notification woke it.
    #[must_use]
    pub fn poll_interval(mut self, max: Duration) -> Self {
        self.poll = max.max(Duration::from_millis(1));
        self
    }

    /// Whether the node, once it has lost a unit (see
    /// [`SystemRunning::lost`](super::SystemRunning::lost)), takes no unit
    /// again: it runs on the units it still holds until it loses them or
    /// stops, and no longer counts among the live nodes, so that the
    /// others share all the rest out. For a node that should be
    /// restarted, not trusted to carry on, after it was cut off or
    /// paused. Decided in the round that notices the loss, before that
    /// round takes anything. Off by default: a node takes units again as
    /// soon as it can.
    #[must_use]
    pub fn stop_taking_after_loss(mut self, stop: bool) -> Self {
        self.stop_taking_after_loss = stop;
        self
    }
}

/// One running node.
pub(crate) struct Node {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    system: System,
    apps: Vec<Application>,
    options: MachineOptions,
    leases: Leases,
    /// Units held: (unit name, application, partition, follower).
    held: Mutex<Vec<(String, Box<dyn Spawned>)>>,
    /// Units stopped against the node's will (see `SystemRunning::lost`).
    lost: AtomicU64,
    /// Whether the node takes units (cleared by the first loss under
    /// `stop_taking_after_loss`).
    taking: AtomicBool,
    stopping: AtomicBool,
    failed: Mutex<Option<String>>,
}

impl Node {
    pub(crate) fn start(
        system: &System,
        apps: &[Application],
        options: MachineOptions,
    ) -> Result<Node> {
        let Some(recorder) = apps
            .first()
            .and_then(|app| app.event_store().recorder_as::<PostgresRecorder>())
        else {
            return Err(SystemError::Runner(
                "the machine runner needs PostgreSQL: set DB_URI to a postgres:// URL".to_owned(),
            )
            .into());
        };
        let name = system.names().join(",");
        let leases = Leases::open(Arc::clone(&recorder), &name, &options.node, options.lease)?;
        // One node at a time brings changed partition counts level.
        let lock = format!("{}/{}", recorder.schema(), name);
        recorder.read_with(|client| {
            client.execute("SELECT pg_advisory_lock(hashtext($1))", &[&lock])?;
            let levelled = super::repartition::level(system, apps);
            client.execute("SELECT pg_advisory_unlock(hashtext($1))", &[&lock])?;
            Ok(levelled)
        })??;
        let shared = Arc::new(Shared {
            system: system.clone(),
            apps: apps.to_vec(),
            options,
            leases,
            held: Mutex::new(Vec::new()),
            lost: AtomicU64::new(0),
            taking: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
            failed: Mutex::new(None),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("system node {}", shared.options.node))
            .spawn(move || work(&worker))
            .map_err(|error| SystemError::Runner(format!("cannot start the node: {error}")))?;
        Ok(Node {
            shared,
            thread: Some(thread),
        })
    }

    pub(crate) fn held(&self) -> Vec<String> {
        self.shared
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(unit, _)| unit.clone())
            .collect()
    }

    pub(crate) fn lost(&self) -> u64 {
        self.shared.lost.load(Ordering::SeqCst)
    }

    pub(crate) fn check(&self) -> Result<()> {
        match &*self
            .shared
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            Some(reason) => Err(SystemError::Runner(reason.clone()).into()),
            None => Ok(()),
        }
    }

    /// Stops every follower of this node and gives its leases up.
    pub(crate) fn stop(mut self) {
        self.shut_down();
    }

    /// Stops the loop and every follower of this node, and gives its
    /// leases up; once (a second call finds nothing to do).
    fn shut_down(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let held = std::mem::take(
            &mut *self
                .shared
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (unit, worker) in held {
            // A follower fenced by another node ends with a tracking
            // conflict: that is how losing a unit looks, not a failure.
            let _ = worker.stop();
            let _ = self.shared.leases.release(&unit);
        }
        let _ = self
            .shared
            .leases
            .release(&format!("node:{}", self.shared.options.node));
    }
}

impl Drop for Node {
    /// A node dropped without `stop` stops all the same: its followers
    /// would otherwise run on, unsupervised, until the process ends.
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shut_down();
        }
    }
}

/// The node's loop: renew, stop what was lost, take a fair share.
fn work(shared: &Shared) {
    let units = shared.system.inner.units();
    let names: Vec<String> = units
        .iter()
        .map(|&(app, p)| format!("{}/{p}", shared.system.inner.apps[app].name()))
        .collect();
    let step = shared.options.lease / 3;
    let mut renewed = Instant::now();
    while !shared.stopping.load(Ordering::SeqCst) {
        if let Err(error) = round(shared, &units, &names, &mut renewed) {
            *shared.failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
        } else {
            *shared.failed.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
        let until = Instant::now() + step;
        while Instant::now() < until && !shared.stopping.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn round(
    shared: &Shared,
    units: &[(usize, u32)],
    names: &[String],
    renewed: &mut Instant,
) -> Result<()> {
    let mut held = shared.held.lock().unwrap_or_else(PoisonError::into_inner);
    let mine: Vec<String> = held.iter().map(|(unit, _)| unit.clone()).collect();
    match shared.leases.renew(&mine) {
        Ok(kept) => {
            *renewed = Instant::now();
            lose(shared, drop_where(&mut held, |unit| !kept.contains(unit)));
        }
        Err(error) => {
            // Cut off from the database: once the leases may have expired,
            // stop their followers here too (they could commit nothing
            // anyway once another node takes the units).
            if renewed.elapsed() >= shared.options.lease {
                lose(shared, drop_where(&mut held, |_| true));
            }
            return Err(error);
        }
    }
    // Followers that ended (fenced, or failed) give their units up.
    let ended: Vec<String> = held
        .iter()
        .filter(|(_, worker)| worker.is_finished())
        .map(|(unit, _)| unit.clone())
        .collect();
    for unit in &ended {
        shared.leases.release(unit)?;
    }
    lose(shared, drop_where(&mut held, |unit| ended.contains(unit)));

    if !shared.taking.load(Ordering::SeqCst) {
        // Taking nothing, it is no longer one of the nodes the units are
        // shared among: the others take all the rest.
        return shared
            .leases
            .release(&format!("node:{}", shared.options.node));
    }
    let nodes = shared.leases.heartbeat()?;
    let fair = units.len().div_ceil(nodes);
    while held.len() > fair {
        if let Some((unit, worker)) = held.pop() {
            let _ = worker.stop();
            shared.leases.release(&unit)?;
        }
    }
    // Start looking at a place of this node's own, so that nodes starting
    // together do not all reach for the same units first.
    let offset = shared.options.node.bytes().fold(0_usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    for k in 0..units.len() {
        if held.len() >= fair
            || shared.stopping.load(Ordering::SeqCst)
            || !shared.taking.load(Ordering::SeqCst)
        {
            break;
        }
        let i = (offset + k) % units.len();
        if held.iter().any(|(unit, _)| *unit == names[i]) || !shared.leases.acquire(&names[i])? {
            continue;
        }
        let (app, partition) = units[i];
        let worker = match shared.system.worker(
            &shared.apps,
            app,
            partition,
            None,
            Some(shared.options.poll),
        ) {
            Ok(worker) => worker,
            Err(error) => {
                shared.leases.release(&names[i])?;
                return Err(error);
            }
        };
        // Its epochs are raised now: run it only if the lease outlived
        // that (a node paused since `acquire` may have lost it).
        if shared
            .leases
            .renew(std::slice::from_ref(&names[i]))?
            .is_empty()
        {
            drop(worker);
            lose(shared, 1);
            continue;
        }
        held.push((names[i].clone(), worker.spawn()));
    }
    Ok(())
}

/// Counts `count` units lost; under `stop_taking_after_loss`, the node
/// takes none from now on.
fn lose(shared: &Shared, count: usize) {
    if count == 0 {
        return;
    }
    shared
        .lost
        .fetch_add(u64::try_from(count).unwrap_or(u64::MAX), Ordering::SeqCst);
    if shared.options.stop_taking_after_loss {
        shared.taking.store(false, Ordering::SeqCst);
    }
}

/// Stops the followers of the units `lost` picks; how many.
fn drop_where(held: &mut Vec<(String, Box<dyn Spawned>)>, lost: impl Fn(&String) -> bool) -> usize {
    let mut count = 0;
    let mut i = 0;
    while i < held.len() {
        if lost(&held[i].0) {
            let (_, worker) = held.swap_remove(i);
            let _ = worker.stop();
            count += 1;
        } else {
            i += 1;
        }
    }
    count
}
