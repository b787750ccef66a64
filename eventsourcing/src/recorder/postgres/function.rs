//! The insert function: the writer's side of the gap-free log
//! (docs/gap-free-log.md), the tracking update's compare-and-set and the
//! notification of listeners, in one PL/pgSQL function installed beside
//! the tables; its signature, its body, the statements that call it, and
//! the signatures of its earlier versions, which setup drops.

use super::sql::{
    CONFLICT_DETAIL_PREFIX, EVENT_COLUMNS, TRACKING_COLUMNS, TRACKING_CONFLICT, quote_literal,
};

/// The arguments of the insert function: the events as arrays, then the
/// tracking update (all null when there is none), then whether to notify
/// the listeners.
const ARGUMENTS: &str = "lock_table boolean, ids uuid[], versions bigint[], \
     topics text[], states bytea[], tracking_follower text, tracking_upstream text, \
     tracking_partition integer, tracking_expected bigint, tracking_position bigint, \
     tracking_epoch bigint, notify boolean";

/// Their types, as `to_regprocedure` and `DROP FUNCTION` name them.
const TYPES: &str = "boolean, uuid[], bigint[], text[], bytea[], text, text, integer, bigint, \
     bigint, bigint, boolean";

/// The argument types of the earlier versions: version 1's took no
/// tracking update, the next one no `notify`.
const OLD_TYPES: [&str; 2] = [
    "boolean, uuid[], bigint[], text[], bytea[]",
    "boolean, uuid[], bigint[], text[], bytea[], text, text, integer, bigint, bigint, bigint",
];

/// The qualified names of the tables the function writes.
#[derive(Clone, Copy)]
pub(super) struct Tables<'a> {
    pub(super) events: &'a str,
    pub(super) sequence: &'a str,
    pub(super) tracking: &'a str,
}

/// What the function derives from the schema and prefix: the channel it
/// notifies and its lock keys.
#[derive(Clone, Copy)]
pub(super) struct Keys<'a> {
    pub(super) channel: &'a str,
    pub(super) aggregate_class: i32,
    pub(super) sequence_key: i64,
}

/// The insert function and the statements that call it.
#[derive(Debug)]
pub(super) struct InsertFunction {
    /// The function as `to_regprocedure` takes it: name and argument types.
    pub(super) signature: String,
    /// The earlier versions' signatures, dropped when found.
    pub(super) old_signatures: Vec<String>,
    /// Its body, to compare with the installed one.
    pub(super) body: String,
    /// Installs it.
    pub(super) create: String,
    /// Calls it with events alone: the tracking arguments and `notify` are
    /// constants of the statement rather than parameters sent with every
    /// batch.
    pub(super) insert_events: String,
    /// Calls it with events and a tracking update.
    pub(super) insert_batch: String,
}

impl InsertFunction {
    /// The function `name` (qualified) for `tables`; the recorder's
    /// statements pass `notify` as a constant, so that recorders with
    /// either setting share one function.
    pub(super) fn new(name: &str, tables: &Tables<'_>, keys: &Keys<'_>, notify: bool) -> Self {
        let body = body(tables, keys);
        Self {
            signature: format!("{name}({TYPES})"),
            old_signatures: OLD_TYPES
                .iter()
                .map(|types| format!("{name}({types})"))
                .collect(),
            create: format!(
                "CREATE OR REPLACE FUNCTION {name}({ARGUMENTS}) \
                 RETURNS bigint[] LANGUAGE plpgsql AS {body}",
                body = quote_literal(&body),
            ),
            body,
            insert_events: format!(
                "SELECT {name}($1, $2, $3, $4, $5, \
                 NULL::text, NULL::text, NULL::integer, NULL::bigint, NULL::bigint, NULL::bigint, \
                 {notify})"
            ),
            insert_batch: format!(
                "SELECT {name}($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, {notify})"
            ),
        }
    }
}

/// The body of the insert function: the writer's side of the protocol
/// (docs/gap-free-log.md, "Writers"), the tracking update's
/// compare-and-set ("Tracking updates"), and the notification.
fn body(tables: &Tables<'_>, keys: &Keys<'_>) -> String {
    let Tables {
        events,
        sequence,
        tracking,
    } = *tables;
    let events_branch = events_branch(events, sequence, keys);
    let tracking_key = "t.application_name = tracking_follower \
        AND t.upstream_name = tracking_upstream AND t.\"partition\" = tracking_partition";
    format!(
        "
DECLARE
    conflict record;
    mark record;
    writer xid8;
    n integer := cardinality(ids);
    single boolean;
    top bigint;
    new_ids bigint[] := '{{}}';
BEGIN
    -- A tracking update is checked first, by a plain read that assigns no
    -- transaction id and draws no notification id: a worker that lost its
    -- row fails here without leaving a hole in the ids.
    IF tracking_follower IS NOT NULL THEN
        SELECT t.notification_id, t.epoch INTO mark FROM {tracking} AS t WHERE {tracking_key};
        IF (FOUND AND (mark.notification_id <> tracking_expected OR mark.epoch <> tracking_epoch))
            OR (NOT FOUND AND (tracking_expected <> 0 OR tracking_epoch <> 0)) THEN
            RAISE EXCEPTION USING
                ERRCODE = '{TRACKING_CONFLICT}',
                MESSAGE = 'tracking conflict (checked before the events)';
        END IF;
    END IF;
{events_branch}    -- The authoritative compare-and-set, after the events (inserting them
    -- must be the transaction's first write): another worker may have moved
    -- the row since the check above.
    IF tracking_follower IS NOT NULL THEN
        UPDATE {tracking} AS t SET notification_id = tracking_position
            WHERE {tracking_key}
                AND t.notification_id = tracking_expected AND t.epoch = tracking_epoch;
        IF NOT FOUND AND tracking_expected = 0 AND tracking_epoch = 0 THEN
            -- A follower without a row stands at notification 0, epoch 0.
            INSERT INTO {tracking} ({TRACKING_COLUMNS})
                VALUES (tracking_follower, tracking_upstream, tracking_partition,
                        tracking_position, 0)
                ON CONFLICT DO NOTHING;
        END IF;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING
                ERRCODE = '{TRACKING_CONFLICT}',
                MESSAGE = 'tracking conflict (found by the compare-and-set)';
        END IF;
    END IF;
    RETURN new_ids;
END
"
    )
}

/// The part of the body that inserts the events, if the batch has any:
/// the per-aggregate locks, the conflict check, the serialised section
/// that takes the transaction id and draws the ids, the insert and the
/// notification.
fn events_branch(events: &str, sequence: &str, keys: &Keys<'_>) -> String {
    let Keys {
        channel,
        aggregate_class,
        sequence_key,
    } = *keys;
    let sequence_literal = quote_literal(sequence);
    let channel_literal = quote_literal(channel);
    format!(
        "    IF n > 0 THEN
        -- Writers of one aggregate take turns (keys in ascending order, so no
        -- deadlock); each statement below sees what the previous holder committed.
        -- A batch of one aggregate, the common case, takes its lock with an
        -- expression rather than a query.
        single := coalesce(ids[1] = ALL(ids), false);
        IF single THEN
            PERFORM pg_advisory_xact_lock({aggregate_class}, hashtext(ids[1]::text));
        ELSE
            PERFORM pg_advisory_xact_lock({aggregate_class}, k)
                FROM (SELECT DISTINCT hashtext(i::text) AS k FROM unnest(ids) AS i ORDER BY 1) AS keys;
        END IF;
        IF lock_table THEN
            LOCK TABLE {events} IN EXCLUSIVE MODE;
        END IF;
        -- A conflict is reported before any notification id is drawn, naming
        -- the batch's first recorded row. For one aggregate, one index probe
        -- settles the common case: no version of the batch is recorded when
        -- all are above the greatest recorded one (or none is).
        IF single THEN
            SELECT max(e.originator_version) INTO top FROM {events} AS e WHERE e.originator_id = ids[1];
        END IF;
        IF NOT single OR top >= ANY(versions) THEN
            SELECT e.originator_id, e.originator_version INTO conflict
                FROM {events} AS e JOIN unnest(ids, versions) WITH ORDINALITY AS b(i, v, o)
                    ON e.originator_id = b.i AND e.originator_version = b.v
                ORDER BY b.o LIMIT 1;
            IF FOUND THEN
                RAISE unique_violation USING
                    MESSAGE = 'stored event already recorded',
                    DETAIL = format('{CONFLICT_DETAIL_PREFIX}%s, %s) already exists.',
                        conflict.originator_id, conflict.originator_version);
            END IF;
        END IF;
        IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
            RAISE EXCEPTION 'stored events must be the first write of their transaction'
                USING ERRCODE = 'invalid_transaction_state';
        END IF;
        -- The serialised section: transaction id first, then the ids.
        PERFORM pg_advisory_lock({sequence_key});
        BEGIN
            writer := pg_current_xact_id();
            IF n = 1 THEN
                new_ids := ARRAY[nextval({sequence_literal})];
            ELSE
                new_ids := ARRAY(SELECT nextval({sequence_literal}) FROM generate_series(1, n));
            END IF;
        EXCEPTION WHEN OTHERS OR query_canceled THEN
            PERFORM pg_advisory_unlock({sequence_key});
            RAISE;
        END;
        PERFORM pg_advisory_unlock({sequence_key});
        IF n = 1 THEN
            INSERT INTO {events} (notification_id, {EVENT_COLUMNS}, transaction_id)
                VALUES (new_ids[1], ids[1], versions[1], topics[1], states[1], writer);
        ELSE
            INSERT INTO {events} (notification_id, {EVENT_COLUMNS}, transaction_id)
                SELECT b.n, b.i, b.v, b.t, b.s, writer
                FROM unnest(new_ids, ids, versions, topics, states) AS b(n, i, v, t, s);
        END IF;
        -- Wakes the listeners when the transaction commits, and only then.
        IF notify THEN
            PERFORM pg_notify({channel_literal}, '');
        END IF;
    END IF;
"
    )
}
