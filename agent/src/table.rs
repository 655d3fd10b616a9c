//! Human output: aligned columns for `status` and `routes`.

use bgp::speaker::{PeerStatus, RouteEntry};

/// Renders `rows` under `headers`, columns separated by two spaces and padded to the widest
/// cell (the last column is not padded). Every line ends with a newline.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                let pad = w.saturating_sub(cell.chars().count()) + 2;
                out.push_str(&" ".repeat(pad));
            }
        }
        // No trailing blanks when the last cells are empty.
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    }
    out
}

/// `bramble status`; `now` is the current Unix time in seconds.
pub fn status(peers: &[PeerStatus], now: u64) -> String {
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            vec![
                p.peer.to_string(),
                p.asn.to_string(),
                p.kind.clone(),
                p.state.clone(),
                since(p.since, now),
                p.received.to_string(),
                p.accepted.to_string(),
                p.advertised.to_string(),
                p.info.clone(),
            ]
        })
        .collect();
    render(
        &[
            "PEER",
            "ASN",
            "TYPE",
            "STATE",
            "SINCE",
            "RECEIVED",
            "ACCEPTED",
            "ADVERTISED",
            "INFO",
        ],
        &rows,
    )
}

/// `bramble nodes`.
pub fn nodes(nodes: &[crate::api::NodeInfo]) -> String {
    // The JSON names ("node", "reflector", "full", …).
    let kebab = |v: serde_json::Result<serde_json::Value>| match v {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".to_string(),
    };
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            let addresses: Vec<String> = n.addresses.iter().map(ToString::to_string).collect();
            vec![
                n.name.clone(),
                n.router_id.to_string(),
                n.asn.to_string(),
                addresses.join(","),
                n.port.to_string(),
                kebab(serde_json::to_value(n.role)),
                kebab(serde_json::to_value(n.mesh)),
                n.version.clone(),
            ]
        })
        .collect();
    render(
        &[
            "NAME",
            "ROUTER-ID",
            "ASN",
            "ADDRESS",
            "PORT",
            "ROLE",
            "MESH",
            "VERSION",
        ],
        &rows,
    )
}

/// `bramble routes`.
pub fn routes(routes: &[RouteEntry]) -> String {
    let dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
    let rows: Vec<Vec<String>> = routes
        .iter()
        .map(|r| {
            let communities: Vec<&str> = r
                .communities
                .iter()
                .chain(&r.large_communities)
                .map(String::as_str)
                .collect();
            let as_path: Vec<String> = r.as_path.iter().map(u32::to_string).collect();
            vec![
                r.prefix.to_string(),
                r.next_hop.map_or("-".into(), |n| n.to_string()),
                // FIB rows carry no origin and no peer; Loc-RIB rows without a peer are ours.
                r.peer.map_or_else(
                    || if r.origin.is_empty() { "-" } else { "local" }.to_string(),
                    |p| p.to_string(),
                ),
                dash(as_path.join(" ")),
                dash(r.origin.clone()),
                r.med.map_or("-".into(), |m| m.to_string()),
                r.local_pref.map_or("-".into(), |l| l.to_string()),
                dash(communities.join(",")),
                flags(r),
            ]
        })
        .collect();
    render(
        &[
            "PREFIX",
            "NEXT-HOP",
            "PEER",
            "AS-PATH",
            "ORIGIN",
            "MED",
            "LOCAL-PREF",
            "COMMUNITIES",
            "FLAGS",
        ],
        &rows,
    )
}

/// `*` best, `=` in the ECMP set, then the note if any.
fn flags(r: &RouteEntry) -> String {
    let mut f = String::new();
    if r.best {
        f.push('*');
    }
    if r.ecmp {
        f.push('=');
    }
    if let Some(note) = &r.note {
        if !f.is_empty() {
            f.push(' ');
        }
        f.push_str(note);
    }
    f
}

/// "5m3s ago", or "-" when the time is unknown (0) or in the future.
pub fn since(then: u64, now: u64) -> String {
    if then == 0 || then > now {
        return "-".into();
    }
    format!("{} ago", duration(now - then))
}

/// Two most significant units: `42s`, `5m3s`, `2h7m`, `3d4h`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(42), "42s");
        assert_eq!(duration(303), "5m3s");
        assert_eq!(duration(2 * 3600 + 7 * 60 + 9), "2h7m");
        assert_eq!(duration(3 * 86_400 + 4 * 3600 + 1), "3d4h");
        assert_eq!(since(1000, 1303), "5m3s ago");
        assert_eq!(since(0, 1303), "-");
        assert_eq!(since(2000, 1303), "-");
    }

    #[test]
    fn nodes_table() {
        use crate::api::{NodeInfo, NodeMesh, NodeRole};
        let node = |name: &str, addr: &str, role, mesh| NodeInfo {
            name: name.into(),
            router_id: addr.parse().unwrap(),
            asn: 64512,
            addresses: vec![addr.parse().unwrap()],
            port: 179,
            role,
            mesh,
            version: "0.1.0".into(),
        };
        let out = nodes(&[
            node("rr1", "10.0.0.1", NodeRole::Reflector, NodeMesh::Reflectors),
            node("node-two", "10.0.0.12", NodeRole::Node, NodeMesh::Full),
        ]);
        assert_eq!(
            out,
            "NAME      ROUTER-ID  ASN    ADDRESS    PORT  ROLE       MESH        VERSION\n\
             rr1       10.0.0.1   64512  10.0.0.1   179   reflector  reflectors  0.1.0\n\
             node-two  10.0.0.12  64512  10.0.0.12  179   node       full        0.1.0\n"
        );
    }

    #[test]
    fn status_table_is_aligned() {
        let peers = vec![
            PeerStatus {
                peer: "192.0.2.254".parse().unwrap(),
                asn: 65000,
                kind: "ebgp".into(),
                state: "Established".into(),
                since: 1000,
                received: 12,
                accepted: 10,
                advertised: 3,
                info: "4-octet-as, graceful-restart".into(),
            },
            PeerStatus {
                peer: "2001:db8::1".parse().unwrap(),
                asn: 64512,
                kind: "ibgp".into(),
                state: "Active".into(),
                since: 1290,
                received: 0,
                accepted: 0,
                advertised: 0,
                info: String::new(),
            },
        ];
        assert_eq!(
            status(&peers, 1303),
            "\
PEER         ASN    TYPE  STATE        SINCE     RECEIVED  ACCEPTED  ADVERTISED  INFO
192.0.2.254  65000  ebgp  Established  5m3s ago  12        10        3           4-octet-as, graceful-restart
2001:db8::1  64512  ibgp  Active       13s ago   0         0         0
"
        );
    }

    #[test]
    fn routes_table_shows_flags_and_placeholders() {
        let entry = |best, ecmp, note: Option<&str>| RouteEntry {
            prefix: "10.1.0.0/24".parse().unwrap(),
            peer: Some("192.0.2.254".parse().unwrap()),
            next_hop: Some("192.0.2.254".parse().unwrap()),
            as_path: vec![65000, 65010],
            origin: "igp".into(),
            med: Some(10),
            local_pref: None,
            communities: vec!["65000:100".into()],
            large_communities: vec![],
            best,
            ecmp,
            originator_id: None,
            cluster_list: vec![],
            note: note.map(Into::into),
        };
        let local = RouteEntry {
            prefix: "10.244.1.0/26".parse().unwrap(),
            peer: None,
            next_hop: None,
            as_path: vec![],
            origin: "igp".into(),
            med: None,
            local_pref: Some(100),
            communities: vec![],
            large_communities: vec![],
            best: true,
            ecmp: false,
            originator_id: None,
            cluster_list: vec![],
            note: None,
        };
        let out = routes(&[
            entry(true, true, None),
            entry(false, false, Some("as-path loop")),
            local,
        ]);
        assert_eq!(
            out,
            "\
PREFIX         NEXT-HOP     PEER         AS-PATH      ORIGIN  MED  LOCAL-PREF  COMMUNITIES  FLAGS
10.1.0.0/24    192.0.2.254  192.0.2.254  65000 65010  igp     10   -           65000:100    *=
10.1.0.0/24    192.0.2.254  192.0.2.254  65000 65010  igp     10   -           65000:100    as-path loop
10.244.1.0/26  -            local        -            igp     -    100         -            *
"
        );
    }

    #[test]
    fn empty_lists_print_the_header() {
        assert_eq!(
            routes(&[]),
            "PREFIX  NEXT-HOP  PEER  AS-PATH  ORIGIN  MED  LOCAL-PREF  COMMUNITIES  FLAGS\n"
        );
    }
}
