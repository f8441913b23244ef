//! Throwaway local PostgreSQL clusters, for `pgsync demo` and the test suite.
//!
//! A cluster lives in its own temporary directory (`initdb --no-sync`,
//! `fsync = off`, `wal_level = logical`), listens on 127.0.0.1 at a free TCP
//! port with `trust` authentication, and is stopped (`pg_ctl -m immediate`)
//! and removed when the [`LocalCluster`] is dropped. Server programs refuse
//! to run as root, so as root they run as the `postgres` user through
//! `runuser` (DESIGN-NOTES §5).
//!
//! The server binaries are found in `$PGSYNC_PG_BINDIR`, else
//! `pg_config --bindir`, else the newest `/usr/lib/postgresql/N/bin`
//! ([`LocalCluster::start`]); [`LocalCluster::start_in`] takes the
//! directory explicitly, e.g. another major version's build (the test
//! suite's cross-version matrix, `docs/testing.md`). Such a directory needs
//! only `initdb`, `pg_ctl` and `postgres`: when it has no `psql`, the
//! default installation's `psql` is used (psql talks to older and newer
//! servers alike).
//!
//! Every `postgresql.conf` line written here exists with the same meaning
//! in PostgreSQL 13 through 18.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a throwaway cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No `initdb` was found.
    #[error(
        "no PostgreSQL server binaries found (looked in $PGSYNC_PG_BINDIR, `pg_config --bindir`, /usr/lib/postgresql/*/bin)"
    )]
    NoBinaries,
    /// The directory given to [`LocalCluster::start_in`] lacks a program.
    #[error("{0} not found (PostgreSQL server binaries need initdb, pg_ctl and postgres)")]
    MissingProgram(PathBuf),
    /// No `psql` was found, neither beside the server nor in the default installation.
    #[error(
        "no psql found (looked in {0}, $PGSYNC_PG_BINDIR, `pg_config --bindir`, /usr/lib/postgresql/*/bin, PATH)"
    )]
    NoPsql(PathBuf),
    /// A server program failed.
    #[error("{program} failed: {output}")]
    Tool {
        /// The program that failed.
        program: String,
        /// Its standard error (and the server log, for `pg_ctl start`).
        output: String,
    },
    /// Creating the directory or finding a port failed.
    #[error("preparing the cluster directory")]
    Io(#[from] std::io::Error),
}

/// A running throwaway cluster; dropping it stops the server and removes
/// its directory.
#[derive(Debug)]
pub struct LocalCluster {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    port: u16,
}

impl LocalCluster {
    /// initdb + start, with the extra `postgresql.conf` lines given
    /// (e.g. `"max_wal_senders = 4"`). Takes about a second.
    ///
    /// # Errors
    /// [`ClusterError`] naming the failing program and its output.
    pub fn start(extra_settings: &[&str]) -> Result<LocalCluster, ClusterError> {
        let bindir = bindir().ok_or(ClusterError::NoBinaries)?;
        LocalCluster::start_in(bindir, extra_settings)
    }

    /// Like [`LocalCluster::start`], with the server programs (`initdb`,
    /// `pg_ctl`, `postgres`) of `bindir`, e.g. another major version's build.
    ///
    /// # Errors
    /// [`ClusterError`] naming the missing or failing program and its output.
    pub fn start_in(
        bindir: impl Into<PathBuf>,
        extra_settings: &[&str],
    ) -> Result<LocalCluster, ClusterError> {
        let bindir = bindir.into();
        for program in ["initdb", "pg_ctl", "postgres"] {
            if !bindir.join(program).exists() {
                return Err(ClusterError::MissingProgram(bindir.join(program)));
            }
        }
        let dir = tempfile::Builder::new().prefix("pgsync-pg-").tempdir()?;
        if is_root() {
            run(
                Command::new("chown").arg("postgres:").arg(dir.path()),
                "chown",
            )?;
        }
        let data = dir.path().join("data");
        run(
            server_cmd(&bindir, "initdb").arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ]),
            "initdb",
        )?;
        let port = free_port()?;
        let mut conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             wal_level = logical\nmax_replication_slots = 16\nmax_wal_senders = 16\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
             max_connections = 60\nshared_buffers = 64MB\nlog_min_messages = warning\n",
            dir.path().display()
        );
        for line in extra_settings {
            conf.push_str(line);
            conf.push('\n');
        }
        append(&data.join("postgresql.conf"), &conf)?;
        let cluster = LocalCluster { dir, bindir, port };
        cluster.pg_ctl("start")?;
        Ok(cluster)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the binaries this cluster runs.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The server's major version (`13`, `17`, …), from the data directory's
    /// `PG_VERSION` file.
    pub fn major_version(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.path().join("data").join("PG_VERSION"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The `psql` this cluster's [`LocalCluster::psql`] runs: the one beside
    /// the server, else the default installation's (see [`psql_program`]).
    ///
    /// # Errors
    /// [`ClusterError::NoPsql`] when there is none.
    pub fn psql_program(&self) -> Result<PathBuf, ClusterError> {
        psql_program(&self.bindir)
    }

    /// A libpq keyword/value connection string for `database` as `postgres`.
    pub fn conninfo(&self, database: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={database}",
            self.port
        )
    }

    /// The server log so far (for diagnosing test failures).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the server at once (`-m immediate`), like a crash.
    ///
    /// # Errors
    /// When `pg_ctl` fails.
    pub fn stop(&self) -> Result<(), ClusterError> {
        self.pg_ctl("stop")
    }

    /// Starts a stopped server again.
    ///
    /// # Errors
    /// When `pg_ctl` fails.
    pub fn restart(&self) -> Result<(), ClusterError> {
        self.pg_ctl("start")
    }

    /// Puts `rules` (pg_hba.conf lines) before the existing ones, so they
    /// win (the first matching line decides), then [`LocalCluster::reload`]s.
    /// The default lines trust every local and 127.0.0.1 connection.
    ///
    /// # Errors
    /// When the file cannot be rewritten or the reload fails.
    pub fn add_hba_rules(&self, rules: &str) -> Result<(), ClusterError> {
        let path = self.dir.path().join("data/pg_hba.conf");
        let old = std::fs::read_to_string(&path)?;
        std::fs::write(&path, format!("{rules}\n{old}"))?;
        self.reload()
    }

    /// `pg_ctl reload`: re-reads postgresql.conf, pg_hba.conf and the TLS
    /// certificate and key files; waits a moment for the server to apply
    /// them.
    ///
    /// # Errors
    /// When `pg_ctl` fails.
    pub fn reload(&self) -> Result<(), ClusterError> {
        run(
            server_cmd(&self.bindir, "pg_ctl")
                .arg("-D")
                .arg(self.dir.path().join("data"))
                .arg("reload"),
            "pg_ctl",
        )?;
        std::thread::sleep(std::time::Duration::from_millis(300));
        Ok(())
    }

    /// Runs `psql -X -v ON_ERROR_STOP=1 -q -d DATABASE` with `args` appended
    /// (e.g. `["-f", path]` or `["-c", sql]`), returning standard output.
    ///
    /// # Errors
    /// When psql exits non-zero; the error holds its standard error.
    pub fn psql(&self, database: &str, args: &[&str]) -> Result<String, ClusterError> {
        let out = Command::new(self.psql_program()?)
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(database)
            .args(args)
            .output()?;
        if !out.status.success() {
            return Err(ClusterError::Tool {
                program: "psql".into(),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn pg_ctl(&self, action: &str) -> Result<(), ClusterError> {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        let mut cmd = server_cmd(&self.bindir, "pg_ctl");
        cmd.arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60"]);
        if action == "stop" {
            cmd.args(["-m", "immediate"]);
        }
        cmd.arg(action);
        run(&mut cmd, "pg_ctl").map_err(|err| match err {
            ClusterError::Tool { program, output } => ClusterError::Tool {
                program,
                output: format!(
                    "{output}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
            },
            other => other,
        })
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl("stop");
        // Keep the server log for diagnosis when asked to.
        if let Some(dir) = std::env::var_os("PGSYNC_CLUSTER_LOG_DIR") {
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::copy(
                self.dir.path().join("server.log"),
                Path::new(&dir).join(format!("pg-{}.log", self.port)),
            );
        }
    }
}

/// The directory of `initdb`, `pg_ctl` and `psql`.
pub fn bindir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PGSYNC_PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

/// `psql` beside the server programs in `bindir` when there is one, else
/// the default installation's ([`bindir`], then `PATH`). The builds of other
/// major versions used by the test matrix ship no client programs; psql
/// works with servers of any supported major version.
///
/// # Errors
/// [`ClusterError::NoPsql`] when there is none.
pub fn psql_program(bindir_of_server: &Path) -> Result<PathBuf, ClusterError> {
    let beside = bindir_of_server.join("psql");
    if beside.exists() {
        return Ok(beside);
    }
    if let Some(default) = bindir().map(|d| d.join("psql"))
        && default.exists()
    {
        return Ok(default);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let psql = e.path().join("bin").join("psql");
            psql.exists().then_some((v, psql))
        })
        .collect();
    versions.sort();
    if let Some((_, psql)) = versions.pop() {
        return Ok(psql);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("psql"))
        .find(|p| p.exists())
        .ok_or_else(|| ClusterError::NoPsql(bindir_of_server.to_owned()))
}

fn server_cmd(bindir: &Path, program: &str) -> Command {
    let path = bindir.join(program);
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(path);
        cmd
    } else {
        Command::new(path)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn run(cmd: &mut Command, program: &str) -> Result<(), ClusterError> {
    let out = cmd.output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ClusterError::Tool {
            program: program.to_owned(),
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.write_all(text.as_bytes())
}
