use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct World {
    history: Vec<String>,
}

#[aggregate]
impl World {
    #[created(Created)]
    fn create(&mut self) {}
}

fn main() -> Result<()> {
    let app = Application::builder().build()?;
    let world = World::create();
    // The pending events are taken out of the aggregate on success, so
    // `save` needs it mutably.
    app.save(world)?;
    Ok(())
}
