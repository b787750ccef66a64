use eventsourcing::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrackingId(Uuid);

#[aggregate(id = TrackingId)]
#[derive(Debug, Default)]
pub struct Cargo {
    destination: String,
}

#[aggregate]
impl Cargo {
    #[created(Booked)]
    fn book(&mut self, destination: String) {
        self.destination = destination;
    }
}

fn main() {}
