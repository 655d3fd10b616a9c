//! The end of the graceful-restart window (`FibHandle::end_stale`): after a restart, the
//! routes the previous run left are counted as stale; once the speaker is done with route
//! selection, those wanted again stay untouched and the rest are deleted at once, long
//! before `stale_after`.

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

#[tokio::test(start_paused = true)]
async fn end_stale_deletes_only_the_routes_nobody_wanted_again() {
    let table = MemoryTable::new(PROTO);
    table.insert_raw(via("10.1.0.0/24", "192.0.2.1"), PROTO);
    table.insert_raw(via("10.2.0.0/24", "192.0.2.1"), PROTO);
    table.insert_raw(via("10.3.0.0/24", "192.0.2.1"), PROTO);
    table.insert_raw(via("10.8.0.0/24", "192.0.2.1"), 4); // foreign
    let cfg = FibConfig {
        stale_after: Duration::from_secs(600),
        ..FibConfig::default()
    };
    let fib = Programmer::spawn_with(table.clone(), &cfg);
    fib.flush().await;
    // Right after start: the previous run's three routes, all stale.
    assert_eq!(fib.status().await.stale, 3);

    // Re-learned: the same value (no write) and a changed one (one replace).
    fib.set(via("10.1.0.0/24", "192.0.2.1"));
    fib.set(via("10.2.0.0/24", "192.0.2.9"));
    fib.end_stale();
    fib.flush().await;
    // One batch: the programmer does not promise an order within it.
    let mut log = table.log();
    log.sort();
    assert_eq!(log, vec!["delete 10.3.0.0/24", "replace 10.2.0.0/24"]);
    assert_eq!(fib.status().await.stale, 0);
    assert_eq!(table.get(&net("10.8.0.0/24")).unwrap().1, 4);

    // Nothing else happens when the original window would have run out.
    tokio::time::sleep(Duration::from_secs(700)).await;
    fib.flush().await;
    assert_eq!(table.log().len(), 2);
    assert_eq!(table.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn without_end_stale_the_window_still_applies() {
    let table = MemoryTable::new(PROTO);
    table.insert_raw(via("10.3.0.0/24", "192.0.2.1"), PROTO);
    let cfg = FibConfig {
        stale_after: Duration::from_secs(30),
        ..FibConfig::default()
    };
    let fib = Programmer::spawn_with(table.clone(), &cfg);
    fib.flush().await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    fib.flush().await;
    assert_eq!(table.len(), 1);
    tokio::time::sleep(Duration::from_secs(30)).await;
    fib.flush().await;
    assert!(table.is_empty());
}
