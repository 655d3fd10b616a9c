//! `bramble`: the agent daemon and its command-line client.

mod advertiser;
use agent::api;
mod cli;
use agent::client;
mod daemon;
mod fib_sink;
mod ipam_cli;
mod ipam_service;
mod lent_watch;
mod local_fib;
mod mesh;
mod origination;
mod prefix_file;
mod registry;
mod reload;
mod server;
mod table;

use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use bgp::speaker::Announce;
use bgp::wire::Prefix;
use clap::Parser;

use crate::cli::{Cli, ClientArgs, Command, ConfigCommand, Output, RoutesAction, RoutesArgs};
use crate::client::Client;
use crate::prefix_file::PrefixFileError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Agent { config } => daemon::run(&config),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => config_check(&file),
        Command::Status { output, client } => finish(status(&client, output.format)),
        Command::Nodes { output, client } => finish(nodes(&client, output.format)),
        Command::Routes(args) => finish(routes(args)),
        Command::Ipam { command } => ipam_cli::run(command),
        Command::Reload { output, client } => finish(reload_config(&client, output.format)),
    }
}

/// `bramble reload`: the agent re-reads its config file.
fn reload_config(client: &ClientArgs, output: Output) -> anyhow::Result<()> {
    let report = match Client::connect(&client.socket)?.request(&api::Request::Reload)? {
        api::Response::Reloaded { report } => report,
        other => anyhow::bail!("unexpected answer from the agent: {other:?}"),
    };
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Text => print!("{}", reload::describe(&report)),
    }
    Ok(())
}

/// Prints a client error as one line and maps it to the exit status.
pub(crate) fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Like config errors: `PATH:LINE: reason` lines, no prefix.
        Err(e) if e.is::<PrefixFileError>() => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("bramble: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn config_check(file: &Path) -> ExitCode {
    match config::load(file) {
        Ok(_) => {
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn status(client: &ClientArgs, output: Output) -> anyhow::Result<()> {
    let peers = Client::connect(&client.socket)?.status()?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&peers)?),
        Output::Text => print!("{}", table::status(&peers, unix_now())),
    }
    Ok(())
}

fn nodes(client: &ClientArgs, output: Output) -> anyhow::Result<()> {
    let (nodes, connected) = match Client::connect(&client.socket)?.request(&api::Request::Nodes)? {
        api::Response::Nodes { nodes, connected } => (nodes, connected),
        other => anyhow::bail!("unexpected answer from the agent: {other:?}"),
    };
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&nodes)?),
        Output::Text => {
            print!("{}", table::nodes(&nodes));
            if !connected {
                eprintln!("bramble: not connected to etcd; this is the last list seen");
            }
        }
    }
    Ok(())
}

fn routes(args: RoutesArgs) -> anyhow::Result<()> {
    match args.action {
        None => {
            let routes =
                Client::connect(&args.client.socket)?.routes(args.table.into(), args.peer)?;
            match args.output.format {
                Output::Json => println!("{}", serde_json::to_string_pretty(&routes)?),
                Output::Text => print!("{}", table::routes(&routes)),
            }
        }
        Some(RoutesAction::Announce {
            prefix,
            file,
            next_hop,
            communities,
            client,
        }) => {
            let prefixes = gather(prefix, file.as_deref())?;
            let routes = prefixes
                .iter()
                .map(|&prefix| Announce {
                    prefix,
                    next_hop,
                    communities: communities.clone(),
                })
                .collect();
            let count = Client::connect(&client.socket)?.announce(routes)?;
            match (prefix, &file) {
                (Some(p), None) => println!("announced {p}"),
                _ => println!("announced {count} of {} prefixes", prefixes.len()),
            }
        }
        Some(RoutesAction::Withdraw {
            prefix,
            file,
            client,
        }) => {
            let prefixes = gather(prefix, file.as_deref())?;
            let sent = prefixes.len();
            let count = Client::connect(&client.socket)?.withdraw(prefixes)?;
            match (prefix, &file) {
                (Some(p), None) => println!("withdrew {p}"),
                _ => println!("withdrew {count} of {sent} prefixes"),
            }
        }
    }
    Ok(())
}

/// The positional prefix (if any) followed by the prefixes of `file` (if any).
fn gather(prefix: Option<Prefix>, file: Option<&Path>) -> anyhow::Result<Vec<Prefix>> {
    let mut prefixes: Vec<Prefix> = prefix.into_iter().collect();
    if let Some(file) = file {
        prefixes.extend(prefix_file::read(file)?);
    }
    Ok(prefixes)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
