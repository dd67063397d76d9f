//! `vaka`: the social-care alarm engine.
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vaka::config::Config;

#[derive(Parser)]
#[command(
    name = "vaka",
    version,
    about = "Receives social-care alarms, stores them durably and delivers them to alarm centres"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine.
    Serve {
        #[arg(long, default_value = "config/vaka.toml")]
        config: PathBuf,
    },
    /// Validate a configuration file and exit (0 valid, 2 invalid).
    CheckConfig { file: PathBuf },
}

/// Exit code for a bad configuration (and bad usage, as clap does).
const EXIT_CONFIG: u8 = 2;

fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|errors| {
        for e in &errors {
            eprintln!("error: {}: {e}", path.display());
        }
        ExitCode::from(EXIT_CONFIG)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match load(&file) {
            Ok(cfg) => {
                println!(
                    "{}: ok ({} tenants, {} centres, {} devices)",
                    file.display(),
                    cfg.tenants.len(),
                    cfg.centres.len(),
                    cfg.devices.len()
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Serve { config } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            vaka::observe::init_logging(cfg.server.log_format, &cfg.server.log_level);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(vaka::serve::run(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
