//! A condition variable that makes no system call when nobody waits.
//!
//! The standard library's `Condvar::notify_all` enters the kernel every
//! time, waiters or not. Commits ring a follower's doorbell and move its
//! positions several times per saved command even on the single-thread
//! runner, where nobody ever waits: five system calls per order of the
//! orders system. A [`Signal`] counts its waiters and notifies only when
//! there are some.
//!
//! Why no wake-up is lost: a waiter counts itself while it holds the
//! mutex, before `wait` releases it; a notifier changes the state under
//! the same mutex and reads the count after taking it. Either the notifier
//! took the mutex after the waiter released it in `wait`, and then sees the
//! waiter counted, or before the waiter took it, and then the waiter sees
//! the new state before it waits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, LockResult, MutexGuard, PoisonError, WaitTimeoutResult};
use std::time::Duration;

#[derive(Debug, Default)]
pub(crate) struct Signal {
    condvar: Condvar,
    waiters: AtomicUsize,
}

impl Signal {
    /// Wakes every waiter, if there is one. Call after changing the state
    /// under the waiters' mutex (holding it or having released it).
    pub(crate) fn notify_all(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.condvar.notify_all();
        }
    }

    /// `Condvar::wait`, counted; a poisoned mutex is taken as it is (so
    /// for the others).
    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.counted(|condvar| condvar.wait(guard))
    }

    /// `Condvar::wait_timeout`, counted.
    pub(crate) fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        self.counted(|condvar| condvar.wait_timeout(guard, timeout))
    }

    /// `Condvar::wait_timeout_while`, counted.
    pub(crate) fn wait_timeout_while<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
        condition: impl FnMut(&mut T) -> bool,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        self.counted(|condvar| condvar.wait_timeout_while(guard, timeout, condition))
    }

    /// Runs one of the condition variable's waits with this waiter counted
    /// for its whole length.
    fn counted<G>(&self, wait: impl FnOnce(&Condvar) -> LockResult<G>) -> G {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let woken = wait(&self.condvar).unwrap_or_else(PoisonError::into_inner);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        woken
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::thread;

    use super::*;

    #[test]
    fn a_waiter_is_woken_and_none_is_counted_after() {
        let shared = Arc::new((Mutex::new(false), Signal::default()));
        let waiter = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let (flag, signal) = &*shared;
                let mut set = flag.lock().unwrap();
                while !*set {
                    set = signal.wait(set);
                }
            })
        };
        // Until the waiter is counted, the flag is set under the mutex and
        // the waiter sees it without waiting; after, it is woken.
        let (flag, signal) = &*shared;
        *flag.lock().unwrap() = true;
        signal.notify_all();
        waiter.join().unwrap();
        assert_eq!(signal.waiters.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn many_rounds_of_handing_a_turn_back_and_forth_lose_no_wake_up() {
        // Two threads take turns through one counter; a lost wake-up would
        // leave one of them waiting for ever (the test would hang).
        let shared = Arc::new((Mutex::new(0u32), Signal::default()));
        let rounds = 2_000;
        let other = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let (turn, signal) = &*shared;
                for round in 0..rounds {
                    let mut at = turn.lock().unwrap();
                    while *at != 2 * round + 1 {
                        at = signal.wait(at);
                    }
                    *at += 1;
                    drop(at);
                    signal.notify_all();
                }
            })
        };
        let (turn, signal) = &*shared;
        for round in 0..rounds {
            let mut at = turn.lock().unwrap();
            while *at != 2 * round {
                at = signal.wait(at);
            }
            *at += 1;
            drop(at);
            signal.notify_all();
        }
        other.join().unwrap();
        assert_eq!(*turn.lock().unwrap(), 2 * rounds);
    }
}
