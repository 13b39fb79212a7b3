//! The client's command line (flattened into `hostmig`'s own): how to
//! reach the daemon, and the subcommands.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::commands::{self, MigrateArgs};
use super::http::Trust;
use super::{config_path, read_config, Auth, Connection, Failure, FAILED, OK, USAGE};
use crate::secret::Secret;

/// How to reach the daemon (also `$XDG_CONFIG_HOME/hostmig/client.toml`:
/// `url`, `login`, `password`, `key`, `ca`, `fingerprint`; refused when
/// it holds a secret readable by group or others).
#[derive(Args, Debug, Clone, Default)]
pub struct ClientOpts {
    /// The daemon: https://host:port (the agent path is added).
    #[arg(long, env = "HOSTMIG_URL", global = true)]
    pub url: Option<String>,
    /// The API login (the password comes from HOSTMIG_PASSWORD or a prompt;
    /// HOSTMIG_KEY sends a secret key instead).
    #[arg(long, env = "HOSTMIG_LOGIN", global = true)]
    pub login: Option<String>,
    /// Trust the daemon's certificate by this CA (or certificate) PEM file.
    #[arg(long, value_name = "FILE", global = true)]
    pub ca: Option<PathBuf>,
    /// Trust exactly the certificate with this SHA-256 fingerprint
    /// (`serve` prints it when it starts).
    #[arg(long, value_name = "SHA256", global = true)]
    pub fingerprint: Option<String>,
    /// Print what is read as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug, Clone)]
pub enum ClientCommand {
    /// Start a migration (and with --watch follow it to its end).
    Migrate {
        #[command(flatten)]
        what: MigrateArgs,
        /// Read the source's SSH password from the first line of stdin
        /// (without it: the daemon's configured key).
        #[arg(long, conflicts_with = "ask_password")]
        password_stdin: bool,
        /// Ask for the source's SSH password (no echo).
        #[arg(long)]
        ask_password: bool,
        /// Follow the migration until it ends; exit 0 only on success.
        #[arg(long)]
        watch: bool,
    },
    /// Every migration, newest first.
    List,
    /// A migration's status.
    Status { id: String },
    /// Live progress of migrations until they end; exit 0 when every one succeeded.
    Watch {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// A migration's per-object report.
    Report { id: String },
    /// A migration's event log (JSON lines).
    Log {
        id: String,
        /// Keep printing new lines until the migration ends.
        #[arg(long)]
        follow: bool,
        /// The first line (1 is the first).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        from: u64,
    },
    /// Stop a migration (the protocol's finish).
    Stop { id: String },
    /// Bring an ended migration's domains up to date with the source.
    Resync {
        id: String,
        /// Read the source's SSH password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Go on with a migration a restart of hostmig interrupted.
    Resume {
        id: String,
        /// Read the source's SSH password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Runs a client subcommand; answers the exit status (errors printed).
pub fn run(opts: &ClientOpts, command: ClientCommand) -> i32 {
    match run_inner(opts, command) {
        Ok(status) => status,
        Err(f) => {
            eprintln!("hostmig: error: {}", super::output::safe(&f.text));
            f.status
        }
    }
}

fn run_inner(opts: &ClientOpts, command: ClientCommand) -> Result<i32, Failure> {
    let conn = connection(opts)?;
    let json = opts.json;
    match command {
        ClientCommand::Migrate {
            mut what,
            password_stdin,
            ask_password,
            watch,
        } => {
            if password_stdin {
                what.password = stdin_line()?;
            } else if ask_password {
                what.password = prompt(&format!("SSH password of {}: ", what.from))?;
            }
            let args = what;
            let id = commands::migrate(&conn, &args, json && !watch)?;
            if watch {
                return commands::watch(&conn, &[id], json);
            }
            Ok(OK)
        }
        ClientCommand::List => commands::list(&conn, json),
        ClientCommand::Status { id } => commands::status(&conn, &id, json),
        ClientCommand::Watch { ids } => commands::watch(&conn, &ids, json),
        ClientCommand::Report { id } => commands::report(&conn, &id, json),
        ClientCommand::Log { id, follow, from } => commands::log(&conn, &id, from, follow, json),
        ClientCommand::Stop { id } => commands::stop(&conn, &id, json),
        ClientCommand::Resync { id, password_stdin } => {
            let password = password_stdin.then(stdin_line).transpose()?;
            commands::with_id(&conn, "resync", &id, password.as_deref(), json)
        }
        ClientCommand::Resume { id, password_stdin } => {
            let password = password_stdin.then(stdin_line).transpose()?;
            commands::with_id(&conn, "resume", &id, password.as_deref(), json)
        }
    }
}

/// The daemon's URL, credentials and trust: flags and environment first,
/// then the client config file.
pub fn connection(opts: &ClientOpts) -> Result<Connection, Failure> {
    let file = match config_path() {
        Some(path) => read_config(&path)?,
        None => Default::default(),
    };
    let url = opts.url.clone().or(file.url).ok_or_else(|| {
        Failure::new(
            USAGE,
            "no daemon to talk to: give --url https://HOST:8443 (or HOSTMIG_URL, or url in the client config file)",
        )
    })?;
    let mut url =
        url::Url::parse(&url).map_err(|e| Failure::new(USAGE, format!("--url {url}: {e}")))?;
    if url.path() == "/" || url.path().is_empty() {
        url.set_path(crate::rpc::http::AGENT_PATH);
    }
    let key = std::env::var("HOSTMIG_KEY").ok().or(file.key);
    let auth = match key.filter(|k| !k.is_empty()) {
        Some(key) => Auth::Key(Secret::new(key)),
        None => {
            let login = opts
                .login
                .clone()
                .or(file.login)
                .unwrap_or_else(|| "admin".to_owned());
            let password = match std::env::var("HOSTMIG_PASSWORD").ok().or(file.password) {
                Some(p) => p,
                None if std::io::stdin().is_terminal() => {
                    prompt(&format!("hostmig password of {login}: "))?
                }
                None => {
                    return Err(Failure::new(
                        USAGE,
                        "no API password: set HOSTMIG_PASSWORD (or HOSTMIG_KEY), or run on a terminal to be asked",
                    ))
                }
            };
            Auth::Password {
                login,
                password: Secret::new(password),
            }
        }
    };
    let trust = match (
        opts.ca.clone().or(file.ca),
        opts.fingerprint.clone().or(file.fingerprint),
    ) {
        (_, Some(fp)) => Some(Trust::Fingerprint(fp)),
        (Some(ca), None) => Some(Trust::Ca(ca)),
        (None, None) => None,
    };
    Ok(Connection { url, auth, trust })
}

fn stdin_line() -> Result<String, Failure> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::new(FAILED, format!("cannot read the password from stdin: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn prompt(text: &str) -> Result<String, Failure> {
    rpassword::prompt_password(text)
        .map_err(|e| Failure::new(USAGE, format!("cannot ask for the password: {e}")))
}
