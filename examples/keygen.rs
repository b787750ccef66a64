//! Prints a new `CIPHER_KEY`: base64 of 32 random bytes.
//!
//! ```text
//! export CIPHER_KEY=$(cargo run --quiet --example keygen)
//! ```

fn main() -> Result<(), eventsourcing::Error> {
    println!("{}", eventsourcing::generate_cipher_key()?);
    Ok(())
}
