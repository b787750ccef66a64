use eventsourcing::prelude::*;

#[aggregate(check_replay = true)]
#[derive(Debug, Default)]
pub struct Meter {
    total: u64,
}

#[aggregate]
impl Meter {
    #[created(Installed)]
    fn install(&mut self) {}
}

fn main() {}
