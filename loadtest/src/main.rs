//! `vaka-load SCENARIO [--rate N] [--duration S] [--transport quic|sip-udp|sip-tcp] [--peer mosquitto] [--json F]`
//! and `vaka-load fleet-config`. See the crate docs of `vaka_load` and README.md.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use vaka_load::report::{table, Extra};
use vaka_load::{fleet, plot, run, Options};

#[derive(Parser)]
#[command(
    name = "vaka-load",
    version,
    about = "Load Vaka with simulated device fleets and alarm centres; report latency and throughput",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: Option<Options>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the plot (latency percentiles and throughput over time) here, as SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print a copy of a vaka.toml with N more load-test devices (then make their certificates
    /// with `vaka certs --config NEW --dir certs`).
    FleetConfig {
        #[arg(long, default_value = "config/vaka.toml")]
        base: PathBuf,
        #[arg(long, default_value = "demo")]
        tenant: String,
        #[arg(long)]
        devices: usize,
        #[arg(long, default_value = "load-pass")]
        password: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Cmd::FleetConfig {
        base,
        tenant,
        devices,
        password,
    }) = &cli.cmd
    {
        return match std::fs::read_to_string(base) {
            Ok(text) => {
                print!(
                    "{}",
                    fleet::write_fleet_config(&text, tenant, *devices, password)
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vaka-load: {}: {e}", base.display());
                ExitCode::FAILURE
            }
        };
    }
    let Some(opts) = &cli.run else {
        eprintln!("vaka-load: a scenario is required (see --help)");
        return ExitCode::from(2);
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vaka-load: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bar = (!cli.quiet).then(|| {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} sent  {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b
    });
    let outcome = rt.block_on(run(opts, bar.clone()));
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let out = match outcome {
        Ok(o) => o,
        Err(e) => {
            eprintln!("vaka-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut rows = vec![(&out.ours.side, extra(&out.ours))];
    if let Some(p) = &out.peer {
        rows.push((&p.side, extra(p)));
    }
    print!("{}", table(&rows, out.report.ratio));
    let title = format!(
        "{} over {}",
        opts.scenario.name(),
        vaka_load::run::transport_name(opts.transport)
    );
    let mut ok = true;
    if let Some(path) = &cli.json {
        if let Err(e) = std::fs::write(path, out.report.to_json() + "\n") {
            eprintln!("vaka-load: {}: {e}", path.display());
            ok = false;
        }
    }
    if let Some(path) = &cli.plot {
        if let Err(e) = plot::write_svg(path, &title, &out.ours.measured.timeline) {
            eprintln!("vaka-load: plot: {e}");
            ok = false;
        }
    }
    if out.ours.side.lost > 0 {
        eprintln!(
            "vaka-load: {} alarms were acknowledged and never offered to the centre",
            out.ours.side.lost
        );
        ok = false;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn extra(s: &vaka_load::run::SideRun) -> Extra<'_> {
    Extra {
        label: &s.label,
        not_treated: s.measured.counts.not_treated,
        elapsed_s: s.measured.elapsed.as_secs_f64(),
        server: s.server.as_ref(),
    }
}
