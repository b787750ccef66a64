//! Database notifications that wake a running follower: for each upstream
//! on PostgreSQL, a thread that listens for its commits (LISTEN/NOTIFY)
//! and rings the follower's doorbell. Other backends have none; the
//! follower polls them. A notification is a hint, as a commit hook is:
//! the follower reads the log whether or not one arrives.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
#[cfg(feature = "postgres")]
use std::time::Duration;

use super::runner::Upstream;
use super::watch::Shared;

/// The listening threads of one run; they end when this is dropped.
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// How long a listener waits before it looks at the stop flag again.
#[cfg(feature = "postgres")]
const LISTEN_SLICE: Duration = Duration::from_millis(200);

/// How long a listener whose connection failed waits before it connects
/// again.
#[cfg(feature = "postgres")]
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Starts listening to every upstream that can be listened to.
pub(crate) fn start(upstreams: &[Upstream], shared: &Arc<Shared>) -> Listeners {
    #[cfg_attr(
        not(feature = "postgres"),
        allow(unused_mut, reason = "only PostgreSQL upstreams are listened to")
    )]
    let mut listeners = Listeners::default();
    #[cfg(feature = "postgres")]
    for upstream in upstreams {
        use crate::recorder::PostgresRecorder;
        let Some(recorder) = upstream.app.event_store().recorder_as::<PostgresRecorder>() else {
            continue;
        };
        // Listening starts before the follower first reads, so that no
        // commit falls between its read and its first wait.
        let first = recorder.listener().ok();
        let stop = Arc::clone(&listeners.stop);
        let shared = Arc::downgrade(shared);
        let thread = std::thread::Builder::new()
            .name(format!("listen {}", upstream.name))
            .spawn(move || {
                let mut listener = first;
                while !stop.load(Ordering::SeqCst) {
                    let Some(current) = listener.as_mut() else {
                        match recorder.listener() {
                            Ok(new) => {
                                listener = Some(new);
                                // Commits while it was not listening were
                                // not announced: look now.
                                match shared.upgrade() {
                                    Some(shared) => shared.doorbell.ring(),
                                    None => return,
                                }
                            }
                            Err(_) => std::thread::sleep(RECONNECT_AFTER),
                        }
                        continue;
                    };
                    match current.wait(LISTEN_SLICE) {
                        Ok(true) => match shared.upgrade() {
                            Some(shared) => shared.doorbell.ring(),
                            None => return,
                        },
                        Ok(false) => {}
                        // A lost connection: the follower polls meanwhile.
                        Err(_) => listener = None,
                    }
                }
            });
        if let Ok(thread) = thread {
            listeners.threads.push(thread);
        }
    }
    #[cfg(not(feature = "postgres"))]
    let _ = (upstreams, shared);
    listeners
}
