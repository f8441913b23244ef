//! Running the `pgsync` binary against a configuration directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use pgsync::cluster::LocalCluster;

/// A configuration directory with one task from `source` to `destination`.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    /// Writes `pgsync.hcl` with endpoints `src`/`dst` (database `app`) and
    /// one task `name` whose body (selection) is `body`.
    pub fn new(
        source: &LocalCluster,
        destination: &LocalCluster,
        name: &str,
        body: &str,
    ) -> Workspace {
        let dir = tempfile::tempdir().expect("temp dir");
        let hcl = format!(
            r#"endpoint "src" {{
  host     = "127.0.0.1"
  port     = {}
  database = "app"
  user     = "postgres"
}}

endpoint "dst" {{
  host     = "127.0.0.1"
  port     = {}
  database = "app"
  user     = "postgres"
}}

task "{name}" {{
  source      = endpoint.src
  destination = endpoint.dst
{body}
}}
"#,
            source.port(),
            destination.port()
        );
        std::fs::write(dir.path().join("pgsync.hcl"), hcl).expect("write config");
        Workspace { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `pgsync --chdir DIR ARGS…`, stdin closed.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgsync"));
        cmd.arg("--chdir")
            .arg(self.dir.path())
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs to completion and returns the output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run pgsync")
    }

    /// Starts in the background, with output captured to files in the workspace.
    pub fn spawn(&self, args: &[&str], tag: &str) -> Child {
        let out = std::fs::File::create(self.log(tag, "out")).expect("log file");
        let err = std::fs::File::create(self.log(tag, "err")).expect("log file");
        self.command(args)
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn pgsync")
    }

    /// [`Workspace::spawn`] with extra environment variables.
    pub fn spawn_with(&self, args: &[&str], tag: &str, env: &[(&str, &str)]) -> Child {
        let out = std::fs::File::create(self.log(tag, "out")).expect("log file");
        let err = std::fs::File::create(self.log(tag, "err")).expect("log file");
        self.command(args)
            .envs(env.iter().copied())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn pgsync")
    }

    pub fn log(&self, tag: &str, which: &str) -> PathBuf {
        self.dir.path().join(format!("{tag}.{which}.log"))
    }
}

/// stdout + stderr as text, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts exit code `code` and returns stdout.
pub fn expect_exit(out: &Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "{}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Workspace {
    /// A configuration directory holding `pgsync.hcl` = `hcl` as given
    /// (custom endpoint blocks: TLS files, users, passwords).
    pub fn with_config(hcl: &str) -> Workspace {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("pgsync.hcl"), hcl).expect("write config");
        Workspace { dir }
    }
}

/// Sends SIGTERM to a background pgsync (a no-op when it already exited).
pub fn sigterm(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Stops a background `apply` with SIGTERM and asserts it finished cleanly
/// (exit 0), showing its log (`ws.log(tag, "err")`) otherwise.
pub fn stop_gracefully(ws: &Workspace, child: &mut Child, tag: &str) {
    sigterm(child);
    let code = child.wait().expect("wait for pgsync");
    assert_eq!(
        code.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(ws.log(tag, "err")).unwrap_or_default()
    );
}
