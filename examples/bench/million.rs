//! Memory: replaying 1,000,000 events streams (`--replay-million`).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use eventsourcing::prelude::*;
use eventsourcing::recorder::{SqliteOptions, SqliteRecorder};

use super::workloads::{line, per_second, timed};
use super::{NOTE, Result};
use support::account::Account;

/// The aggregate of the memory measurement.
pub(super) const MILLION_ID: Uuid = Uuid::from_u128(0x6d69_6c6c_696f_6e00_0000_0000_0000_0001);
/// A one-event aggregate in the same database, for the baseline.
pub(super) const ONE_ID: Uuid = Uuid::from_u128(0x6d69_6c6c_696f_6e00_0000_0000_0000_0002);
pub(super) const MILLION: usize = 1_000_000;

/// The process's peak resident set size, from `/proc/self/status`.
pub(super) fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub(super) fn million(phase: &str, path: &Path) -> Result<()> {
    let app = Application::builder()
        .recorder(Arc::new(SqliteRecorder::open(SqliteOptions::file(path))?))
        .build()?;
    match phase {
        "build" => {
            let start = Instant::now();
            let mut account = Account::open_with_id(MILLION_ID, "million".to_owned());
            for i in 1..MILLION {
                account.deposit(i64::try_from(i)?, NOTE.to_owned());
                if account.pending_events().len() == 10_000 {
                    app.save(&mut account)?;
                }
            }
            app.save(&mut account)?;
            app.save(&mut Account::open_with_id(ONE_ID, "one".to_owned()))?;
            line(
                "million_build_s",
                format_args!("{:.1}", start.elapsed().as_secs_f64()),
            );
        }
        "load" | "load-one" => {
            let (id, expected) = if phase == "load" {
                (MILLION_ID, MILLION)
            } else {
                (ONE_ID, 1)
            };
            let (account, t) = timed(|| Ok(app.repository().get::<Account>(id)?))?;
            if usize::try_from(account.version())? != expected {
                return Err(format!("loaded version {}", account.version()).into());
            }
            line("million_loaded_events", expected);
            line(
                "million_replay_events_per_s",
                format_args!("{:.0}", per_second(expected, t)),
            );
            line("million_balance", account.balance);
        }
        other => {
            return Err(
                format!("unknown phase `{other}`; expected build, load or load-one").into(),
            );
        }
    }
    if let Some(kib) = peak_rss_kib() {
        line("peak_rss_kib", kib);
    }
    Ok(())
}
