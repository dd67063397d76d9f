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
    /// The admin API from the command line: devices (import, get, put, delete, status), alarms,
    /// tenants, centres, tokens. Server and token from --server/--token or VAKA_ADMIN_URL and
    /// VAKA_ADMIN_TOKEN.
    Admin(vaka::admin_cli::AdminArgs),
    /// Work on the store itself.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Make demo certificates for vaka/1 over QUIC: a server CA and a localhost server
    /// certificate, a CA per tenant and a certificate per device of the configuration (CN = device
    /// id). Existing CAs and server certificate are kept; device certificates are written anew.
    Certs {
        #[arg(long, default_value = "config/vaka.toml")]
        config: PathBuf,
        /// Where the PEM files go (the demo config reads them from certs/).
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Open a store that `vaka serve` refuses as damaged: copy it aside (data dir/salvage-<time>),
    /// replay what is intact of its write-ahead log, report what was lost, and leave a store that
    /// `vaka serve` opens, with every id given before still reserved. Stop the engine first.
    Salvage {
        /// The engine's configuration (its `server.data_dir` is salvaged).
        #[arg(
            long,
            conflicts_with = "data_dir",
            required_unless_present = "data_dir"
        )]
        config: Option<PathBuf>,
        /// The data directory, when there is no configuration at hand.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
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
    let began = std::time::Instant::now();
    let cli = Cli::parse();
    match cli.command {
        Command::Admin(args) => match vaka::admin_cli::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
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
        Command::Certs { config, dir } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            for t in &cfg.tenants {
                let devices: Vec<&str> = cfg
                    .devices
                    .iter()
                    .filter(|d| d.tenant == t.id)
                    .map(|d| d.id.as_str())
                    .collect();
                match vaka_ingest::certs::generate_demo(&dir, &t.id, &devices) {
                    Ok(c) => println!(
                        "tenant {}: CA {}, {} device certificates in {}",
                        t.id,
                        c.tenant_ca.display(),
                        c.devices.len(),
                        c.tenant_ca.parent().unwrap_or(&dir).display()
                    ),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            println!(
                "server: {} (CA for devices: {})",
                dir.join("server.pem").display(),
                dir.join("server-ca.pem").display()
            );
            ExitCode::SUCCESS
        }
        Command::Store {
            command: StoreCommand::Salvage { config, data_dir },
        } => {
            let data_dir = match (data_dir, config) {
                (Some(d), _) => d,
                (None, Some(c)) => match load(&c) {
                    Ok(cfg) => cfg.server.data_dir,
                    Err(code) => return code,
                },
                (None, None) => unreachable!("clap requires one of them"),
            };
            match vaka::salvage::run(&data_dir) {
                Ok(report) => {
                    print!("{}", vaka::salvage::render(&report));
                    println!("`vaka serve` opens this store now");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
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
            match rt.block_on(vaka::serve::run(cfg, began)) {
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
