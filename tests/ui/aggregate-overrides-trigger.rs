use eventsourcing::prelude::*;

#[derive(Event, Debug, Clone, PartialEq)]
pub enum CounterEvent {
    Started,
    Added { amount: u32 },
}

#[aggregate]
#[derive(Debug, Default)]
pub struct Counter {
    total: u32,
}

impl Aggregate for Counter {
    type Event = CounterEvent;

    fn apply(&mut self, event: CounterEvent) {
        if let CounterEvent::Added { amount } = event {
            self.total += amount;
        }
    }

    // Recording is not the implementation's to change.
    fn trigger(&mut self, event: CounterEvent) {
        self.apply(event);
    }
}

fn main() {}
