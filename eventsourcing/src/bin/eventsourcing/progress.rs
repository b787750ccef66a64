//! Progress bars on standard error for long work, drawn only on a
//! terminal and never with `--json`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `length` steps labelled `what`; hidden unless standard error
/// is a terminal and the output is text.
pub(crate) fn bar(length: u64, what: &str, json: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(length),
        if json {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}
