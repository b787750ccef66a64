//! W1 to W3: the framework's side of each workload, the raw side's
//! through the `Raw` trait, and the figures printed for them.

use std::hint::black_box;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use eventsourcing::prelude::*;

use super::{Codec, Durability, NOTE, Plan, Raw, RawRow, Result, Target};
use support::account::Account;

/// Prints one figure.
pub(super) fn line(name: &str, value: impl std::fmt::Display) {
    println!("{name}: {value}");
}

pub(super) fn per_second(count: usize, elapsed: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
    let count = count as f64;
    count / elapsed.as_secs_f64().max(1e-9)
}

pub(super) fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

pub(super) fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Duration)> {
    let start = Instant::now();
    let value = f()?;
    Ok((value, start.elapsed()))
}

/// Every stored row of an application, in notification order.
pub(super) fn stored_rows(app: &Application) -> Result<Vec<RawRow>> {
    let recorder = app.event_store().recorder();
    let mut rows = Vec::new();
    let mut start = 1;
    loop {
        let page = recorder.select_notifications(start, 10_000, &[])?;
        let Some(last) = page.last() else {
            return Ok(rows);
        };
        start = last.id + 1;
        for n in &page {
            rows.push(RawRow::from_notification(n)?);
        }
    }
}

/// W1, the framework: every aggregate opened and saved, then each given
/// one deposit and saved, round after round: one event per save.
pub(super) fn w1_ours(app: &Application, aggregates: usize, events: usize) -> Result<()> {
    w1_accounts(app, aggregates, events).map(drop)
}

/// W1, returning the accounts it saved.
pub(super) fn w1_accounts(
    app: &Application,
    aggregates: usize,
    events: usize,
) -> Result<Vec<Account>> {
    let mut accounts = Vec::with_capacity(aggregates);
    for i in 0..aggregates {
        let mut account = Account::open(format!("owner {i}"));
        app.save(&mut account)?;
        accounts.push(account);
    }
    for round in 1..events {
        for account in &mut accounts {
            account.deposit(i64::try_from(round)?, NOTE.to_owned());
            app.save(account)?;
        }
    }
    Ok(accounts)
}

/// W2, the framework: one aggregate, `events` events saved `batch` at a time.
pub(super) fn w2_append(app: &Application, events: usize, batch: usize) -> Result<Uuid> {
    let mut account = Account::open("owner".to_owned());
    for i in 1..events {
        account.deposit(i64::try_from(i)?, NOTE.to_owned());
        if account.pending_events().len() == batch {
            app.save(&mut account)?;
        }
    }
    app.save(&mut account)?;
    Ok(account.id())
}

/// W2's replay, the framework: the aggregate rebuilt from all its events.
pub(super) fn w2_replay(app: &Application, id: Uuid, events: usize) -> Result<()> {
    let account: Account = app.repository().get(id)?;
    if usize::try_from(account.version())? != events {
        return Err(format!("replayed {} events, not {events}", account.version()).into());
    }
    black_box(&account);
    Ok(())
}

/// W3, the framework: the whole notification log, page by page, each
/// notification decoded (decrypted, decompressed) and its hash checked,
/// lent (`NotificationLog::decode_each`: no allocation per notification).
pub(super) fn w3_ours(app: &Application, page: usize) -> Result<usize> {
    let log = app.notification_log();
    let mut start = 1;
    let mut count = 0;
    loop {
        let mut last = None;
        let len = log.decode_each(start, page, &[], |notification| {
            black_box(&notification);
            last = Some(notification.id);
            ControlFlow::Continue(())
        })?;
        if let Some(last) = last {
            start = last + 1;
        }
        count += len;
        if len < page {
            return Ok(count);
        }
    }
}

/// The figures of one workload for one configuration.
pub(super) struct Pair {
    pub(super) ours: Vec<Duration>,
    pub(super) raw: Vec<Duration>,
}

impl Pair {
    pub(super) fn new() -> Pair {
        Pair {
            ours: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// Prints `<ours>`, `<raw>` and `<ratio>` (ours / raw as rates, higher
    /// is better), each from the median time.
    pub(super) fn print(self, count: usize, ours: &str, raw: &str, ratio: &str) {
        if std::env::var_os("BENCH_SAMPLES").is_some() {
            let us = |v: &[Duration]| {
                v.iter()
                    .map(|d| d.as_micros().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            println!(
                "# {ours} samples (us): ours {} / raw {}",
                us(&self.ours),
                us(&self.raw)
            );
        }
        let (o, r) = (median(self.ours), median(self.raw));
        let (ours_rate, raw_rate) = (per_second(count, o), per_second(count, r));
        line(ours, format_args!("{ours_rate:.0}"));
        line(raw, format_args!("{raw_rate:.0}"));
        line(ratio, format_args!("{:.3}", ours_rate / raw_rate));
    }
}

/// The two databases of one measurement: the framework's and the raw one.
pub(super) type Databases = (Application, Box<dyn Raw>);

/// W1 at one durability, for every codec: the codecs take turns within
/// each repetition (in rotated order), so that a change in the machine's
/// load hits them alike. Prints every W1 line of that durability and the cipher costs
/// (the median over repetitions of time with the codec / time plain, both
/// of the same repetition); returns the last repetition's databases, one
/// pair per codec (for W3).
pub(super) fn w1(
    target: &mut dyn Target,
    plan: &Plan,
    durability: Durability,
) -> Result<Vec<Option<Databases>>> {
    let (aggregates, reps) = if target.synced(durability) {
        (plan.w1_synced_aggregates, plan.synced_reps)
    } else {
        (plan.w1_aggregates, plan.reps)
    };
    let mut pairs: Vec<Pair> = Codec::ALL.iter().map(|_| Pair::new()).collect();
    let mut last: Vec<Option<Databases>> = Codec::ALL.iter().map(|_| None).collect();
    for rep in 0..reps {
        // Close the previous repetition's databases before deleting them.
        for databases in &mut last {
            drop(databases.take());
        }
        target.clear()?;
        // Each repetition starts with another codec, so that none always
        // runs first (or last) after the files of the previous one are gone.
        for turn in 0..Codec::ALL.len() {
            let i = (rep + turn) % Codec::ALL.len();
            let (Some(&codec), Some(pair), Some(last)) =
                (Codec::ALL.get(i), pairs.get_mut(i), last.get_mut(i))
            else {
                continue;
            };
            let app = target.app(codec, durability)?;
            let ((), t) = timed(|| w1_ours(&app, aggregates, plan.w1_events))?;
            pair.ours.push(t);
            let rows = stored_rows(&app)?;
            if rows.len() != aggregates * plan.w1_events {
                return Err(format!("W1 stored {} rows", rows.len()).into());
            }
            let mut raw = target.raw(durability)?;
            let ((), t) = timed(|| raw.insert(&rows, 1))?;
            pair.raw.push(t);
            *last = Some((app, raw));
        }
    }
    let cost = |codec: usize| {
        let ratios = pairs[codec].ours.iter().zip(&pairs[0].ours);
        let mut ratios: Vec<f64> = ratios
            .map(|(with, plain)| with.as_secs_f64() / plain.as_secs_f64().max(1e-9))
            .collect();
        ratios.sort_by(f64::total_cmp);
        ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let costs = [cost(1), cost(2)];
    for (codec, pair) in Codec::ALL.into_iter().zip(pairs) {
        let s = format!("{}{}", durability.suffix(), codec.suffix());
        pair.print(
            aggregates * plan.w1_events,
            &format!("w1_saves_per_s{s}"),
            &format!("w1_raw_saves_per_s{s}"),
            &format!("w1_vs_raw{s}"),
        );
    }
    let d = durability.suffix();
    line(
        &format!("w1_cipher_cost{d}"),
        format_args!("{:.3}", costs[0]),
    );
    line(
        &format!("w1_cipher_zlib_cost{d}"),
        format_args!("{:.3}", costs[1]),
    );
    Ok(last)
}

/// W3 on the databases W1 left.
pub(super) fn w3(
    plan: &Plan,
    codec: Codec,
    expected: usize,
    app: &Application,
    raw: &mut dyn Raw,
) -> Result<()> {
    // The plan's page size, and for plain records also the default
    // section size of a notification log (10), to show the cost per query.
    let pages: &[(usize, &str)] = if codec == Codec::Plain {
        &[(plan.w3_page, ""), (DEFAULT_SECTION, "_page10")]
    } else {
        &[(plan.w3_page, "")]
    };
    for &(page, page_suffix) in pages {
        let mut pair = Pair::new();
        for _ in 0..plan.read_reps {
            let (count, t) = timed(|| w3_ours(app, page))?;
            if count != expected {
                return Err(format!("W3 read {count} notifications, not {expected}").into());
            }
            pair.ours.push(t);
            let (count, t) = timed(|| raw.read_log(page))?;
            if count != expected {
                return Err(format!("W3 raw read {count} rows, not {expected}").into());
            }
            pair.raw.push(t);
        }
        let s = format!("{}{page_suffix}", codec.suffix());
        pair.print(
            expected,
            &format!("w3_notifications_per_s{s}"),
            &format!("w3_raw_notifications_per_s{s}"),
            &format!("w3_vs_raw{s}"),
        );
    }
    Ok(())
}

/// The notification log's default section size.
pub(super) const DEFAULT_SECTION: usize = 10;

/// W2 for one codec: append, then (unless `appends_only`) replay.
pub(super) fn w2(
    target: &mut dyn Target,
    plan: &Plan,
    codec: Codec,
    appends_only: bool,
) -> Result<()> {
    let mut append = Pair::new();
    let mut replay = Pair::new();
    for _ in 0..plan.reps {
        target.clear()?;
        let app = target.app(codec, Durability::Normal)?;
        let (id, t) = timed(|| w2_append(&app, plan.w2_events, plan.w2_batch))?;
        append.ours.push(t);
        let rows = stored_rows(&app)?;
        let mut raw = target.raw(Durability::Normal)?;
        let ((), t) = timed(|| raw.insert(&rows, plan.w2_batch))?;
        append.raw.push(t);

        let raw_id = id.hyphenated().to_string();
        let replays = if appends_only { 0 } else { plan.read_reps };
        for _ in 0..replays {
            let ((), t) = timed(|| w2_replay(&app, id, plan.w2_events))?;
            replay.ours.push(t);
            let (count, t) = timed(|| raw.replay(&raw_id))?;
            if count != plan.w2_events {
                return Err(format!("W2 raw replay read {count} rows").into());
            }
            replay.raw.push(t);
        }
    }
    let s = codec.suffix();
    append.print(
        plan.w2_events,
        &format!("w2_append_events_per_s{s}"),
        &format!("w2_raw_append_events_per_s{s}"),
        &format!("w2_append_vs_raw{s}"),
    );
    if appends_only {
        return Ok(());
    }
    replay.print(
        plan.w2_events,
        &format!("w2_replay_events_per_s{s}"),
        &format!("w2_raw_replay_events_per_s{s}"),
        &format!("w2_replay_vs_raw{s}"),
    );
    Ok(())
}

/// W1 at the first durability and W2's appends, for every codec: the
/// write workloads alone (`--writes`).
pub(super) fn run_writes(target: &mut dyn Target, plan: &Plan) -> Result<()> {
    line("db", target.name());
    line("plan", plan.name);
    let started = Instant::now();
    let durability = target
        .durabilities()
        .first()
        .copied()
        .ok_or("no durability")?;
    drop(w1(target, plan, durability)?);
    for codec in Codec::ALL {
        w2(target, plan, codec, true)?;
    }
    target.clear()?;
    line(
        "elapsed_s",
        format_args!("{:.1}", started.elapsed().as_secs_f64()),
    );
    Ok(())
}

pub(super) fn run(target: &mut dyn Target, plan: &Plan) -> Result<()> {
    line("db", target.name());
    line("plan", plan.name);
    line(
        "sizes",
        format_args!(
            "w1 {}x{} (synced commits: {}x{}), w2 {} in batches of {}, w3 pages of {}, \
             median of {} writes / {} reads / {} synced writes",
            plan.w1_aggregates,
            plan.w1_events,
            plan.w1_synced_aggregates,
            plan.w1_events,
            plan.w2_events,
            plan.w2_batch,
            plan.w3_page,
            plan.reps,
            plan.read_reps,
            plan.synced_reps,
        ),
    );
    let started = Instant::now();
    let last = w1(target, plan, Durability::Normal)?;
    for (codec, databases) in Codec::ALL.into_iter().zip(last) {
        if let Some((app, mut raw)) = databases {
            let rows = app.notification_log().max_id()?;
            w3(plan, codec, usize::try_from(rows)?, &app, &mut *raw)?;
        }
    }
    for codec in Codec::ALL {
        w2(target, plan, codec, false)?;
    }
    super::data_keys::run(target, plan)?;
    if target.durabilities().contains(&Durability::Full) {
        drop(w1(target, plan, Durability::Full)?);
    }
    target.clear()?;
    if target.name() == "sqlite" {
        super::followers::run(plan)?;
    }
    line(
        "elapsed_s",
        format_args!("{:.1}", started.elapsed().as_secs_f64()),
    );
    Ok(())
}
