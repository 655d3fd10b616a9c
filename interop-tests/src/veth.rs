//! veth pairs between namespaces, and LANs made of a bridge in a "switch" namespace.
//!
//! The kernel here has no `dummy` driver, so every link is a veth pair. Both ends are created
//! directly inside their namespaces (`ip link add A netns X type veth peer name B netns Y`).

use std::process::Command;

use crate::error::Result;
use crate::names::{ifname, unique_token};
use crate::netns::Netns;
use crate::process::run;

/// One end of a veth pair: an interface name inside a namespace.
#[derive(Debug, Clone)]
pub struct VethEnd {
    netns: String,
    ifname: String,
}

impl VethEnd {
    /// The namespace this end lives in.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The interface name (≤ 15 characters).
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    fn ip(&self, args: &[&str]) -> Result<()> {
        run(Command::new("ip").arg("-n").arg(&self.netns).args(args))?;
        Ok(())
    }

    /// Add an address, e.g. `10.0.0.1/30` or `fd00::1/64`. IPv6 addresses get `nodad` so they
    /// are usable at once (no duplicate address detection delay).
    pub fn add_addr(&self, cidr: &str) -> Result<()> {
        if cidr.contains(':') {
            self.ip(&["addr", "add", cidr, "dev", &self.ifname, "nodad"])
        } else {
            self.ip(&["addr", "add", cidr, "dev", &self.ifname])
        }
    }

    /// Bring this end up or down.
    pub fn set_up(&self, up: bool) -> Result<()> {
        self.ip(&[
            "link",
            "set",
            "dev",
            &self.ifname,
            if up { "up" } else { "down" },
        ])
    }
}

/// A veth pair. Deleting either namespace deletes it; [`Veth::delete`] does so explicitly.
#[derive(Debug, Clone)]
pub struct Veth {
    a: VethEnd,
    b: VethEnd,
}

impl Veth {
    /// A pair with one end in `a`, the other in `b`, both up, no addresses.
    pub fn new(a: &Netns, b: &Netns) -> Result<Self> {
        Self::between(a.name(), &ifname('a'), b.name(), &ifname('b'))
    }

    /// A pair with chosen interface names (the lab), both up.
    pub fn between(ns_a: &str, if_a: &str, ns_b: &str, if_b: &str) -> Result<Self> {
        run(Command::new("ip").args([
            "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b,
        ]))?;
        let v = Veth {
            a: VethEnd {
                netns: ns_a.to_string(),
                ifname: if_a.to_string(),
            },
            b: VethEnd {
                netns: ns_b.to_string(),
                ifname: if_b.to_string(),
            },
        };
        v.a.set_up(true)?;
        v.b.set_up(true)?;
        Ok(v)
    }

    /// The end in the first namespace.
    pub fn a(&self) -> &VethEnd {
        &self.a
    }

    /// The end in the second namespace.
    pub fn b(&self) -> &VethEnd {
        &self.b
    }

    /// Bring both ends up or down: down simulates a cut cable (no carrier, packets dropped).
    pub fn set_up(&self, up: bool) -> Result<()> {
        self.a.set_up(up)?;
        self.b.set_up(up)
    }

    /// Delete the pair (both ends go).
    pub fn delete(self) -> Result<()> {
        self.a.ip(&["link", "del", "dev", &self.a.ifname])
    }
}

/// A LAN: a bridge in its own "switch" namespace; each attached node gets a veth to it.
///
/// Dropping the LAN deletes the switch namespace and with it the bridge and every port.
#[derive(Debug)]
pub struct Lan {
    switch: Netns,
    bridge: String,
}

impl Lan {
    /// A new switch namespace `PREFIX-TOKEN` holding bridge `br0`, up.
    pub fn new(prefix: &str) -> Result<Self> {
        let switch = Netns::new(prefix)?;
        let bridge = format!("br{}", unique_token());
        let mut bridge = bridge;
        bridge.truncate(15);
        switch.ip(&["link", "add", &bridge, "type", "bridge"])?;
        switch.ip(&["link", "set", "dev", &bridge, "up"])?;
        Ok(Self { switch, bridge })
    }

    /// The switch namespace.
    pub fn switch(&self) -> &Netns {
        &self.switch
    }

    /// Connect `node` to the LAN. Returns the pair: `a()` is the node's interface, `b()` the
    /// bridge port (set it down to cut just this node off).
    pub fn attach(&self, node: &Netns) -> Result<Veth> {
        let v = Veth::between(node.name(), &ifname('n'), self.switch.name(), &ifname('p'))?;
        self.switch
            .ip(&["link", "set", "dev", v.b().ifname(), "master", &self.bridge])?;
        Ok(v)
    }
}
