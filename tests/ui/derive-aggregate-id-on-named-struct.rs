use eventsourcing::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, AggregateId)]
pub struct TrackingId {
    id: Uuid,
}

fn main() {}
