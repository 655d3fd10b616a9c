//! UPDATE codec throughput on a full table of /32 prefixes, in prefixes per second.

use std::hint::black_box;
use std::net::Ipv4Addr;

use bgp::wire::*;
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const PREFIXES: u32 = 100_000;

fn table(add_path: bool) -> Vec<Nlri> {
    (0..PREFIXES)
        .map(|i| Nlri {
            prefix: IpNetwork::V4(Ipv4Network::new(Ipv4Addr::from(0x0a00_0000 + i), 32).unwrap()),
            path_id: if add_path { i % 4 } else { 0 },
        })
        .collect()
}

fn attrs() -> PathAttrs {
    PathAttrs {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath {
            segments: vec![AsSegment {
                kind: SegmentType::Sequence,
                asns: vec![64512, 65000],
            }],
        }),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        med: Some(50),
        communities: vec![Community::new(65000, 100)],
        ..Default::default()
    }
}

fn decode_all(mut buf: &[u8], ctx: &DecodeContext) -> usize {
    let mut prefixes = 0;
    while let Ok(Some(len)) = message_len(buf, ctx.max_message_len()) {
        if let Ok(Message::Update(u)) = decode_message(&buf[..len], ctx) {
            prefixes += u.nlri.len();
        }
        buf = &buf[len..];
    }
    prefixes
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("update_v4_32");
    group.throughput(Throughput::Elements(u64::from(PREFIXES)));
    for (name, add_path, extended) in [
        ("plain", false, false),
        ("add_path", true, false),
        ("extended_message", false, true),
    ] {
        let list = table(add_path);
        let families = if add_path {
            vec![Family::IPV4_UNICAST]
        } else {
            vec![]
        };
        let enc = EncodeContext {
            four_octet_as: true,
            extended_message: extended,
            add_path_tx: families.clone(),
        };
        let dec = DecodeContext {
            four_octet_as: true,
            extended_message: extended,
            add_path_rx: families,
            ..Default::default()
        };
        let attrs = attrs();
        let mut packed = BytesMut::new();
        encode_announcements(&attrs, Family::IPV4_UNICAST, None, &list, &enc, &mut packed).unwrap();
        assert_eq!(decode_all(&packed, &dec), list.len());

        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| decode_all(black_box(&packed), &dec))
        });
        group.bench_function(format!("encode/{name}"), |b| {
            let mut out = BytesMut::with_capacity(packed.len());
            b.iter(|| {
                out.clear();
                encode_announcements(
                    &attrs,
                    Family::IPV4_UNICAST,
                    None,
                    black_box(&list),
                    &enc,
                    &mut out,
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
