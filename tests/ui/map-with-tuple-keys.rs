use std::collections::{BTreeMap, HashMap};

use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Board {
    cells: BTreeMap<(u8, u8), char>,
}

#[aggregate]
impl Board {
    #[created(Started)]
    fn start(&mut self) {}

    #[event(Marked)]
    fn mark(&mut self, cells: HashMap<(u8, u8), char>, history: Vec<BTreeMap<Vec<u8>, u32>>) {
        self.cells.extend(cells);
        let _ = history;
    }
}

fn main() {}
