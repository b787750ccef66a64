//! `log [--from N] [--follow]`: the notification log in order; following,
//! new notifications as they are written, until SIGINT or the end of
//! standard input.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use eventsourcing::json::{Map, json};
use eventsourcing::recorder::Notification;

use crate::failure::Failure;
use crate::output::Output;
use crate::record::Described;
use crate::stopping::stop_flag;
use crate::store::{Open, Store, StoreArgs};

/// Rows read per query.
const PAGE: usize = 500;
/// The first wait after finding nothing new.
const FIRST_WAIT: Duration = Duration::from_millis(20);
/// The longest wait between two polls.
const LONGEST_WAIT: Duration = Duration::from_secs(1);
/// How often a wait looks at the stop flag.
const TICK: Duration = Duration::from_millis(20);

/// `log`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The first notification id to print.
    #[arg(long, default_value_t = 1, value_name = "N")]
    from: u64,
    /// Keep waiting for new notifications (polling, with backoff) until
    /// SIGINT or the end of standard input, then exit 0.
    #[arg(long)]
    follow: bool,
}

/// Prints each notification from `--from` on, one line (or one JSON
/// object) each; with `--follow`, goes on printing new ones.
pub(crate) fn run(store: &StoreArgs, args: &Args, out: &mut Output) -> Result<(), Failure> {
    let store = store.open(Open::Existing)?;
    let stop = if args.follow {
        stop_flag()?
    } else {
        Arc::new(AtomicBool::new(false))
    };
    let mut next = args.from.max(1);
    let mut wait = FIRST_WAIT;
    loop {
        let page = store
            .recorder
            .select_notifications(next, PAGE, &[])
            .map_err(|e| store.failure(e))?;
        let full = page.len() == PAGE;
        if !page.is_empty() {
            wait = FIRST_WAIT;
        }
        for notification in page {
            next = notification.id.saturating_add(1);
            print(&store, notification, out)?;
        }
        out.flush()?;
        if full {
            continue;
        }
        if !args.follow || stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        if !sleep_unless_stopped(wait, &stop) {
            return Ok(());
        }
        wait = (wait * 2).min(LONGEST_WAIT);
    }
}

/// Prints one notification.
fn print(store: &Store, notification: Notification, out: &mut Output) -> Result<(), Failure> {
    let id = notification.id;
    let described = Described::read(&store.mapper, notification.into_event());
    out.either(
        || {
            let mut extra = Map::new();
            extra.insert("notification_id".into(), json!(id));
            described.to_json(extra)
        },
        || described.to_text(&format!("#{id} ")),
    )
}

/// Waits `wait`, looking at `stop` every tick; `false` when it was raised.
fn sleep_unless_stopped(wait: Duration, stop: &AtomicBool) -> bool {
    let mut waited = Duration::ZERO;
    while waited < wait {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        thread::sleep(TICK);
        waited += TICK;
    }
    !stop.load(Ordering::SeqCst)
}
