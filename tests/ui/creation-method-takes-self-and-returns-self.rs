use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Cargo {
    destination: String,
}

#[aggregate]
impl Cargo {
    #[created(Booked)]
    fn book(&mut self, destination: String) -> Self {
        Self { destination }
    }
}

fn main() {}
