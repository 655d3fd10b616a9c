//! `bramble`: the agent daemon and its command-line client.

mod api;
mod cli;
mod client;
mod daemon;
mod server;
mod table;

use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use bgp::speaker::Announce;
use clap::Parser;

use crate::cli::{Cli, ClientArgs, Command, ConfigCommand, Output, RoutesAction, RoutesArgs};
use crate::client::Client;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Agent { config } => daemon::run(&config),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => config_check(&file),
        Command::Status { output, client } => finish(status(&client, output.format)),
        Command::Routes(args) => finish(routes(args)),
    }
}

/// Prints a client error as one line and maps it to the exit status.
fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
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
            next_hop,
            communities,
            client,
        }) => {
            Client::connect(&client.socket)?.announce(vec![Announce {
                prefix,
                next_hop,
                communities,
            }])?;
            println!("announced {prefix}");
        }
        Some(RoutesAction::Withdraw { prefix, client }) => {
            Client::connect(&client.socket)?.withdraw(vec![prefix])?;
            println!("withdrew {prefix}");
        }
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
