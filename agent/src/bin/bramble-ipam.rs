//! `bramble-ipam`: a CNI IPAM plugin (spec 1.1.0) that is a thin client of the bramble
//! agent's control socket. ADD allocates one address per configured family under the handle
//! `<network>.<container id>.<ifname>`, DEL releases the handle, CHECK compares it with
//! `prevResult`, GC releases this network's handles that are not valid attachments any more,
//! STATUS asks whether the agent can allocate, VERSION lists the supported spec versions.
//!
//! Results go to stdout as the spec's JSON; failures as the spec's error object on stdout with
//! exit status 1. Nothing on stdin or in the environment can make it panic.

#[path = "bramble_ipam/error.rs"]
mod error;
#[path = "bramble_ipam/netconf.rs"]
mod netconf;
#[path = "bramble_ipam/ops.rs"]
mod ops;
#[path = "bramble_ipam/result.rs"]
mod result;

use std::io::{Read, Write};
use std::net::IpAddr;
use std::process::ExitCode;

use crate::error::{CniError, INVALID_CONFIG, INVALID_ENV, IO_FAILURE};
use crate::netconf::{is_cni_identifier, NetConf, LATEST, SUPPORTED_VERSIONS};

/// Stdin larger than this is refused (a netconf is a few KiB; GC lists can be long).
const MAX_STDIN: u64 = 16 << 20;

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

fn main() -> ExitCode {
    let (version, outcome) = run(|k| std::env::var(k).ok(), std::io::stdin());
    let mut stdout = std::io::stdout().lock();
    let (text, code) = match outcome {
        Ok(Some(out)) => (out, ExitCode::SUCCESS),
        Ok(None) => (String::new(), ExitCode::SUCCESS),
        Err(e) => (e.to_json(&version), ExitCode::FAILURE),
    };
    if !text.is_empty() {
        // Nothing useful can be done if stdout is gone; the exit status still tells.
        let _ = writeln!(stdout, "{text}");
    }
    code
}

/// Runs one command. Returns the `cniVersion` to put in an error, and the output (None =
/// success without output, as DEL, CHECK, GC and STATUS have).
fn run(
    env: impl Fn(&str) -> Option<String>,
    stdin: impl Read,
) -> (String, Result<Option<String>, CniError>) {
    let Some(command) = env("CNI_COMMAND").filter(|c| !c.is_empty()) else {
        return (
            LATEST.into(),
            Err(CniError::new(INVALID_ENV, "CNI_COMMAND is not set")),
        );
    };
    let mut buf = Vec::new();
    if let Err(e) = stdin.take(MAX_STDIN).read_to_end(&mut buf) {
        return (
            LATEST.into(),
            Err(CniError::new(IO_FAILURE, "cannot read stdin").with_details(e.to_string())),
        );
    }
    if command == "VERSION" {
        return (LATEST.into(), Ok(Some(version_info())));
    }
    if !["ADD", "DEL", "CHECK", "GC", "STATUS"].contains(&command.as_str()) {
        return (
            LATEST.into(),
            Err(CniError::new(
                INVALID_ENV,
                format!("unknown CNI_COMMAND {command:?}"),
            )),
        );
    }
    let conf = match NetConf::parse(&buf) {
        Ok(c) => c,
        Err(e) => return (LATEST.into(), Err(e)),
    };
    let version = conf.supported_version().unwrap_or(LATEST).to_string();
    let outcome = dispatch(&command, &conf, &env);
    (version, outcome)
}

fn dispatch(
    command: &str,
    conf: &NetConf,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, CniError> {
    match command {
        "ADD" => {
            let version = conf.version_at_least("0.3.0", "ADD")?;
            let ipam = conf.ipam()?;
            let container_id = container_id(env)?;
            let netns = required(env, "CNI_NETNS")?;
            let ifname = ifname(env)?;
            let requested = requested_ips(env)?;
            let att = ops::Attachment {
                container_id: &container_id,
                netns: &netns,
                ifname: &ifname,
            };
            let allocs = ops::add(conf, ipam, &att, &requested)?;
            Ok(Some(result::render(&version, ipam, &allocs)))
        }
        "DEL" => {
            conf.version_at_least("0.3.0", "DEL")?;
            let ipam = conf.ipam()?;
            ops::del(conf, ipam, &container_id(env)?, &ifname(env)?)?;
            Ok(None)
        }
        "CHECK" => {
            conf.version_at_least("0.4.0", "CHECK")?;
            let ipam = conf.ipam()?;
            let container_id = container_id(env)?;
            required(env, "CNI_NETNS")?;
            ops::check(conf, ipam, &container_id, &ifname(env)?)?;
            Ok(None)
        }
        "GC" => {
            conf.version_at_least("1.1.0", "GC")?;
            ops::gc(conf, conf.ipam()?)?;
            Ok(None)
        }
        _ => {
            conf.version_at_least("1.1.0", "STATUS")?;
            ops::status(conf.ipam()?)?;
            Ok(None)
        }
    }
}

/// The VERSION answer.
fn version_info() -> String {
    serde_json::json!({
        "cniVersion": LATEST,
        "supportedVersions": SUPPORTED_VERSIONS,
    })
    .to_string()
}

fn required(env: &impl Fn(&str) -> Option<String>, name: &str) -> Result<String, CniError> {
    env(name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| CniError::new(INVALID_ENV, format!("{name} is not set")))
}

fn container_id(env: &impl Fn(&str) -> Option<String>) -> Result<String, CniError> {
    let id = required(env, "CNI_CONTAINERID")?;
    if !is_cni_identifier(&id) {
        return Err(CniError::new(
            INVALID_ENV,
            format!("CNI_CONTAINERID {id:?} has characters other than letters, digits, _ . -"),
        ));
    }
    Ok(id)
}

fn ifname(env: &impl Fn(&str) -> Option<String>) -> Result<String, CniError> {
    let name = required(env, "CNI_IFNAME")?;
    let bad = name.len() > MAX_IFNAME
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if bad {
        return Err(CniError::new(
            INVALID_ENV,
            format!("CNI_IFNAME {name:?} is not a valid interface name"),
        ));
    }
    Ok(name)
}

/// `IP=a[,b]` in `CNI_ARGS` (`K=V;K=V`), as `host-local` takes it; other keys are ignored.
fn requested_ips(env: &impl Fn(&str) -> Option<String>) -> Result<Vec<IpAddr>, CniError> {
    let Some(args) = env("CNI_ARGS") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for pair in args.split(';').filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(CniError::new(
                INVALID_ENV,
                format!("CNI_ARGS: {pair:?} is not KEY=VALUE"),
            ));
        };
        if key == "IP" {
            for ip in value.split(',') {
                let ip = ip.parse().map_err(|_| {
                    CniError::new(
                        INVALID_CONFIG,
                        format!("CNI_ARGS: IP={ip} is not an address"),
                    )
                })?;
                out.push(ip);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run_with(vars: &[(&str, &str)], stdin: &str) -> (String, Result<Option<String>, CniError>) {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        run(|k| map.get(k).cloned(), stdin.as_bytes())
    }

    #[test]
    fn version_lists_supported_versions() {
        let (_, out) = run_with(&[("CNI_COMMAND", "VERSION")], "garbage");
        let v: serde_json::Value = serde_json::from_str(&out.unwrap().unwrap()).unwrap();
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(v["supportedVersions"].as_array().unwrap().len(), 5);
    }

    #[test]
    fn environment_errors_are_code_4() {
        let conf = r#"{"cniVersion":"1.0.0","name":"n","ipam":{"socket":"/nonexistent"}}"#;
        let code = |vars: &[(&str, &str)]| run_with(vars, conf).1.unwrap_err().code;
        assert_eq!(code(&[]), INVALID_ENV);
        assert_eq!(code(&[("CNI_COMMAND", "FROB")]), INVALID_ENV);
        assert_eq!(
            code(&[
                ("CNI_COMMAND", "ADD"),
                ("CNI_NETNS", "/x"),
                ("CNI_IFNAME", "eth0")
            ]),
            INVALID_ENV
        );
        let bad_if = [
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "a/b"),
        ];
        assert_eq!(code(&bad_if), INVALID_ENV);
        let bad_id = [
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c 1"),
            ("CNI_IFNAME", "eth0"),
        ];
        assert_eq!(code(&bad_id), INVALID_ENV);
    }

    #[test]
    fn cni_args_ip() {
        let env = |k: &str| (k == "CNI_ARGS").then(|| "FOO=1;IP=10.0.0.7,fd00::7".to_string());
        assert_eq!(requested_ips(&env).unwrap().len(), 2);
        let bad = |k: &str| (k == "CNI_ARGS").then(|| "IP=nope".to_string());
        assert_eq!(requested_ips(&bad).unwrap_err().code, INVALID_CONFIG);
    }
}
