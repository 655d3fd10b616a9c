//! Programmer logic (diff, coalescing, stale delay, conflicts, retries, repair) against
//! the in-memory table.

use std::net::IpAddr;
use std::time::Duration;

use fib::{FibConfig, MemoryTable, NextHop, Programmer, Route};
use ipnetwork::IpNetwork;

const PROTO: u8 = 196;

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn via(dst: &str, gw: &str) -> Route {
    Route::unicast(net(dst), vec![NextHop::via(ip(gw))])
}

fn cfg(stale_after: Duration) -> FibConfig {
    FibConfig {
        stale_after,
        resync: Duration::from_secs(90),
        ..FibConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn changes_queued_for_one_destination_are_written_once() {
    let table = MemoryTable::new(PROTO);
    let fib = Programmer::spawn_with(table.clone(), &cfg(Duration::ZERO));
    for i in 1..=10 {
        fib.set(via("10.0.0.0/24", &format!("192.0.2.{i}")));
    }
    fib.flush().await;
    assert_eq!(table.ops().adds, 1);
    assert_eq!(table.ops().replaces, 0);
    assert_eq!(
        table.get(&net("10.0.0.0/24")).unwrap().0,
        via("10.0.0.0/24", "192.0.2.10")
    );

    // Set then remove while queued: nothing is written at all.
    fib.set(via("10.0.1.0/24", "192.0.2.1"));
    fib.remove(net("10.0.1.0/24"));
    fib.flush().await;
    assert_eq!(table.log(), vec!["add 10.0.0.0/24".to_string()]);

    // A change of an installed route is a replace, a removal a delete.
    fib.set(via("10.0.0.0/24", "192.0.2.99"));
    fib.flush().await;
    fib.remove(net("10.0.0.0/24"));
    fib.flush().await;
    assert_eq!(
        table.log(),
        vec![
            "add 10.0.0.0/24",
            "replace 10.0.0.0/24",
            "delete 10.0.0.0/24"
        ]
    );
    assert!(table.is_empty());
}

#[tokio::test(start_paused = true)]
async fn start_adopts_right_routes_fixes_wrong_ones_and_deletes_stale_after_delay() {
    let table = MemoryTable::new(PROTO);
    table.insert_raw(via("10.1.0.0/24", "192.0.2.1"), PROTO);
    table.insert_raw(via("10.2.0.0/24", "192.0.2.1"), PROTO);
    // ECMP in another order than we will ask for.
    table.insert_raw(
        Route::unicast(
            net("10.3.0.0/24"),
            vec![
                NextHop::via_dev(ip("192.0.2.2"), 4),
                NextHop::via_dev(ip("192.0.2.1"), 3),
            ],
        ),
        PROTO,
    );
    table.insert_raw(Route::blackhole(net("10.4.0.0/24")), PROTO);
    table.insert_raw(via("10.9.0.0/24", "192.0.2.1"), PROTO); // stale
    table.insert_raw(via("10.8.0.0/24", "192.0.2.1"), 4); // foreign, not wanted

    let fib = Programmer::spawn_with(table.clone(), &cfg(Duration::from_secs(30)));
    fib.set(via("10.1.0.0/24", "192.0.2.1"));
    fib.set(via("10.2.0.0/24", "192.0.2.7")); // wrong gateway in the kernel
    fib.set(Route::unicast(
        net("10.3.0.0/24"),
        vec![NextHop::via(ip("192.0.2.1")), NextHop::via(ip("192.0.2.2"))],
    ));
    fib.set(Route::blackhole(net("10.4.0.0/24")));
    fib.flush().await;
    assert_eq!(table.log(), vec!["replace 10.2.0.0/24"]);
    assert!(
        table.get(&net("10.9.0.0/24")).is_some(),
        "stale route kept during the window"
    );

    tokio::time::sleep(Duration::from_secs(31)).await;
    fib.flush().await;
    assert_eq!(
        table.log(),
        vec!["replace 10.2.0.0/24", "delete 10.9.0.0/24"]
    );
    assert_eq!(
        table.get(&net("10.8.0.0/24")).unwrap().1,
        4,
        "foreign route untouched"
    );
    let status = fib.status().await;
    assert_eq!(status.installed.len(), 4);
    assert!(status.failed.is_empty());
}

#[tokio::test(start_paused = true)]
async fn stale_route_wanted_again_within_the_window_is_not_touched() {
    let table = MemoryTable::new(PROTO);
    table.insert_raw(via("10.9.0.0/24", "192.0.2.1"), PROTO);
    let fib = Programmer::spawn_with(table.clone(), &cfg(Duration::from_secs(30)));
    fib.flush().await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    fib.set(via("10.9.0.0/24", "192.0.2.1"));
    fib.flush().await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    fib.flush().await;
    assert!(table.log().is_empty());
}

#[tokio::test(start_paused = true)]
async fn foreign_route_is_left_and_counted() {
    let table = MemoryTable::new(PROTO);
    table.insert_raw(via("10.5.0.0/24", "192.0.2.50"), 4);
    let fib = Programmer::spawn_with(table.clone(), &cfg(Duration::ZERO));
    fib.set(via("10.5.0.0/24", "192.0.2.1"));
    fib.set(via("10.6.0.0/24", "192.0.2.1"));
    fib.flush().await;
    assert_eq!(
        table.get(&net("10.5.0.0/24")).unwrap(),
        (via("10.5.0.0/24", "192.0.2.50"), 4)
    );
    let status = fib.status().await;
    assert_eq!(status.foreign_conflicts, 1);
    assert_eq!(status.installed.len(), 1);
    assert_eq!(status.failed.len(), 1);
    assert!(
        status.failed[0].1.contains("File exists"),
        "{:?}",
        status.failed
    );

    // The foreign route goes away: the next full resync takes the destination.
    table.delete_raw(net("10.5.0.0/24")); // foreign: no event
    tokio::time::sleep(Duration::from_secs(91)).await;
    fib.flush().await;
    assert_eq!(
        table.get(&net("10.5.0.0/24")).unwrap(),
        (via("10.5.0.0/24", "192.0.2.1"), PROTO)
    );
    assert_eq!(fib.status().await.foreign_conflicts, 1);
}

#[tokio::test(start_paused = true)]
async fn unreachable_gateway_fails_alone_and_is_retried() {
    let table = MemoryTable::new(PROTO);
    table.set_unreachable(ip("198.51.100.1"), true);
    let fib = Programmer::spawn_with(table.clone(), &cfg(Duration::ZERO));
    fib.set(via("10.7.0.0/24", "198.51.100.1"));
    for i in 0..50 {
        fib.set(via(&format!("10.100.{i}.0/24"), "192.0.2.1"));
    }
    fib.flush().await;
    let status = fib.status().await;
    assert_eq!(status.installed.len(), 50);
    assert_eq!(status.failed.len(), 1);
    assert_eq!(status.failed[0].0, net("10.7.0.0/24"));
    assert!(
        status.failed[0].1.contains("Network is unreachable"),
        "{:?}",
        status.failed
    );

    table.set_unreachable(ip("198.51.100.1"), false);
    tokio::time::sleep(Duration::from_secs(5)).await;
    fib.flush().await;
    let status = fib.status().await;
    assert_eq!(status.installed.len(), 51);
    assert!(status.failed.is_empty());
}

#[tokio::test(start_paused = true)]
async fn route_deleted_by_someone_else_is_put_back() {
    let table = MemoryTable::new(PROTO);
    let fib = Programmer::spawn_with(table.clone(), &cfg(Duration::ZERO));
    fib.set(via("10.10.0.0/24", "192.0.2.1"));
    fib.flush().await;
    table.delete_raw(net("10.10.0.0/24"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    fib.flush().await;
    assert!(table.get(&net("10.10.0.0/24")).is_some());
    assert_eq!(fib.status().await.repaired, 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_leaves_routes_and_ends_the_task() {
    let table = MemoryTable::new(PROTO);
    let fib = Programmer::spawn_with(table.clone(), &cfg(Duration::ZERO));
    fib.set(via("10.11.0.0/24", "192.0.2.1"));
    fib.flush().await;
    fib.shutdown().await;
    assert_eq!(table.len(), 1);
}
