//! What per-aggregate data keys cost: W1 and W2's replay with the same
//! account under a data key of its own (`SecretAccount`, flags `0x06`)
//! and under the application key (`Account`, `0x02`), the two taking
//! turns within each repetition. Each line is the median over repetitions
//! of time with data keys ÷ time with the application key, both of the
//! same repetition.

use std::hint::black_box;
use std::time::Duration;

use eventsourcing::prelude::*;
use support::account::SecretAccount;

use super::workloads::{line, timed, w1_ours, w2_append, w2_replay};
use super::{Codec, Durability, NOTE, Plan, Result, Target};

/// W1 with data keys: a new key (drawn, wrapped and inserted with the
/// first event) per aggregate, then its cached key for every later save.
pub(super) fn w1_keyed(app: &Application, aggregates: usize, events: usize) -> Result<()> {
    let mut accounts = Vec::with_capacity(aggregates);
    for i in 0..aggregates {
        let mut account = SecretAccount::open(format!("owner {i}"));
        app.save(&mut account)?;
        accounts.push(account);
    }
    for round in 1..events {
        for account in &mut accounts {
            account.deposit(i64::try_from(round)?, NOTE.to_owned());
            app.save(account)?;
        }
    }
    Ok(())
}

/// W2's append with data keys.
fn w2_append_keyed(app: &Application, events: usize, batch: usize) -> Result<Uuid> {
    let mut account = SecretAccount::open("owner".to_owned());
    for i in 1..events {
        account.deposit(i64::try_from(i)?, NOTE.to_owned());
        if account.pending_events().len() == batch {
            app.save(&mut account)?;
        }
    }
    app.save(&mut account)?;
    Ok(account.id())
}

/// W2's replay with data keys (the key cached since the append, as in a
/// running process).
fn w2_replay_keyed(app: &Application, id: Uuid, events: usize) -> Result<()> {
    let account: SecretAccount = app.repository().get(id)?;
    if usize::try_from(account.version())? != events {
        return Err(format!("replayed {} events, not {events}", account.version()).into());
    }
    black_box(&account);
    Ok(())
}

/// The median of the ratios of paired samples.
pub(super) fn median_ratio(with: &[Duration], without: &[Duration]) -> f64 {
    let mut ratios: Vec<f64> = with
        .iter()
        .zip(without)
        .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64().max(1e-9))
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Prints `w1_data_key_cost` and `w2_replay_data_key_cost`.
pub(super) fn run(target: &mut dyn Target, plan: &Plan) -> Result<()> {
    let (mut w1_keyed_times, mut w1_plain_times) = (Vec::new(), Vec::new());
    for rep in 0..plan.reps {
        target.clear()?;
        for turn in 0..2 {
            let app = target.app(Codec::Cipher, Durability::Normal)?;
            if (rep + turn) % 2 == 0 {
                let ((), t) = timed(|| w1_keyed(&app, plan.w1_aggregates, plan.w1_events))?;
                w1_keyed_times.push(t);
            } else {
                let ((), t) = timed(|| w1_ours(&app, plan.w1_aggregates, plan.w1_events))?;
                w1_plain_times.push(t);
            }
        }
    }
    line(
        "w1_data_key_cost",
        format_args!("{:.3}", median_ratio(&w1_keyed_times, &w1_plain_times)),
    );

    let (mut replay_keyed, mut replay_plain) = (Vec::new(), Vec::new());
    for _ in 0..plan.reps {
        target.clear()?;
        let keyed_app = target.app(Codec::Cipher, Durability::Normal)?;
        let keyed_id = w2_append_keyed(&keyed_app, plan.w2_events, plan.w2_batch)?;
        let plain_app = target.app(Codec::Cipher, Durability::Normal)?;
        let plain_id = w2_append(&plain_app, plan.w2_events, plan.w2_batch)?;
        for read in 0..plan.read_reps {
            let keyed = || w2_replay_keyed(&keyed_app, keyed_id, plan.w2_events);
            let unkeyed = || w2_replay(&plain_app, plain_id, plan.w2_events);
            if read % 2 == 0 {
                replay_keyed.push(timed(keyed)?.1);
                replay_plain.push(timed(unkeyed)?.1);
            } else {
                replay_plain.push(timed(unkeyed)?.1);
                replay_keyed.push(timed(keyed)?.1);
            }
        }
    }
    line(
        "w2_replay_data_key_cost",
        format_args!("{:.3}", median_ratio(&replay_keyed, &replay_plain)),
    );
    Ok(())
}
