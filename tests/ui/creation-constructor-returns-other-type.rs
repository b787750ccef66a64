use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug)]
pub struct Cargo {
    destination: String,
}

#[aggregate]
impl Cargo {
    #[created(Booked)]
    fn book(destination: String) -> Option<Self> {
        Some(Self { destination })
    }
}

fn main() {}
