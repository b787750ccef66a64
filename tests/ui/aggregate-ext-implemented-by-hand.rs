use eventsourcing::prelude::*;
use eventsourcing::RecordedEvent;

#[derive(Event, Debug, Clone, PartialEq)]
pub enum CounterEvent {
    Started,
}

#[aggregate]
#[derive(Debug, Default)]
pub struct Counter {}

impl Aggregate for Counter {
    type Event = CounterEvent;

    fn apply(&mut self, _: CounterEvent) {}
}

// The crate implements `AggregateExt` for every aggregate; there is no
// room for a second implementation that skips the checks.
impl AggregateExt for Counter {
    fn trigger(&mut self, event: CounterEvent) {
        self.apply(event);
    }
    fn start(_: CounterEvent) -> Self {
        Counter::default()
    }
    fn start_with_id(_: Uuid, _: CounterEvent) -> Self {
        Counter::default()
    }
    fn replay<I>(_: Uuid, _: I) -> Result<Option<Self>>
    where
        I: IntoIterator<Item = Result<RecordedEvent>>,
    {
        Ok(None)
    }
    fn replay_next(&mut self, _: RecordedEvent) -> Result<()> {
        Ok(())
    }
    fn from_snapshot(_: &eventsourcing::Snapshot) -> Result<Self> {
        Ok(Counter::default())
    }
}

fn main() {}
