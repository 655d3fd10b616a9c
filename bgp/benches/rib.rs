//! RIB benchmarks: Loc-RIB insertion and withdrawal of 100,000 /32s, peer down, and
//! Adj-RIB-Out flushing. Before the timed runs it prints the memory held per /32 route for
//! 1,000,000 routes from one peer (counted by the allocator below, and as resident memory).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use bgp::rib::{AdjRibOut, PeerInfo, Rib, RouteAttrs};
use bgp::wire::{AsPath, AsSegment, Ipv4Network, Nlri, Origin, PathAttrs, Prefix, SegmentType};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

struct Counting;

static NET_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            NET_BYTES.fetch_add(l.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        NET_BYTES.fetch_sub(l.size() as isize, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            NET_BYTES.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const N: u32 = 100_000;
const PEER: u32 = 1;

fn host(i: u32) -> Nlri {
    let net =
        Ipv4Network::new(Ipv4Addr::from(0x0a00_0000 + i), 32).unwrap_or_else(|_| unreachable!());
    Nlri {
        prefix: Prefix::V4(net),
        path_id: 0,
    }
}

fn attrs(nh: u32) -> RouteAttrs {
    RouteAttrs::new(
        PathAttrs {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath {
                segments: vec![AsSegment {
                    kind: SegmentType::Sequence,
                    asns: vec![65001],
                }],
            }),
            ..Default::default()
        },
        IpAddr::V4(Ipv4Addr::from(0xc000_0200 + nh)),
    )
}

fn peer(id: u32) -> PeerInfo {
    PeerInfo {
        id,
        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, id as u8)),
        asn: 65001,
        router_id: Ipv4Addr::new(10, 0, 0, id as u8),
        ibgp: false,
    }
}

fn new_rib() -> (Rib, Arc<RouteAttrs>) {
    let mut rib = Rib::new(64512, Ipv4Addr::new(10, 0, 0, 254));
    rib.register_peer(peer(PEER))
        .unwrap_or_else(|e| panic!("{e}"));
    rib.register_peer(peer(PEER + 1))
        .unwrap_or_else(|e| panic!("{e}"));
    let a = rib.intern(attrs(1));
    (rib, a)
}

fn filled(n: u32) -> Rib {
    let (mut rib, a) = new_rib();
    for i in 0..n {
        let _ = rib.insert(PEER, host(i), a.clone());
    }
    rib
}

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// One peer announcing 1,000,000 unique /32s with one attribute set.
fn report_memory() {
    const M: u32 = 1_000_000;
    let (bytes0, rss0) = (NET_BYTES.load(Ordering::Relaxed), resident_bytes());
    let rib = filled(M);
    let (bytes1, rss1) = (NET_BYTES.load(Ordering::Relaxed), resident_bytes());
    let alloc = (bytes1 - bytes0) as f64 / f64::from(M);
    let rss = match (rss0, rss1) {
        (Some(a), Some(b)) => format!("{:.1}", (b.saturating_sub(a)) as f64 / f64::from(M)),
        _ => "n/a".into(),
    };
    println!(
        "memory: {M} /32 routes from one peer in Adj-RIB-In + Loc-RIB: {alloc:.1} bytes/route allocated, {rss} bytes/route resident"
    );
    black_box(&rib);
}

fn benches(c: &mut Criterion) {
    report_memory();

    let mut g = c.benchmark_group("loc_rib");
    g.throughput(Throughput::Elements(u64::from(N)));
    g.sample_size(10);
    g.bench_function("insert_100k_host_routes", |b| {
        b.iter_batched(
            new_rib,
            |(mut rib, a)| {
                for i in 0..N {
                    let _ = black_box(rib.insert(PEER, host(i), a.clone()));
                }
                rib
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("insert_100k_second_peer", |b| {
        b.iter_batched(
            || {
                let mut rib = filled(N);
                let a = rib.intern(attrs(2));
                (rib, a)
            },
            |(mut rib, a)| {
                for i in 0..N {
                    let _ = black_box(rib.insert(PEER + 1, host(i), a.clone()));
                }
                rib
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("withdraw_100k_host_routes", |b| {
        b.iter_batched(
            || filled(N),
            |mut rib| {
                for i in 0..N {
                    black_box(rib.withdraw(PEER, host(i)));
                }
                rib
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("peer_down_100k_host_routes", |b| {
        b.iter_batched(
            || filled(N),
            |mut rib| {
                black_box(rib.remove_peer(PEER).len());
                rib
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("adj_rib_out");
    g.throughput(Throughput::Elements(u64::from(N)));
    g.sample_size(10);
    // 100,000 prefixes over 100 attribute sets, grouped into 100 announcements.
    let sets: Vec<Arc<RouteAttrs>> = (0..100).map(|i| Arc::new(attrs(i))).collect();
    g.bench_function("set_and_take_pending_100k", |b| {
        b.iter_batched(
            AdjRibOut::new,
            |mut out| {
                for i in 0..N {
                    out.set(host(i), sets[(i % 100) as usize].clone());
                }
                let up = out.take_pending();
                assert_eq!(up.announcements.len(), 100);
                out
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("take_pending_100k", |b| {
        b.iter_batched(
            || {
                let mut out = AdjRibOut::new();
                for i in 0..N {
                    out.set(host(i), sets[(i % 100) as usize].clone());
                }
                out
            },
            |mut out| {
                black_box(out.take_pending());
                out
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("take_pending_limited_1000_chunks", |b| {
        b.iter_batched(
            || {
                let mut out = AdjRibOut::new();
                for i in 0..N {
                    out.set(host(i), sets[(i % 100) as usize].clone());
                }
                out
            },
            |mut out| {
                while out.has_pending() {
                    black_box(out.take_pending_limited(1000));
                }
                out
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(rib, benches);
criterion_main!(rib);
