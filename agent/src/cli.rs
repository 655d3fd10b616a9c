//! The command line (clap derive). Values are checked here, before anything contacts the
//! agent.

use std::net::IpAddr;
use std::path::PathBuf;

use bgp::speaker::TableKind;
use bgp::wire::Prefix;
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

/// The control socket when neither `--socket` nor `$BRAMBLE_SOCKET` is given.
pub const DEFAULT_SOCKET: &str = config::DEFAULT_SOCKET;

/// Bramble: a layer-3 container networking agent (BGP, FIB, IPAM).
#[derive(Debug, Parser)]
#[command(name = "bramble", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent in the foreground; logs go to stderr (RUST_LOG, default info).
    Agent {
        /// The configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// One row per BGP peer.
    Status {
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// One row per node in the etcd node registry.
    Nodes {
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List routes, or announce / withdraw operator-originated ones.
    Routes(RoutesArgs),
    /// IP address management: allocate, release, show usage, check consistency.
    Ipam {
        #[command(subcommand)]
        command: IpamCommand,
    },
    /// Re-read the agent's config file and apply peer and policy changes (like SIGHUP);
    /// policy changes apply without resetting sessions.
    Reload {
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Configuration file tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

/// Where the agent's control socket is.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The agent's control socket.
    #[arg(long, value_name = "PATH", env = "BRAMBLE_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

/// `-o json`.
#[derive(Debug, Clone, Copy, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub format: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Text,
    /// The JSON list the control API returns.
    Json,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RoutesArgs {
    #[command(subcommand)]
    pub action: Option<RoutesAction>,
    /// Which table to list.
    #[arg(long, value_enum, default_value_t = Table::Loc)]
    pub table: Table,
    /// Only paths from (adj-in) or to (adj-out) this peer.
    #[arg(long, value_name = "ADDR")]
    pub peer: Option<IpAddr>,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// The table names of `--table`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Table {
    AdjIn,
    Loc,
    AdjOut,
    Fib,
}

impl From<Table> for TableKind {
    fn from(t: Table) -> Self {
        match t {
            Table::AdjIn => TableKind::AdjIn,
            Table::Loc => TableKind::Loc,
            Table::AdjOut => TableKind::AdjOut,
            Table::Fib => TableKind::Fib,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum RoutesAction {
    /// Originate PREFIX (and/or every prefix of --file) from this node.
    #[command(group(ArgGroup::new("prefixes").required(true).multiple(true)))]
    Announce {
        #[arg(value_parser = parse_prefix, group = "prefixes")]
        prefix: Option<Prefix>,
        /// Also originate every prefix in PATH: one a line, blank lines and `#` comments
        /// ignored. All are sent in one request.
        #[arg(long, value_name = "PATH", group = "prefixes")]
        file: Option<PathBuf>,
        /// Next hop to advertise (default: the session's local address); applies to every
        /// prefix.
        #[arg(long, value_name = "ADDR")]
        next_hop: Option<IpAddr>,
        /// RFC 1997 community, repeatable; applies to every prefix.
        #[arg(long = "community", value_name = "ASN:VAL", value_parser = parse_community)]
        communities: Vec<(u16, u16)>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop originating PREFIX (and/or every prefix of --file).
    #[command(group(ArgGroup::new("prefixes").required(true).multiple(true)))]
    Withdraw {
        #[arg(value_parser = parse_prefix, group = "prefixes")]
        prefix: Option<Prefix>,
        /// Also withdraw every prefix in PATH (same format as for announce).
        #[arg(long, value_name = "PATH", group = "prefixes")]
        file: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum IpamCommand {
    /// Allocate one address for a handle (the same address again if the handle already holds
    /// one of the family).
    Allocate {
        /// Who holds the address (the CNI plugin uses `<network>.<container>.<ifname>`).
        #[arg(long, value_name = "ID")]
        handle: String,
        /// Allocate only from this configured pool.
        #[arg(long, value_name = "CIDR", value_parser = parse_prefix)]
        pool: Option<Prefix>,
        /// Allocate exactly this address.
        #[arg(long, value_name = "ADDR")]
        ip: Option<IpAddr>,
        /// Address family, 4 or 6 (default: from --pool or --ip, else 4).
        #[arg(long, value_name = "4|6", value_parser = parse_family)]
        family: Option<u8>,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Release every address of a handle, or one address (idempotent).
    #[command(group(ArgGroup::new("what").required(true).multiple(false)))]
    Release {
        #[arg(long, value_name = "ID", group = "what")]
        handle: Option<String>,
        #[arg(long, value_name = "ADDR", group = "what")]
        ip: Option<IpAddr>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Usage per pool and per block: size, used, free, owner.
    Show {
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Look for leaked addresses, dangling handles and block/affinity disagreements; exits 1
    /// when the store is not clean (with --release: not clean after the repair).
    Check {
        /// Free leaked addresses, clear dangling handles and repair this node's blocks.
        #[arg(long)]
        release: bool,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate FILE; prints "FILE: ok" or each error as FILE:LINE:COL: reason.
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// A masked IPv4 or IPv6 prefix, e.g. `10.1.0.0/24`.
pub fn parse_prefix(s: &str) -> Result<Prefix, String> {
    if !s.contains('/') {
        return Err(format!(
            "{s:?} is not a prefix (expected ADDR/LEN, e.g. 10.1.0.0/24)"
        ));
    }
    let p: Prefix = s
        .parse()
        .map_err(|_| format!("{s:?} is not a prefix (expected ADDR/LEN, e.g. 10.1.0.0/24)"))?;
    let m = bgp::policy::masked(p);
    if m != p {
        return Err(format!("{s} has host bits set (did you mean {m}?)"));
    }
    Ok(p)
}

/// `4` or `6`.
pub fn parse_family(s: &str) -> Result<u8, String> {
    match s {
        "4" => Ok(4),
        "6" => Ok(6),
        _ => Err(format!("{s:?} is not an address family (expected 4 or 6)")),
    }
}

/// An RFC 1997 community written `ASN:VAL`, both 0..=65535.
pub fn parse_community(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("{s:?} is not a community (expected ASN:VAL, both 0..=65535)");
    let (asn, val) = s.split_once(':').ok_or_else(bad)?;
    Ok((
        asn.parse().map_err(|_| bad())?,
        val.parse().map_err(|_| bad())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            parse_prefix("10.1.0.0/24").unwrap().to_string(),
            "10.1.0.0/24"
        );
        assert_eq!(
            parse_prefix("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(
            parse_prefix("10.1.0.1/24").unwrap_err(),
            "10.1.0.1/24 has host bits set (did you mean 10.1.0.0/24?)"
        );
        assert!(parse_prefix("10.1.0.1").is_err());
        assert!(parse_prefix("10.1.0.0/33").is_err());
    }

    #[test]
    fn communities() {
        assert_eq!(parse_community("65000:100"), Ok((65000, 100)));
        assert!(parse_community("65536:1").is_err());
        assert!(parse_community("1:2:3").is_err());
        assert!(parse_community("no-export").is_err());
    }

    #[test]
    fn routes_forms_parse() {
        let cli =
            Cli::try_parse_from(["bramble", "routes", "--table", "adj-in", "-o", "json"]).unwrap();
        let Command::Routes(r) = cli.command else {
            panic!()
        };
        assert!(r.action.is_none());
        assert_eq!(r.table, Table::AdjIn);
        assert_eq!(r.output.format, Output::Json);

        let cli = Cli::try_parse_from([
            "bramble",
            "routes",
            "announce",
            "10.1.0.0/24",
            "--community",
            "65000:1",
            "--community",
            "65000:2",
            "--socket",
            "/tmp/x.sock",
        ])
        .unwrap();
        let Command::Routes(RoutesArgs {
            action:
                Some(RoutesAction::Announce {
                    communities,
                    client,
                    ..
                }),
            ..
        }) = cli.command
        else {
            panic!()
        };
        assert_eq!(communities, vec![(65000, 1), (65000, 2)]);
        assert_eq!(client.socket, PathBuf::from("/tmp/x.sock"));
    }

    #[test]
    fn ipam_forms_parse() {
        let cli = Cli::try_parse_from([
            "bramble",
            "ipam",
            "allocate",
            "--handle",
            "h1",
            "--pool",
            "10.244.0.0/16",
            "--family",
            "4",
        ])
        .unwrap();
        let Command::Ipam {
            command:
                IpamCommand::Allocate {
                    handle,
                    pool,
                    family,
                    ..
                },
        } = cli.command
        else {
            panic!()
        };
        assert_eq!((handle.as_str(), family), ("h1", Some(4)));
        assert_eq!(pool.unwrap().to_string(), "10.244.0.0/16");
        assert!(Cli::try_parse_from([
            "bramble", "ipam", "allocate", "--handle", "h", "--family", "5"
        ])
        .is_err());
        assert!(Cli::try_parse_from(["bramble", "ipam", "release"]).is_err());
        assert!(Cli::try_parse_from([
            "bramble", "ipam", "release", "--handle", "h", "--ip", "10.0.0.1"
        ])
        .is_err());
        assert!(Cli::try_parse_from(["bramble", "ipam", "release", "--ip", "10.0.0.1"]).is_ok());
        assert!(
            Cli::try_parse_from(["bramble", "ipam", "check", "--release", "-o", "json"]).is_ok()
        );
    }

    #[test]
    fn a_file_makes_the_prefix_optional() {
        let cli =
            Cli::try_parse_from(["bramble", "routes", "withdraw", "--file", "p.txt"]).unwrap();
        let Command::Routes(RoutesArgs {
            action: Some(RoutesAction::Withdraw { prefix, file, .. }),
            ..
        }) = cli.command
        else {
            panic!()
        };
        assert_eq!((prefix, file), (None, Some(PathBuf::from("p.txt"))));
        assert!(Cli::try_parse_from(["bramble", "routes", "announce"]).is_err());
        assert!(Cli::try_parse_from(["bramble", "routes", "withdraw"]).is_err());
    }
}
