//! Running until told to stop: SIGINT (a second one exits at once, with
//! 130) or the end of standard input, for `log --follow` and `serve`.

use std::io::{ErrorKind, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use crate::failure::Failure;

/// A flag raised by SIGINT (a second one exits at once, with 130) and by
/// the end of standard input.
pub(crate) fn stop_flag() -> Result<Arc<AtomicBool>, Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = Arc::clone(&stop);
    let interrupted = AtomicBool::new(false);
    ctrlc::set_handler(move || {
        if interrupted.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        on_signal.store(true, Ordering::SeqCst);
    })
    .map_err(|e| Failure::store(format!("cannot handle SIGINT: {e}")))?;
    let on_eof = Arc::clone(&stop);
    thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buffer = [0_u8; 256];
        // Whatever is typed is read and dropped; the end, or an error other
        // than an interruption (by SIGINT itself), stops the log.
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        on_eof.store(true, Ordering::SeqCst);
    });
    Ok(stop)
}
