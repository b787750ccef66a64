use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Order {
    lines: Vec<String>,
    shipped: bool,
}

#[aggregate]
impl Order {
    #[created(Placed)]
    fn place(&mut self) {}

    #[event(LineAdded)]
    pub fn add_line(&mut self, item: String) {
        self.lines.push(item);
    }

    #[event(Shipped)]
    pub fn ship(&mut self) {
        self.shipped = true;
        self.add_line("shipping".into());
    }

    #[event(Cancelled)]
    pub fn cancel(&mut self) {
        self.discard();
    }
}

fn main() {}
