//! The `hostmig` command line. Errors end here as one line on stderr and a
//! non-zero exit.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

#[derive(Parser)]
#[command(
    name = "hostmig",
    version,
    about = "Moves web-hosting accounts between servers"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(flatten)]
    client: hostmig::client::cli::ClientOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (Plesk API RPC `migration` operator).
    Serve {
        /// The configuration file (see deploy/hostmig.example.toml).
        #[arg(long)]
        config: PathBuf,
    },
    /// Read a password on standard input and print its argon2id hash for api.admin_password_hash.
    HashPassword,
    /// Migrate a generated source into a fresh destination on this machine,
    /// through the real API, and verify what arrived.
    Sandbox {
        /// Size of the generated source: tiny, small, medium or large.
        #[arg(long, default_value = "small")]
        profile: String,
        /// Stop everything after the summary instead of waiting for Ctrl-C.
        #[arg(long)]
        exit: bool,
        /// Where the servers keep their files (default: a new directory
        /// under the temporary directory, removed at the end).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Keep the default directory at the end.
        #[arg(long)]
        keep: bool,
        /// Shape the link to the source's host to this many Mbit/s, both
        /// ways (needs root: the source is a host of its own).
        #[arg(long, value_name = "MBIT", value_parser = clap::value_parser!(u64).range(1..=100_000))]
        link_mbit: Option<u64>,
        /// Start the servers and wait, migrating nothing: drive them with
        /// `hostmig migrate ... --watch` (the commands are printed).
        #[arg(long)]
        no_migrate: bool,
    },
    #[command(flatten)]
    Client(hostmig::client::cli::ClientCommand),
}

fn main() {
    let cli = Cli::parse();
    if let Command::Client(command) = cli.command {
        // The client talks to a daemon; it logs nothing of its own.
        std::process::exit(hostmig::client::cli::run(&cli.client, command));
    }
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve { config } => serve(&config),
        Command::HashPassword => hash_password(),
        Command::Sandbox {
            profile,
            exit,
            dir,
            keep,
            link_mbit,
            no_migrate,
        } => sandbox(&profile, exit, dir, keep, link_mbit, no_migrate),
        Command::Client(_) => unreachable!("run above"),
    };
    if let Err(e) = result {
        eprintln!("hostmig: error: {e:#}");
        std::process::exit(1);
    }
}

fn serve(path: &std::path::Path) -> anyhow::Result<()> {
    let config = hostmig::config::Config::load(path)?;
    hostmig::serve::serve(config)?;
    // The journal is closed: threads still copying for migrations that go
    // on at the next start (as after a crash) are not waited for.
    std::process::exit(0)
}

/// Set by SIGINT or SIGTERM while the sandbox runs.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn sandbox(
    profile: &str,
    exit: bool,
    dir: Option<PathBuf>,
    keep: bool,
    link_mbit: Option<u64>,
    no_migrate: bool,
) -> anyhow::Result<()> {
    let profile: hostmig::sandbox::Profile = profile.parse().map_err(anyhow::Error::msg)?;
    let stop = Arc::new(AtomicBool::new(false));
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let relay = stop.clone();
    std::thread::spawn(move || loop {
        if STOP.load(Ordering::SeqCst) {
            relay.store(true, Ordering::SeqCst);
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    });
    let opts = hostmig::sandbox::command::Options {
        profile,
        exit,
        dir,
        keep,
        link_mbit,
        no_migrate,
        binary: std::env::current_exe().context("cannot find the hostmig binary")?,
    };
    let outcome = hostmig::sandbox::command::run(&opts, stop).map_err(anyhow::Error::msg)?;
    if outcome.failed > 0 || !outcome.differences.is_empty() {
        bail!(
            "{} of {} migrations did not succeed, {} differences",
            outcome.failed,
            outcome.migrations,
            outcome.differences.len()
        );
    }
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "a thread panicked");
    }));
}

fn hash_password() -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let echo = if terminal {
        eprint!("Password: ");
        std::io::stderr().flush().ok();
        EchoOff::new()
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    drop(echo);
    if terminal {
        eprintln!();
    }
    read.context("cannot read the password from standard input")?;
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line);
    if password.is_empty() {
        bail!("the password is empty; type a password (or pipe one in) and press Enter");
    }
    let hash = hostmig::password::hash_password(password).map_err(anyhow::Error::msg)?;
    println!("{hash}");
    Ok(())
}

/// Turns terminal echo off while a password is typed; restores it on drop.
struct EchoOff {
    saved: libc::termios,
}

impl EchoOff {
    fn new() -> Option<Self> {
        let mut saved = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr fills the termios struct for fd 0 when it returns 0.
        if unsafe { libc::tcgetattr(0, saved.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: initialised by the successful tcgetattr above.
        let saved = unsafe { saved.assume_init() };
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: sets fd 0's attributes from a valid termios value.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) };
        Some(EchoOff { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the attributes read in `new`.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.saved) };
    }
}
