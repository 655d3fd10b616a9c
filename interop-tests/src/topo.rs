//! Ready-made topologies: two namespaces joined by one addressed veth.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::Result;
use crate::netns::Netns;
use crate::veth::Veth;

/// Two namespaces `a` and `b` joined by a veth with `10.0.0.1/30`, `fd00::1/64` on `a` and
/// `10.0.0.2/30`, `fd00::2/64` on `b` (namespaces are isolated, so every test can reuse these).
///
/// Dropping it deletes both namespaces (and so the link) and kills what runs in them.
#[derive(Debug)]
pub struct PointToPoint {
    /// The first node.
    pub a: Netns,
    /// The second node.
    pub b: Netns,
    /// The link; `link.set_up(false)` cuts it.
    pub link: Veth,
}

impl PointToPoint {
    /// `a`'s IPv4 address.
    pub const A4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    /// `b`'s IPv4 address.
    pub const B4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    /// `a`'s IPv6 address.
    pub const A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    /// `b`'s IPv6 address.
    pub const B6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

    /// Make namespaces `PREFIX_A-…` and `PREFIX_B-…` and the addressed link between them.
    pub fn new(prefix_a: &str, prefix_b: &str) -> Result<Self> {
        let a = Netns::new(prefix_a)?;
        let b = Netns::new(prefix_b)?;
        let link = Veth::new(&a, &b)?;
        link.a().add_addr(&format!("{}/30", Self::A4))?;
        link.a().add_addr(&format!("{}/64", Self::A6))?;
        link.b().add_addr(&format!("{}/30", Self::B4))?;
        link.b().add_addr(&format!("{}/64", Self::B6))?;
        Ok(Self { a, b, link })
    }

    /// [`Self::A4`] as an [`IpAddr`].
    pub fn a4() -> IpAddr {
        IpAddr::V4(Self::A4)
    }

    /// [`Self::B4`] as an [`IpAddr`].
    pub fn b4() -> IpAddr {
        IpAddr::V4(Self::B4)
    }

    /// [`Self::A6`] as an [`IpAddr`].
    pub fn a6() -> IpAddr {
        IpAddr::V6(Self::A6)
    }

    /// [`Self::B6`] as an [`IpAddr`].
    pub fn b6() -> IpAddr {
        IpAddr::V6(Self::B6)
    }
}
