//! `serve [--listen ADDR]`: the store's notification log over HTTP, as
//! stored (see `eventsourcing::http::NotificationServer`), and the event
//! browser's pages (`eventsourcing::http::Browser`: decoded with the key,
//! if one is given), until SIGINT or the end of standard input.

use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use eventsourcing::http::{Browser, NotificationServer};
use eventsourcing::json::json;

use crate::failure::Failure;
use crate::output::Output;
use crate::stopping::stop_flag;
use crate::store::{Open, StoreArgs};

/// How often the server's loop looks at the stop flag.
const TICK: Duration = Duration::from_millis(50);

/// `serve`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The address to listen on; port 0 picks a free one (the URL printed
    /// says which).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: String,
    /// Ask every request for `Authorization: Bearer <token>`; prefer the
    /// variable, since arguments are visible to other users.
    #[arg(long, env = "EVENTSOURCING_HTTP_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The most notifications one page request may ask for.
    #[arg(long, value_name = "N")]
    max_limit: Option<usize>,
}

/// Serves until stopped, then lets the requests in flight finish.
pub(crate) fn run(store_args: &StoreArgs, args: &Args, out: &mut Output) -> Result<(), Failure> {
    let store = store_args.open(Open::Existing)?;
    let app = store_args.application(&store)?;
    let mut server = NotificationServer::new(&app).browser(Browser::new(&app));
    if let Some(token) = args.token.as_deref().filter(|t| !t.is_empty()) {
        server = server.token(token);
    }
    if let Some(limit) = args.max_limit {
        server = server.max_limit(limit);
    }
    let running = server
        .bind(args.listen.as_str())
        .map_err(|e| Failure::usage(format!("cannot listen on {}: {e}", args.listen)))?;
    let url = running.url();
    out.either(
        || json!({ "url": url, "notifications": format!("{url}/notifications/1,10") }),
        || {
            format!(
                "serving the event browser on {url}/ and the notification log on \
                 {url}/notifications (SIGINT or end of input stops)"
            )
        },
    )?;
    out.flush()?;
    let stop = stop_flag()?;
    while !stop.load(Ordering::SeqCst) {
        thread::sleep(TICK);
    }
    running.stop().map_err(|e| store.failure(e))
}
