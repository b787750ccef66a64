use std::rc::Rc;

use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    #[serde(skip)]
    owner: Rc<String>,
}

#[aggregate]
impl Account {
    #[created(Opened)]
    fn open(&mut self) {}

    #[event(Renamed)]
    fn rename(&mut self, owner: String) {
        self.owner = Rc::new(owner);
    }
}

fn main() {}
