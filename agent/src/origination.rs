//! What the node holds, kept current between reads of the store.
//!
//! A full read of the store ([`crate::ipam_service::IpamService::sync`]) is the truth but costs
//! round trips; allocations and releases this node makes are known the moment they commit.
//! [`Tracked`] keeps the last read plus every change since, and lays the changes that
//! committed while a read was in flight over that read, so an older picture never undoes a
//! newer change.

use std::net::IpAddr;

use config::Advertise;
use ipnetwork::IpNetwork;

use crate::advertiser::Holdings;

/// One change this node made to what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// An address allocated to this node.
    Allocated {
        ip: IpAddr,
        block: IpNetwork,
        borrowed: bool,
    },
    /// An address this node released.
    Released(IpAddr),
}

impl From<&ipam::Allocation> for Change {
    fn from(a: &ipam::Allocation) -> Self {
        Change::Allocated {
            ip: a.ip,
            block: a.block,
            borrowed: a.borrowed,
        }
    }
}

/// The holdings, and the changes a read in flight may not have seen.
#[derive(Debug, Default)]
pub struct Tracked {
    /// The last read plus the changes since; `None` before the first read.
    held: Option<Holdings>,
    /// Counts the change sets applied.
    epoch: u64,
    /// The change sets applied while a read was in flight, by epoch.
    recent: Vec<(u64, Vec<Change>)>,
}

impl Tracked {
    /// The holdings, once read.
    pub fn held(&self) -> Option<&Holdings> {
        self.held.as_ref()
    }

    /// Call before starting a read; pass the result to [`Tracked::finish_read`].
    pub fn begin_read(&self) -> u64 {
        self.epoch
    }

    /// Applies changes that have committed. `reading`: a read is in flight, which may or may
    /// not see them. Returns `false` when there is nothing to apply them to yet (no read).
    pub fn apply(&mut self, mode: Advertise, changes: &[Change], reading: bool) -> bool {
        self.epoch += 1;
        if reading {
            self.recent.push((self.epoch, changes.to_vec()));
        } else {
            self.recent.clear();
        }
        let Some(held) = self.held.as_mut() else {
            return false;
        };
        for c in changes {
            apply(mode, held, c);
        }
        true
    }

    /// Installs a read that began at `since`, with the changes applied after it laid over
    /// (reads take turns: the caller holds a lock around begin and finish).
    pub fn finish_read(&mut self, mode: Advertise, since: u64, mut read: Holdings) {
        // Changes applied before the read began had committed before it: it saw them.
        self.recent.retain(|(epoch, _)| *epoch > since);
        for (_, changes) in &self.recent {
            for c in changes {
                apply(mode, &mut read, c);
            }
        }
        self.held = Some(read);
    }
}

/// Applies one change to `held`.
fn apply(mode: Advertise, held: &mut Holdings, change: &Change) {
    match (*change, mode) {
        (Change::Allocated { ip, .. }, Advertise::HostRoutes) => add(&mut held.addresses, ip),
        (
            Change::Allocated {
                ip, borrowed: true, ..
            },
            Advertise::Aggregate,
        ) => add(&mut held.borrowed, ip),
        (Change::Allocated { block, .. }, Advertise::Aggregate) => {
            if !held.owned_blocks.contains(&block) {
                held.owned_blocks.push(block);
            }
        }
        // A released address of an owned block stays covered by the block (aggregate mode);
        // the block goes when it is released, which a full read picks up.
        (Change::Released(ip), _) => {
            held.addresses.retain(|a| *a != ip);
            held.borrowed.retain(|a| *a != ip);
        }
    }
}

fn add(list: &mut Vec<IpAddr>, ip: IpAddr) {
    if !list.contains(&ip) {
        list.push(ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn alloc(s: &str, borrowed: bool) -> Change {
        let block = if borrowed {
            "10.0.1.0/26"
        } else {
            "10.0.0.0/26"
        };
        Change::Allocated {
            ip: ip(s),
            block: block.parse().unwrap(),
            borrowed,
        }
    }

    fn hosts(list: &[&str]) -> Holdings {
        Holdings {
            addresses: list.iter().map(|s| ip(s)).collect(),
            ..Holdings::default()
        }
    }

    #[test]
    fn changes_before_the_first_read_wait_for_it() {
        let mut t = Tracked::default();
        assert!(!t.apply(Advertise::HostRoutes, &[alloc("10.0.0.1", false)], false));
        assert!(t.held().is_none());
        let since = t.begin_read();
        t.finish_read(Advertise::HostRoutes, since, hosts(&["10.0.0.1"]));
        assert_eq!(t.held(), Some(&hosts(&["10.0.0.1"])));
    }

    #[test]
    fn a_read_in_flight_does_not_undo_newer_changes() {
        let mode = Advertise::HostRoutes;
        let mut t = Tracked::default();
        t.finish_read(mode, 0, hosts(&["10.0.0.1", "10.0.0.2"]));
        let since = t.begin_read();
        // While the read is in flight: .3 allocated, .2 released; the read saw neither.
        t.apply(mode, &[alloc("10.0.0.3", false)], true);
        t.apply(mode, &[Change::Released(ip("10.0.0.2"))], true);
        t.finish_read(mode, since, hosts(&["10.0.0.1", "10.0.0.2"]));
        assert_eq!(t.held(), Some(&hosts(&["10.0.0.1", "10.0.0.3"])));
        // The next read starts afresh: it is not overlaid with what it already saw.
        let since = t.begin_read();
        t.finish_read(mode, since, hosts(&["10.0.0.1"]));
        assert_eq!(t.held(), Some(&hosts(&["10.0.0.1"])));
    }

    #[test]
    fn aggregate_mode_tracks_blocks_and_borrowed_addresses() {
        let mode = Advertise::Aggregate;
        let mut t = Tracked::default();
        t.finish_read(mode, 0, Holdings::default());
        t.apply(
            mode,
            &[
                alloc("10.0.0.1", false),
                alloc("10.0.0.2", false),
                alloc("10.0.1.9", true),
            ],
            false,
        );
        let held = t.held().unwrap();
        assert_eq!(held.owned_blocks, vec!["10.0.0.0/26".parse().unwrap()]);
        assert_eq!(held.borrowed, vec![ip("10.0.1.9")]);
        t.apply(
            mode,
            &[
                Change::Released(ip("10.0.1.9")),
                Change::Released(ip("10.0.0.1")),
            ],
            false,
        );
        let held = t.held().unwrap();
        assert!(held.borrowed.is_empty());
        assert_eq!(held.owned_blocks.len(), 1);
    }
}
