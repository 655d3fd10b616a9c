//! The export task against a write queue the test reads (and stops reading).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::Exporter;
use crate::rib::RouteAttrs;
use crate::wire::{
    decode_message, AsPath, DecodeContext, EncodeContext, Message, Nlri, Origin, PathAttrs, Prefix,
};

fn attrs(hop: u8) -> Arc<RouteAttrs> {
    let hop = Ipv4Addr::new(192, 0, 2, hop);
    let a = PathAttrs {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        next_hop: Some(hop),
        ..Default::default()
    };
    Arc::new(RouteAttrs::new(a, IpAddr::V4(hop)))
}

fn nlri(i: u32) -> Nlri {
    Nlri {
        prefix: Prefix::from(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))),
        path_id: 0,
    }
}

/// What the peer is told, in order: (prefix index, Some(next hop's last octet) or None for
/// a withdrawal).
fn changes(buffers: &[Bytes]) -> Vec<(u32, Option<u8>)> {
    let mut out = Vec::new();
    for buf in buffers {
        let mut at = 0;
        while at + 19 <= buf.len() {
            let len = usize::from(u16::from_be_bytes([buf[at + 16], buf[at + 17]]));
            let msg = decode_message(&buf[at..at + len], &DecodeContext::default());
            let Ok(Message::Update(u)) = msg else {
                panic!("not an UPDATE: {msg:?}");
            };
            let index = |n: &Nlri| match n.prefix.network() {
                IpAddr::V4(a) => u32::from(a) - 0x0a00_0000,
                IpAddr::V6(_) => u32::MAX,
            };
            out.extend(u.withdrawn.iter().map(|n| (index(n), None)));
            let hop = u.attrs.next_hop.map(|h| h.octets()[3]);
            out.extend(u.nlri.iter().map(|n| (index(n), hop)));
            at += len;
        }
    }
    out
}

async fn drained(out: &Exporter) {
    for _ in 0..500 {
        if out.queued() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the task never took in its backlog");
}

async fn read_all(rx: &mut mpsc::Receiver<Bytes>) -> Vec<Bytes> {
    let mut got = Vec::new();
    while let Ok(Some(b)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
        got.push(b);
    }
    got
}

#[tokio::test]
async fn changes_go_out_in_order_and_coalesce_while_the_queue_is_full() {
    let (tx, mut rx) = mpsc::channel(1);
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut out = Exporter::spawn(peer, EncodeContext::default(), false, Some(tx));
    let (a, b, c, d) = (attrs(1), attrs(2), attrs(3), attrs(4));

    // First batch: straight out, into the one free slot of the write queue.
    for i in 0..1000 {
        out.set(nlri(i), a.clone());
    }
    out.send();
    drained(&out).await;
    // Second batch: encoded, then waits for room that the test does not make yet.
    out.set(nlri(7), b.clone());
    out.send();
    drained(&out).await;
    // These wait in the Adj-RIB-Out while the queue is full: 7 goes c then d, 8 goes and
    // comes back unchanged, 9 goes.
    out.set(nlri(7), c);
    out.remove(nlri(8));
    out.send();
    out.set(nlri(7), d.clone());
    out.set(nlri(8), a.clone());
    out.remove(nlri(9));
    out.send();
    drained(&out).await;

    let got = changes(&read_all(&mut rx).await);
    let mut want: Vec<(u32, Option<u8>)> = (0..1000).map(|i| (i, Some(1))).collect();
    want.push((7, Some(2)));
    want.push((9, None));
    want.push((7, Some(4)));
    assert_eq!(
        got, want,
        "c was overtaken; 8 came back to what the peer has"
    );
    let adj_out = out.adj_out();
    assert_eq!(adj_out.advertised_len(), 999);
    assert!(Arc::ptr_eq(adj_out.advertised(&nlri(7)).unwrap(), &d));
    assert!(Arc::ptr_eq(adj_out.advertised(&nlri(8)).unwrap(), &a));
}

#[tokio::test]
async fn end_of_rib_follows_the_initial_table() {
    let (tx, mut rx) = mpsc::channel(8);
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut out = Exporter::spawn(peer, EncodeContext::default(), false, Some(tx));
    for i in 0..3 {
        out.set(nlri(i), attrs(1));
    }
    out.initial_queued(crate::wire::Family::IPV4_UNICAST);
    out.send();
    let buffers = read_all(&mut rx).await;
    let all: Vec<u8> = buffers.iter().flat_map(|b| b.iter().copied()).collect();
    // RFC 4724 §2: End-of-RIB for IPv4 unicast is an UPDATE with nothing in it (23 bytes),
    // after the routes.
    assert_eq!(&all[all.len() - 23 + 16..all.len() - 23 + 19], &[0, 23, 2]);
    assert_eq!(
        changes(&[Bytes::from(all[..all.len() - 23].to_vec())]).len(),
        3
    );
}

#[tokio::test]
async fn a_task_whose_connection_closed_leaves_no_backlog() {
    let (tx, rx) = mpsc::channel(1);
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut out = Exporter::spawn(peer, EncodeContext::default(), false, Some(tx));
    drop(rx);
    for round in 0..3u32 {
        for i in 0..100 {
            out.set(nlri(round * 100 + i), attrs(1));
        }
        out.send();
    }
    // The task stops at its first write; whatever it never took in must not hold the
    // speaker back (the speaker stops reading UPDATEs while export tasks are behind).
    drained(&out).await;
}

#[tokio::test]
async fn a_session_without_a_connection_leaves_no_backlog() {
    // The connection closed between Established and the speaker's taking it up.
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut out = Exporter::spawn(peer, EncodeContext::default(), false, None);
    for i in 0..100 {
        out.set(nlri(i), attrs(1));
    }
    out.send();
    tokio::task::yield_now().await;
    out.set(nlri(100), attrs(1));
    out.send();
    drained(&out).await;
}
