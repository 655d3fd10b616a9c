//! `bramble ipam ...`: the client side of the IPAM requests and their human output.

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde::Deserialize;
use serde_json::{Number, Value};

use crate::api::IpamAddress;
use crate::cli::{IpamCommand, Output};
use crate::client::Client;
use crate::table::render;

/// Runs one `bramble ipam` command; `check` exits 1 when the store is not clean.
pub fn run(command: IpamCommand) -> ExitCode {
    match command {
        IpamCommand::Allocate {
            handle,
            pool,
            ip,
            family,
            output,
            client,
        } => crate::finish((|| {
            let got = Client::connect(&client.socket)?.ipam_allocate(
                &handle,
                pool,
                ip,
                family,
                BTreeMap::new(),
            )?;
            match output.format {
                Output::Json => println!("{}", serde_json::to_string_pretty(&got)?),
                Output::Text => print!("{}", allocated(&got)),
            }
            Ok(())
        })()),
        IpamCommand::Release { handle, ip, client } => crate::finish((|| {
            let count = Client::connect(&client.socket)?.ipam_release(handle.as_deref(), ip)?;
            let what = handle.map_or_else(
                || ip.map(|i| i.to_string()).unwrap_or_default(),
                |h| format!("handle {h}"),
            );
            println!("released {count} address{} ({what})", plural(count));
            Ok(())
        })()),
        IpamCommand::Show { output, client } => crate::finish((|| {
            let pools = Client::connect(&client.socket)?.ipam_show()?;
            match output.format {
                Output::Json => println!("{}", serde_json::to_string_pretty(&pools)?),
                Output::Text => print!("{}", usage_table(&pools)?),
            }
            Ok(())
        })()),
        IpamCommand::Check {
            release,
            output,
            client,
        } => {
            let outcome = Client::connect(&client.socket)
                .map_err(anyhow::Error::from)
                .and_then(|mut c| Ok(c.ipam_check(None, release)?));
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) => return crate::finish(Err(e)),
            };
            match output.format {
                Output::Json => {
                    let all = serde_json::json!({
                        "clean": outcome.clean,
                        "released": outcome.released,
                        "report": outcome.report,
                    });
                    match serde_json::to_string_pretty(&all) {
                        Ok(s) => println!("{s}"),
                        Err(e) => return crate::finish(Err(e.into())),
                    }
                }
                Output::Text => {
                    print!("{}", check_text(&outcome.report));
                    if release {
                        println!("released {} stale entr{}", outcome.released, {
                            if outcome.released == 1 {
                                "y"
                            } else {
                                "ies"
                            }
                        });
                    }
                    println!("{}", if outcome.clean { "clean" } else { "not clean" });
                }
            }
            if outcome.clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "es"
    }
}

/// One line per address: `10.244.0.5/32 handle h1 block 10.244.0.0/26`.
fn allocated(got: &[IpamAddress]) -> String {
    got.iter()
        .map(|a| {
            let borrowed = if a.borrowed { " (borrowed)" } else { "" };
            format!(
                "{}/{} handle {} block {}{borrowed}\n",
                a.ip, a.prefix_len, a.handle, a.block
            )
        })
        .collect()
}

#[derive(Deserialize)]
struct PoolView {
    pool: String,
    block_size: u8,
    disabled: bool,
    size: Number,
    used: Number,
    reserved: Number,
    free: Number,
    blocks: Vec<BlockView>,
}

#[derive(Deserialize)]
struct BlockView {
    cidr: String,
    owner: Option<String>,
    size: u32,
    used: u32,
    reserved: u32,
    free: u32,
}

/// `bramble ipam show`: a row per pool, then an indented row per block.
fn usage_table(pools: &Value) -> anyhow::Result<String> {
    let pools: Vec<PoolView> = serde_json::from_value(pools.clone())
        .map_err(|e| anyhow::anyhow!("the agent's usage report was not understood: {e}"))?;
    let mut rows = Vec::new();
    for p in &pools {
        let note = if p.disabled { "pool, disabled" } else { "pool" };
        rows.push(vec![
            p.pool.clone(),
            format!("{note}, /{} blocks", p.block_size),
            p.size.to_string(),
            p.used.to_string(),
            p.reserved.to_string(),
            p.free.to_string(),
        ]);
        for b in &p.blocks {
            rows.push(vec![
                format!("  {}", b.cidr),
                b.owner.clone().unwrap_or_else(|| "-".into()),
                b.size.to_string(),
                b.used.to_string(),
                b.reserved.to_string(),
                b.free.to_string(),
            ]);
        }
    }
    Ok(render(
        &["POOL / BLOCK", "OWNER", "SIZE", "USED", "RESERVED", "FREE"],
        &rows,
    ))
}

/// `bramble ipam check`: one line per finding.
fn check_text(report: &Value) -> String {
    let list = |key: &str| {
        report
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let s = |v: &Value, key: &str| match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    };
    let mut out = String::new();
    for l in list("leaked") {
        out.push_str(&format!(
            "leaked {} in {} (handle {}, node {}): {}\n",
            s(&l, "ip"),
            s(&l, "block"),
            s(&l, "handle"),
            s(&l, "node"),
            s(&l, "reason")
        ));
    }
    for d in list("dangling_handles") {
        let entry = d.get("entry").map_or_else(|| "-".into(), |e| s(e, "ip"));
        out.push_str(&format!("dangling handle {} ({entry})\n", s(&d, "handle")));
    }
    for b in list("block_issues") {
        out.push_str(&format!(
            "block {} (node {}): {}\n",
            s(&b, "block"),
            s(&b, "node"),
            s(&b, "kind")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_table_lists_pools_then_their_blocks() {
        let v = serde_json::json!([{
            "pool": "10.99.0.0/30", "block_size": 30, "disabled": false,
            "size": 4, "used": 1, "reserved": 0, "free": 3,
            "blocks": [{"cidr": "10.99.0.0/30", "owner": "n1", "size": 4, "used": 1,
                        "reserved": 0, "free": 3}]
        }, {
            "pool": "fd00::/48", "block_size": 122, "disabled": false,
            "size": 1.2089258196146292e24, "used": 0, "reserved": 0,
            "free": 1.2089258196146292e24, "blocks": []
        }]);
        assert_eq!(
            usage_table(&v).unwrap(),
            "POOL / BLOCK    OWNER              SIZE                    USED  RESERVED  FREE\n\
             10.99.0.0/30    pool, /30 blocks   4                       1     0         3\n  \
             10.99.0.0/30  n1                 4                       1     0         3\n\
             fd00::/48       pool, /122 blocks  1.2089258196146292e+24  0     0         1.2089258196146292e+24\n"
        );
        assert!(usage_table(&serde_json::json!({"x": 1})).is_err());
    }

    #[test]
    fn check_text_has_a_line_per_finding() {
        let v = serde_json::json!({
            "leaked": [{"ip": "10.0.0.5", "block": "10.0.0.4/30", "handle": "h", "seq": 3,
                        "node": "n1", "reason": "HandleNotLive"}],
            "dangling_handles": [{"handle": "g", "entry": {"ip": "10.0.0.7",
                                  "block": "10.0.0.4/30", "seq": 4}}],
            "block_issues": [{"block": "10.0.0.0/30", "node": "n1",
                              "kind": "PendingWithoutBlock"}]
        });
        assert_eq!(
            check_text(&v),
            "leaked 10.0.0.5 in 10.0.0.4/30 (handle h, node n1): HandleNotLive\n\
             dangling handle g (10.0.0.7)\n\
             block 10.0.0.0/30 (node n1): PendingWithoutBlock\n"
        );
        assert_eq!(
            check_text(
                &serde_json::json!({"leaked": [], "dangling_handles": [], "block_issues": []})
            ),
            ""
        );
    }
}
