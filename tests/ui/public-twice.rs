use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Patient {
    name: String,
}

#[aggregate]
impl Patient {
    #[created(Admitted, public, public)]
    fn admit(&mut self, name: String) {
        self.name = name;
    }
}

fn main() {}
