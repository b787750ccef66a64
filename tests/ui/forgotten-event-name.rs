use eventsourcing::prelude::*;

#[aggregate(key = per_aggregate)]
#[derive(Debug, Default)]
pub struct Patient {
    name: String,
}

#[aggregate]
impl Patient {
    #[created(Admitted)]
    fn admit(&mut self, name: String) {
        self.name = name;
    }

    #[event(Forgotten)]
    fn forget_me(&mut self) {
        self.name.clear();
    }
}

fn main() {}
