//! A throwaway Postgres cluster for integration tests.
//!
//! hookline's store runs on Postgres as well as SQLite, and the Postgres path
//! (locking, reconnects, a server that goes away under a running dispatcher)
//! can only be tested against a real server. [`TestPostgres::start`] runs
//! `initdb` into a fresh temporary directory and starts a private server on a
//! free port of 127.0.0.1, so tests need no pre-existing database, no
//! password and nothing shared with other test binaries.
//!
//! The server runs with `fsync=off`, `synchronous_commit=off` and
//! `full_page_writes=off`: that is for test speed only and loses data on a
//! crash, which a throwaway cluster does not care about. Never copy those
//! settings into benchmarks or deployments.
//!
//! Postgres refuses to run as root. When the tests run as root (as in CI),
//! `initdb` and `pg_ctl` run through `runuser -u postgres --` and the
//! temporary directory is handed to the `postgres` user.
//!
//! Every failure panics with the command, its output, the tail of the server
//! log and an install hint: a missing or broken Postgres must fail the tests
//! loudly, never skip them.
//!
//! Cleanup: `Drop` stops the server and removes the directory. If the test
//! process dies without running `Drop` (SIGKILL, or a cluster kept in a
//! `static`), a detached watchdog notices within a second that the process is
//! gone and does the same.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Appended to every failure message.
const INSTALL_HINT: &str = "hint: install the server with: apt-get install -y postgresql";

/// How many lines of the server log a failure message shows.
const LOG_TAIL_LINES: usize = 40;

/// How many free ports `start` tries when another process grabs the one it
/// picked between probing it and the server binding it.
const START_ATTEMPTS: u32 = 3;

/// Makes database names unique across all clusters of one test process.
static NEXT_DATABASE: AtomicU64 = AtomicU64::new(1);

/// A private Postgres server in a temporary directory, listening on
/// 127.0.0.1 only, user `postgres` with trust authentication.
///
/// Stopped and deleted on drop. It is `Send + Sync`, so it can live in a
/// `static OnceLock` shared by several tests (the watchdog cleans up after
/// the process exits) or be moved into `spawn_blocking`.
pub struct TestPostgres {
    /// Holds `data/` (the cluster), `server.log` and the Unix socket.
    dir: tempfile::TempDir,
    port: u16,
    /// Stops the cluster and removes `dir` if this process dies without `Drop`.
    watchdog: Option<Child>,
}

impl TestPostgres {
    /// Creates, initialises and starts a new cluster on a free port.
    ///
    /// Blocks for one to two seconds (initdb). Panics, with the failing command and the
    /// server log, if the Postgres binaries are missing or the server does
    /// not come up within 30 seconds.
    pub fn start() -> TestPostgres {
        let bins = PgBins::get();
        let dir = tempfile::Builder::new()
            .prefix("hookline-pg-")
            .tempdir()
            .unwrap_or_else(|e| fail_plain(&format!("cannot create a temporary directory: {e}")));
        if is_root() {
            hand_to_postgres_user(dir.path());
        }

        // Built before anything can fail, so a panic below still runs Drop.
        let mut pg = TestPostgres {
            dir,
            port: 0,
            watchdog: None,
        };
        pg.watchdog = Some(pg.spawn_watchdog(bins));

        let data = pg.data_dir();
        let mut initdb = server_command(&bins.initdb, pg.dir.path());
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ]);
        pg.run("initdb", initdb);

        for attempt in 1..=START_ATTEMPTS {
            pg.port = free_port();
            match pg.try_start() {
                Ok(()) => return pg,
                Err(message) => {
                    // The message includes the server log tail.
                    let port_taken = message.contains("could not bind")
                        || message.contains("Address already in use");
                    if !(port_taken && attempt < START_ATTEMPTS) {
                        panic!("{message}");
                    }
                }
            }
        }
        unreachable!("the last start attempt either returns or panics")
    }

    /// The URL of the default `postgres` database, as superuser `postgres`.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The TCP port the server listens on (127.0.0.1 only). Stays the same
    /// across [`stop`](Self::stop) and [`start_again`](Self::start_again).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a new, empty database with a unique name and returns its URL.
    ///
    /// Uses the `psql` binary rather than sqlx, so it works the same from
    /// plain `#[test]` and from `#[tokio::test]` (it blocks for a few ms).
    pub fn create_database(&self) -> String {
        let name = format!(
            "hookline_test_{}",
            NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
        );
        let mut psql = Command::new(&PgBins::get().psql);
        psql.current_dir(self.dir.path())
            .env("PGCONNECT_TIMEOUT", "10")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U"])
            .args(["postgres", "-d", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg("-c")
            .arg(format!("CREATE DATABASE \"{name}\""));
        self.run("psql CREATE DATABASE", psql);
        self.url_for(&name)
    }

    /// Stops the server with a fast shutdown (open connections are closed)
    /// and keeps its data, so a test can see how code behaves while the
    /// database is down. Panics if the server does not stop.
    pub fn stop(&self) {
        self.run("pg_ctl stop", self.pg_ctl_stop("fast"));
    }

    /// Starts the server again after [`stop`](Self::stop), on the same port
    /// with the same data, so URLs handed out earlier work again. Panics if
    /// it does not come up within 30 seconds.
    pub fn start_again(&self) {
        if let Err(message) = self.try_start() {
            panic!("{message}");
        }
    }

    fn url_for(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// `pg_ctl stop` in the given shutdown mode, waiting up to 30 s.
    fn pg_ctl_stop(&self, mode: &str) -> Command {
        let mut pg_ctl = server_command(&PgBins::get().pg_ctl, self.dir.path());
        pg_ctl.arg("-D").arg(self.data_dir());
        pg_ctl.args(["-m", mode, "-w", "-t", "30", "stop"]);
        pg_ctl
    }

    /// `pg_ctl start` on `self.port`; the error is the full failure message.
    fn try_start(&self) -> Result<(), String> {
        let dir = self.dir.path();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k '{dir}' -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            port = self.port,
            dir = dir.display(),
        );
        let mut pg_ctl = server_command(&PgBins::get().pg_ctl, dir);
        pg_ctl
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .args(["-w", "-t", "30", "start", "-o", &options]);
        self.try_run("pg_ctl start", pg_ctl).map(drop)
    }

    /// Runs a command to completion; panics with everything known if it fails.
    fn run(&self, what: &str, command: Command) -> Output {
        self.try_run(what, command)
            .unwrap_or_else(|message| panic!("{message}"))
    }

    fn try_run(&self, what: &str, mut command: Command) -> Result<Output, String> {
        let rendered = format!("{command:?}");
        let failure = |detail: String, output: Option<&Output>| {
            let mut message =
                format!("test Postgres: {what} failed: {detail}\ncommand: {rendered}\n");
            if let Some(output) = output {
                message.push_str(&format!(
                    "stdout:\n{}\nstderr:\n{}\n",
                    String::from_utf8_lossy(&output.stdout).trim_end(),
                    String::from_utf8_lossy(&output.stderr).trim_end(),
                ));
            }
            message.push_str(&format!(
                "server log (last {LOG_TAIL_LINES} lines of {}):\n{}\n{INSTALL_HINT}",
                self.log_file().display(),
                self.log_tail(),
            ));
            message
        };
        let output = command
            .stdin(Stdio::null())
            .output()
            .map_err(|e| failure(format!("could not run it: {e}"), None))?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(failure(output.status.to_string(), Some(&output)))
        }
    }

    fn log_tail(&self) -> String {
        match fs::read_to_string(self.log_file()) {
            Ok(log) => {
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
            }
            Err(e) => format!("(no server log: {e})"),
        }
    }

    /// Starts a detached shell that waits for this process to exit, then
    /// stops the cluster and removes its directory. It runs as the current
    /// user (root in CI, which it needs to remove the postgres-owned files),
    /// in its own process group so Ctrl-C on the test run does not kill it,
    /// and with stdio on /dev/null so `cargo test` does not wait for it.
    fn spawn_watchdog(&self, bins: &PgBins) -> Child {
        const SCRIPT: &str = r#"pid=$1; dir=$2; shift 2
while kill -0 "$pid" 2>/dev/null; do sleep 1; done
"$@" -D "$dir/data" -m immediate -w -t 10 stop
rm -rf "$dir""#;
        let pg_ctl = server_command(&bins.pg_ctl, self.dir.path());
        let mut watchdog = Command::new("sh");
        watchdog
            .args(["-c", SCRIPT, "hookline-pg-watchdog"])
            .arg(std::process::id().to_string())
            .arg(self.dir.path())
            .arg(pg_ctl.get_program())
            .args(pg_ctl.get_args())
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        watchdog.spawn().unwrap_or_else(|e| {
            fail_plain(&format!(
                "cannot start the cleanup watchdog {watchdog:?}: {e}"
            ))
        })
    }
}

impl Drop for TestPostgres {
    /// Stops the server at once (`-m immediate`), ends the watchdog, and
    /// lets the `TempDir` field remove the directory. Never panics: a panic
    /// here during unwinding would abort the whole test binary.
    fn drop(&mut self) {
        if self.data_dir().join("postmaster.pid").exists() {
            let pg_ctl = self.pg_ctl_stop("immediate");
            if let Err(message) = self.try_run("pg_ctl stop (drop)", pg_ctl) {
                eprintln!("{message}");
            }
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            // The watchdog has nothing left to do; its `sleep 1` child ends
            // on its own within a second.
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// Where the Postgres binaries live, found once per process.
struct PgBins {
    initdb: PathBuf,
    pg_ctl: PathBuf,
    psql: PathBuf,
}

impl PgBins {
    /// `initdb` on PATH (following symlinks to its real directory) or else
    /// the highest `/usr/lib/postgresql/<version>/bin`; `pg_ctl` and `psql`
    /// from the same directory when they are there, else from PATH.
    fn get() -> &'static PgBins {
        static BINS: OnceLock<PgBins> = OnceLock::new();
        BINS.get_or_init(|| {
            let dir = find_on_path("initdb")
                .and_then(|initdb| fs::canonicalize(initdb).ok())
                .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
                .or_else(highest_versioned_bin_dir)
                .unwrap_or_else(|| {
                    fail_plain(
                        "the Postgres server binaries were not found: no `initdb` on PATH \
                         and none under /usr/lib/postgresql/*/bin",
                    )
                });
            let tool = |name: &str| {
                let local = dir.join(name);
                if local.is_file() {
                    return local;
                }
                find_on_path(name).unwrap_or_else(|| {
                    fail_plain(&format!(
                        "found initdb in {} but no `{name}` there or on PATH",
                        dir.display()
                    ))
                })
            };
            PgBins {
                initdb: dir.join("initdb"),
                pg_ctl: tool("pg_ctl"),
                psql: tool("psql"),
            }
        })
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `/usr/lib/postgresql/<version>/bin` with an `initdb`, highest version
/// first (versions compare numerically: 9.6 < 15 < 16).
fn highest_versioned_bin_dir() -> Option<PathBuf> {
    let entries = fs::read_dir("/usr/lib/postgresql").ok()?;
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            is_executable(&bin.join("initdb")).then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A command for `initdb`/`pg_ctl`, through `runuser -u postgres --` when we
/// are root (the server refuses to run as root). Runs in `cwd` so a
/// postgres-user process does not start in a directory it cannot read.
fn server_command(program: &Path, cwd: &Path) -> Command {
    let mut command = if is_root() {
        let mut runuser = Command::new("runuser");
        runuser.args(["-u", "postgres", "--"]).arg(program);
        runuser
    } else {
        Command::new(program)
    };
    command.current_dir(cwd);
    command
}

/// Gives the temporary directory to the `postgres` user, mode 700 (initdb
/// insists that nobody else can read the cluster).
fn hand_to_postgres_user(dir: &Path) {
    let output = Command::new("chown")
        .arg("postgres:")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| fail_plain(&format!("cannot run chown: {e}")));
    if !output.status.success() {
        fail_plain(&format!(
            "`chown postgres: {}` failed ({}): {} (running as root needs the `postgres` \
             system user, which the postgresql package creates)",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end(),
        ));
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .unwrap_or_else(|e| fail_plain(&format!("cannot chmod 700 {}: {e}", dir.display())));
}

/// A port nobody listens on right now: bind port 0, read what the kernel
/// chose, release it. Another process may take it before the server binds
/// it; `start` retries on that.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| fail_plain(&format!("cannot find a free port on 127.0.0.1: {e}")))
}

/// Panics for failures that happen before there is a server log to show.
fn fail_plain(message: &str) -> ! {
    panic!("test Postgres: {message}\n{INSTALL_HINT}")
}
