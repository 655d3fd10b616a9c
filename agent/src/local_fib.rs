//! The agent's own kernel routes (blackholes for the IPAM blocks this node owns) next to the
//! speaker's. The speaker programs every Loc-RIB prefix it has, and for a prefix the agent
//! originates itself (an owned block announced in aggregate mode) its wish is "no route": left
//! alone it would delete the blackhole. So every FIB change goes through [`LocalFib`], where
//! a pinned route wins over the speaker's wish for the same prefix until it is unpinned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bgp::wire::Prefix;
use fib::{FibHandle, Route};

#[derive(Default)]
struct State {
    /// The agent's routes, by destination.
    pinned: HashMap<Prefix, Route>,
    /// The speaker's last route for a pinned destination, put back when it is unpinned.
    shadowed: HashMap<Prefix, Route>,
}

/// The FIB programmer shared by the speaker's sink and the IPAM advertiser. Cheap to clone;
/// every call is non-blocking (the programmer's handle only records the wish).
#[derive(Clone)]
pub struct LocalFib {
    fib: FibHandle,
    state: Arc<Mutex<State>>,
}

impl LocalFib {
    /// Wraps the programmer's handle.
    pub fn new(fib: FibHandle) -> Self {
        Self {
            fib,
            state: Arc::default(),
        }
    }

    /// The programmer's handle.
    #[cfg(test)]
    pub fn handle(&self) -> &FibHandle {
        &self.fib
    }

    // The lock is held across the handle call so a pin and a speaker change of the same
    // prefix reach the programmer in the order they were decided.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The agent wants `route` in the kernel whatever the speaker says about its prefix.
    pub fn pin(&self, route: Route) {
        let mut state = self.lock();
        state.pinned.insert(route.dst, route.clone());
        self.fib.set(route);
    }

    /// The agent no longer wants its route to `dst`: the speaker's route for it (if it set one
    /// while the pin held) is put back, else the route is deleted.
    pub fn unpin(&self, dst: Prefix) {
        let mut state = self.lock();
        if state.pinned.remove(&dst).is_none() {
            return;
        }
        match state.shadowed.remove(&dst) {
            Some(route) => self.fib.set(route),
            None => self.fib.remove(dst),
        }
    }

    /// The speaker wants `route` (ignored while its prefix is pinned).
    pub fn speaker_set(&self, route: Route) {
        let mut state = self.lock();
        if state.pinned.contains_key(&route.dst) {
            state.shadowed.insert(route.dst, route);
        } else {
            self.fib.set(route);
        }
    }

    /// The speaker wants no route to `dst` (ignored while it is pinned).
    pub fn speaker_remove(&self, dst: Prefix) {
        let mut state = self.lock();
        if state.pinned.contains_key(&dst) {
            state.shadowed.remove(&dst);
        } else {
            self.fib.remove(dst);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fib::{FibConfig, NextHop};

    use super::*;

    fn pfx(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn a_pinned_route_wins_over_the_speaker_until_unpinned() {
        let table = fib::MemoryTable::new(196);
        let cfg = FibConfig {
            stale_after: Duration::ZERO,
            ..FibConfig::default()
        };
        let local = LocalFib::new(fib::Programmer::spawn_with(table.clone(), &cfg));
        let block = pfx("10.244.0.0/26");
        let via = Route::unicast(block, vec![NextHop::via("192.0.2.7".parse().unwrap())]);

        local.pin(Route::blackhole(block));
        // The speaker originates the block itself: its wish is "no route".
        local.speaker_remove(block);
        local.handle().flush().await;
        assert_eq!(table.get(&block).unwrap().0, Route::blackhole(block));

        // A peer's route for the same prefix is kept aside, not installed.
        local.speaker_set(via.clone());
        local.handle().flush().await;
        assert_eq!(table.get(&block).unwrap().0, Route::blackhole(block));

        // Unpinned: the speaker's route comes back.
        local.unpin(block);
        local.handle().flush().await;
        assert_eq!(table.get(&block).unwrap().0.normalized(), via.normalized());

        // Pinned and unpinned with no speaker route: nothing is left.
        local.speaker_remove(block);
        local.pin(Route::blackhole(block));
        local.unpin(block);
        local.handle().flush().await;
        assert!(table.get(&block).is_none());
        // Unpinning what is not pinned does not touch the speaker's routes.
        local.speaker_set(via.clone());
        local.unpin(block);
        local.handle().flush().await;
        assert!(table.get(&block).is_some());
        local.handle().clone().shutdown().await;
    }
}
