//! Named points where the crash tests kill a process: the runtime calls
//! [`point`] at each, and a test process installs a hook that kills
//! itself (SIGKILL) at the point it was told to. Without a hook, a point
//! costs one atomic load.

use std::sync::OnceLock;

static HOOK: OnceLock<fn(&'static str)> = OnceLock::new();

/// Installs the hook called at every named point; only the first call
/// installs one. For crash tests only.
pub fn set_crash_hook(hook: fn(&'static str)) {
    let _ = HOOK.set(hook);
}

/// Calls the crash hook, if there is one, with the point's name.
#[inline]
pub(crate) fn point(name: &'static str) {
    if let Some(hook) = HOOK.get() {
        hook(name);
    }
}
