//! [`Rib::lookup_sorted`]: many Loc-RIB lookups in address order, stepping through the
//! table between neighbouring prefixes instead of descending from the root for each.

use std::cmp::Ordering;

use super::{LocEntry, Rib};
use crate::rib::table::V4Key;
use crate::wire::Prefix;

/// Entries stepped over before a lookup falls back to a search from the root.
const MAX_STEPS: usize = 8;

impl Rib {
    /// Calls `f` with each of `prefixes` and its entry (None: not in the Loc-RIB), in the
    /// order given. Fastest when the prefixes ascend (IPv4 first, as the speaker's dirty
    /// set hands them out) and lie close together in the table; any order is correct.
    pub fn lookup_sorted<'a>(
        &'a self,
        prefixes: &[Prefix],
        mut f: impl FnMut(Prefix, Option<LocEntry<'a>>),
    ) {
        let mut cursor: Option<std::collections::btree_map::Range<'a, V4Key, _>> = None;
        // The entry the cursor stands on: the first one not below the last key looked up.
        let mut at = None;
        let mut last: Option<V4Key> = None;
        for &prefix in prefixes {
            let Prefix::V4(net) = prefix else {
                f(prefix, self.get(&prefix));
                continue;
            };
            let key = V4Key::new(net);
            let mut found = None;
            let mut resolved = false;
            if let Some(it) = cursor.as_mut().filter(|_| last.is_some_and(|l| l < key)) {
                for _ in 0..MAX_STEPS {
                    let Some((k, paths)) = at.or_else(|| it.next()) else {
                        resolved = true; // the table ends before `key`
                        break;
                    };
                    at = Some((k, paths));
                    match k.cmp(&key) {
                        Ordering::Less => at = None,
                        Ordering::Equal => {
                            found = Some(paths);
                            resolved = true;
                            break;
                        }
                        Ordering::Greater => {
                            resolved = true;
                            break;
                        }
                    }
                }
            }
            if !resolved {
                let mut it = self.v4.map.range(key..);
                at = it.next();
                found = at.filter(|(k, _)| **k == key).map(|(_, paths)| paths);
                cursor = Some(it);
            }
            last = Some(key);
            let entry = found.and_then(|slot| {
                Some(LocEntry {
                    prefix: key.prefix()?,
                    paths: slot.as_slice(),
                    ecmp: slot.ecmp_len(),
                })
            });
            f(prefix, entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rib::{Rib, RouteAttrs, LOCAL_PEER};
    use crate::wire::{Nlri, PathAttrs, Prefix};
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    #[test]
    fn finds_what_get_finds_in_any_order() {
        let mut rib = Rib::new(65000, Ipv4Addr::new(192, 0, 2, 1));
        let attrs = Arc::new(RouteAttrs::new(
            PathAttrs::default(),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        ));
        // Every third /32 of 10.0.0.0/22, plus a /24 and an IPv6 prefix.
        let mut held: Vec<Prefix> = (0..1024u32)
            .step_by(3)
            .map(|i| Prefix::from(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))))
            .collect();
        held.push("10.0.1.0/24".parse().unwrap());
        held.push("2001:db8::/64".parse().unwrap());
        for p in &held {
            let nlri = Nlri {
                prefix: *p,
                path_id: 0,
            };
            rib.insert(LOCAL_PEER, nlri, attrs.clone()).unwrap();
        }
        // Dense runs, a gap far beyond the step limit, the end of the table, a repeat and
        // a step back.
        let mut asked: Vec<Prefix> = (0..40u32)
            .chain(600..700)
            .chain(1020..1100)
            .map(|i| Prefix::from(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))))
            .collect();
        asked.insert(40, "10.0.1.0/24".parse().unwrap());
        asked.push("10.0.0.3/32".parse().unwrap());
        asked.push("10.0.0.3/32".parse().unwrap());
        asked.push("2001:db8::/64".parse().unwrap());
        let mut got = Vec::new();
        rib.lookup_sorted(&asked, |p, e| got.push((p, e.map(|e| e.prefix))));
        let want: Vec<_> = asked
            .iter()
            .map(|p| (*p, rib.get(p).map(|e| e.prefix)))
            .collect();
        assert_eq!(got, want);
        assert!(got.iter().filter(|(_, e)| e.is_some()).count() > 50);
    }
}
