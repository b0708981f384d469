//! The `basalt` binary: parses the command line, runs it, maps errors to exit codes
//! (0 ok, 1 error, 2 usage, 3 cluster not reachable, 4 check found problems).

use basalt_cli::commands::{run, Cli};
use basalt_cli::error::EXIT_OK;
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // The transport warns about unauthenticated connections on every client
                // it makes; that is for daemons, not for a CLI call.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("warn,basalt_transport::config=error")
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    // clap prints usage errors itself and exits with 2.
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut progress = |msg: &str| eprintln!("{msg}");
    match run(cli, &mut out, &mut progress) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("basalt: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
