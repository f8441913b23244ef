//! What one connection to an endpoint uses, resolved the way libpq resolves
//! it: the configuration first, then the `PG*` environment variables, then
//! libpq's default files (`~/.pgpass`, `~/.postgresql/root.crt`,
//! `~/.postgresql/postgresql.crt`, `~/.postgresql/postgresql.key`).
//!
//! Both transports use the result: tokio-postgres (through OpenSSL) for
//! ordinary sessions and libpq for the replication session, which gets every
//! resolved value explicitly so that the two cannot disagree.

use std::path::{Path, PathBuf};

use super::ConnectFailure;
use crate::model::{EndpointSpec, Secret, SslMode};

/// libpq's compiled-in socket directory on Debian (`DEFAULT_PGSOCKET_DIR`):
/// a password-file line for host `localhost` also matches it.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// Where the process's environment and home directory come from; tests
/// substitute both.
pub struct Environment<'a> {
    /// Reads one environment variable.
    pub var: &'a dyn Fn(&str) -> Option<String>,
    /// The home directory (`$HOME`, else the password database), as libpq
    /// finds it.
    pub home: Option<PathBuf>,
}

impl Environment<'static> {
    /// The real process environment.
    pub fn process() -> Environment<'static> {
        Environment {
            var: &|name| std::env::var(name).ok(),
            home: std::env::home_dir(),
        }
    }
}

impl Environment<'_> {
    /// A set, non-empty variable (libpq treats empty as unset).
    fn get(&self, name: &str) -> Option<String> {
        (self.var)(name).filter(|v| !v.is_empty())
    }

    fn home_file(&self, name: &str) -> Option<PathBuf> {
        self.home.as_ref().map(|h| h.join(name))
    }
}

/// Where a setting's value came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The endpoint block.
    Configuration,
    /// An environment variable.
    Env(&'static str),
    /// libpq's default.
    Default,
}

impl Origin {
    /// " (from PGSSLMODE)", " (from the configuration)", "" for defaults.
    pub fn suffix(&self) -> String {
        match self {
            Origin::Configuration => " (from the configuration)".into(),
            Origin::Env(var) => format!(" (from {var})"),
            Origin::Default => String::new(),
        }
    }
}

/// Where the password came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordFrom {
    /// `password` in the endpoint block.
    Configuration,
    /// `PGPASSWORD`.
    Env,
    /// A matching line of this password file.
    File(PathBuf),
    /// No password: why none was found (for the error when the server asks).
    Nowhere(String),
}

/// A client certificate for `cert` authentication (or `clientcert=` rules).
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key, maybe encrypted.
    pub key: PathBuf,
    /// The key's password (`sslpassword`).
    pub password: Option<Secret>,
}

/// TLS settings of a connection that tries TLS.
#[derive(Debug, Clone)]
pub struct TlsParams {
    /// The CA certificates to verify the server with, when verifying.
    pub rootcert: Option<PathBuf>,
    /// Verify the server's certificate chain against `rootcert`: under
    /// `verify-ca`/`verify-full`, and (as libpq does) under `prefer`/`require`
    /// whenever a root certificate file exists.
    pub verify_chain: bool,
    /// Also check the host name against the certificate (`verify-full`).
    pub verify_host: bool,
    /// Present a client certificate.
    pub client: Option<ClientCert>,
    /// Send the host name as SNI (never for an IP address).
    pub sni: bool,
}

/// Everything one connection uses. Holds secrets: never log it.
#[derive(Debug, Clone)]
pub struct ConnParams {
    /// Endpoint name, for messages.
    pub endpoint: String,
    /// Host name, address or socket directory.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database.
    pub database: String,
    /// Role.
    pub user: String,
    /// The password to send when the server asks.
    pub password: Option<Secret>,
    /// Where it came from.
    pub password_from: PasswordFrom,
    /// The password file consulted (handed to libpq too, so that both
    /// transports read the same one).
    pub passfile: Option<PathBuf>,
    /// The effective `sslmode`.
    pub sslmode: SslMode,
    /// Where it came from.
    pub sslmode_from: Origin,
    /// `None`: no TLS (sslmode `disable`, or a Unix socket, where libpq
    /// never uses TLS).
    pub tls: Option<TlsParams>,
}

impl ConnParams {
    /// `host:port` (or the socket directory and port) for messages.
    pub fn address(&self) -> String {
        if self.is_unix_socket() {
            format!("{}/.s.PGSQL.{}", self.host, self.port)
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether `host` names a Unix-socket directory.
    pub fn is_unix_socket(&self) -> bool {
        self.host.starts_with('/')
    }
}

fn settings_error(message: String) -> ConnectFailure {
    ConnectFailure::Settings(message)
}

/// Resolves `endpoint` against `env`: configuration > `PG*` variable >
/// libpq default, for each setting. Checks that every file named
/// explicitly exists; reading and parsing them is `tls::Material::load`.
///
/// # Errors
/// [`ConnectFailure::Settings`] for unusable settings (an unsupported
/// `PGSSLMODE`, a missing file, `verify-*` without a root certificate).
pub fn resolve(
    endpoint: &EndpointSpec,
    env: &Environment<'_>,
) -> Result<ConnParams, ConnectFailure> {
    let (sslmode, sslmode_from) = match endpoint.sslmode {
        Some(mode) => (mode, Origin::Configuration),
        None => match env.get("PGSSLMODE") {
            Some(v) => (parse_env_sslmode(&v)?, Origin::Env("PGSSLMODE")),
            None => (SslMode::Prefer, Origin::Default),
        },
    };
    let mut params = ConnParams {
        endpoint: endpoint.name.clone(),
        host: endpoint.host.clone(),
        port: endpoint.port,
        database: endpoint.database.clone(),
        user: endpoint.user.clone(),
        password: None,
        password_from: PasswordFrom::Nowhere(String::new()),
        passfile: None,
        sslmode,
        sslmode_from,
        tls: None,
    };
    if sslmode != SslMode::Disable && !params.is_unix_socket() {
        params.tls = Some(resolve_tls(endpoint, env, sslmode, &params.sslmode_from)?);
    }
    params.passfile = password_file(endpoint, env).map(|(p, _)| p);
    let (password, from) = resolve_password(endpoint, env);
    params.password = password;
    params.password_from = from;
    Ok(params)
}

fn parse_env_sslmode(value: &str) -> Result<SslMode, ConnectFailure> {
    Ok(match value {
        "disable" => SslMode::Disable,
        "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        "allow" => {
            return Err(settings_error(
                "PGSSLMODE = \"allow\" is not supported by pgsync (it silently falls back to \
                 plain text): use \"prefer\", \"require\" or stricter, or set `sslmode` in the \
                 endpoint block"
                    .into(),
            ));
        }
        other => {
            return Err(settings_error(format!(
                "PGSSLMODE = {other:?} is not a valid sslmode: use \"disable\", \"prefer\", \
                 \"require\", \"verify-ca\" or \"verify-full\""
            )));
        }
    })
}

/// An explicitly named file: configuration, then environment variable.
fn explicit(
    configured: Option<&PathBuf>,
    env: &Environment<'_>,
    var: &'static str,
) -> Option<(PathBuf, Origin)> {
    match configured {
        Some(p) => Some((p.clone(), Origin::Configuration)),
        None => env.get(var).map(|v| (PathBuf::from(v), Origin::Env(var))),
    }
}

/// An explicitly named file must exist (stricter than libpq, which ignores
/// a missing certificate file: a typo must not silently drop a setting).
fn must_exist(attr: &str, path: &Path, origin: &Origin) -> Result<(), ConnectFailure> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(settings_error(format!(
            "{attr} {}{} is not a regular file",
            show(path),
            origin.suffix()
        ))),
        Err(e) => Err(settings_error(format!(
            "{attr} {}{} cannot be read: {e}",
            show(path),
            origin.suffix()
        ))),
    }
}

/// A path in quotes, for messages.
pub fn show(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

fn resolve_tls(
    endpoint: &EndpointSpec,
    env: &Environment<'_>,
    sslmode: SslMode,
    sslmode_from: &Origin,
) -> Result<TlsParams, ConnectFailure> {
    let tls = &endpoint.tls;
    let verify = matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull);

    // Root certificate: explicit, else ~/.postgresql/root.crt when present.
    let rootcert = match explicit(tls.sslrootcert.as_ref(), env, "PGSSLROOTCERT") {
        Some((path, origin)) => {
            must_exist("sslrootcert", &path, &origin)?;
            Some(path)
        }
        None => env
            .home_file(".postgresql/root.crt")
            .filter(|p| p.is_file()),
    };
    if verify && rootcert.is_none() {
        return Err(settings_error(format!(
            "sslmode = {:?}{} verifies the server's certificate, but no root certificate is \
             set: set `sslrootcert` (or PGSSLROOTCERT) to the CA file, or put it in \
             ~/.postgresql/root.crt",
            sslmode.as_str(),
            sslmode_from.suffix()
        )));
    }

    // Client certificate: explicit, else ~/.postgresql/postgresql.crt when present.
    let cert = match explicit(tls.sslcert.as_ref(), env, "PGSSLCERT") {
        Some((path, origin)) => {
            must_exist("sslcert", &path, &origin)?;
            Some(path)
        }
        None => env
            .home_file(".postgresql/postgresql.crt")
            .filter(|p| p.is_file()),
    };
    let client = match cert {
        None => {
            if let Some(key) = &tls.sslkey {
                return Err(settings_error(format!(
                    "sslkey {} is set but there is no client certificate: set `sslcert` too",
                    show(key)
                )));
            }
            None
        }
        Some(cert) => {
            let key = match explicit(tls.sslkey.as_ref(), env, "PGSSLKEY") {
                Some((path, origin)) => {
                    must_exist("sslkey", &path, &origin)?;
                    path
                }
                None => {
                    let default = env.home_file(".postgresql/postgresql.key");
                    match default.filter(|p| p.is_file()) {
                        Some(p) => p,
                        None => {
                            return Err(settings_error(format!(
                                "client certificate {} has no private key: set `sslkey`",
                                show(&cert)
                            )));
                        }
                    }
                }
            };
            Some(ClientCert {
                cert,
                key,
                password: tls.sslpassword.clone(),
            })
        }
    };

    let sni = match tls.sslsni {
        Some(b) => b,
        // libpq sends SNI only when the value is "1".
        None => env.get("PGSSLSNI").is_none_or(|v| v == "1"),
    };
    Ok(TlsParams {
        verify_chain: verify || rootcert.is_some(),
        verify_host: sslmode == SslMode::VerifyFull,
        rootcert,
        client,
        sni,
    })
}

/// Password: `password` > `PGPASSWORD` > the password file (`passfile` >
/// `PGPASSFILE` > `~/.pgpass`). An empty password counts as none, as in
/// libpq.
fn resolve_password(
    endpoint: &EndpointSpec,
    env: &Environment<'_>,
) -> (Option<Secret>, PasswordFrom) {
    if let Some(p) = endpoint
        .password
        .as_ref()
        .filter(|p| !p.expose().is_empty())
    {
        return (Some(p.clone()), PasswordFrom::Configuration);
    }
    if let Some(p) = env.get("PGPASSWORD") {
        return (Some(Secret::new(p)), PasswordFrom::Env);
    }
    let Some((file, what)) = password_file(endpoint, env) else {
        return (
            None,
            PasswordFrom::Nowhere(
                "no `password`, PGPASSWORD is unset and there is no home directory for ~/.pgpass"
                    .into(),
            ),
        );
    };
    let port = endpoint.port.to_string();
    match read_password_file(&file) {
        Err(why) => (
            None,
            PasswordFrom::Nowhere(format!(
                "no `password`, PGPASSWORD is unset, and password file {} ({what}) {why}",
                show(&file)
            )),
        ),
        Ok(text) => match pgpass_lookup(
            &text,
            &endpoint.host,
            &port,
            &endpoint.database,
            &endpoint.user,
        ) {
            Some(pw) => (Some(Secret::new(pw)), PasswordFrom::File(file)),
            None => (
                None,
                PasswordFrom::Nowhere(format!(
                    "no `password`, PGPASSWORD is unset, and no line of password file {} ({what}) \
                     matches {}:{port}:{}:{}",
                    show(&file),
                    endpoint.host,
                    endpoint.database,
                    endpoint.user
                )),
            ),
        },
    }
}

/// The password file: `passfile` > `PGPASSFILE` > `~/.pgpass`, with the
/// name of where it came from.
fn password_file(
    endpoint: &EndpointSpec,
    env: &Environment<'_>,
) -> Option<(PathBuf, &'static str)> {
    match &endpoint.passfile {
        Some(p) => Some((p.clone(), "passfile")),
        None => match env.get("PGPASSFILE") {
            Some(p) => Some((PathBuf::from(p), "PGPASSFILE")),
            None => env.home_file(".pgpass").map(|p| (p, "~/.pgpass")),
        },
    }
}

/// Reads a password file as libpq does: a file with group or world access,
/// or one that is not a regular file, is ignored with a warning.
fn read_password_file(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot be read ({e})"))?;
    if !meta.is_file() {
        tracing::warn!(file = %path.display(), "password file is not a plain file; ignored");
        return Err("is not a plain file".into());
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            file = %path.display(),
            "password file has group or world access; permissions should be u=rw (0600) or less; ignored"
        );
        return Err("has group or world access and is ignored (chmod 0600 it)".into());
    }
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| format!("cannot be read ({e})"))
}

/// The password of the first line of a password file that matches, with
/// libpq's rules (`passwordFromFile`): lines are
/// `hostname:port:database:username:password`; `#` starts a comment line;
/// a field `*` matches anything; `\` escapes `:` and `\`; host `localhost`
/// also matches the default socket directory; the password ends at the
/// first unescaped `:`.
pub fn pgpass_lookup(
    text: &str,
    host: &str,
    port: &str,
    database: &str,
    user: &str,
) -> Option<String> {
    let host = if host.is_empty() || host == DEFAULT_SOCKET_DIR {
        "localhost"
    } else {
        host
    };
    for line in text.split('\n') {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut rest = line;
        let mut matched = true;
        for token in [host, port, database, user] {
            match field_matches(rest, token) {
                Some(after) => rest = after,
                None => {
                    matched = false;
                    break;
                }
            }
        }
        if matched {
            // De-escape up to the first unescaped ':'.
            let mut out = String::new();
            let mut chars = rest.chars();
            while let Some(c) = chars.next() {
                match c {
                    ':' => break,
                    '\\' => match chars.next() {
                        Some(n) => out.push(n),
                        None => out.push('\\'),
                    },
                    c => out.push(c),
                }
            }
            return Some(out);
        }
    }
    None
}

/// libpq's `pwdfMatchesString`: the rest of the line after the field when
/// the field is `*` or equals `token` (with `\` escapes).
fn field_matches<'t>(line: &'t str, token: &str) -> Option<&'t str> {
    if let Some(rest) = line.strip_prefix("*:") {
        return Some(rest);
    }
    let bytes = line.as_bytes();
    let tok = token.as_bytes();
    let (mut i, mut t) = (0, 0);
    while i < bytes.len() {
        let mut escaped = false;
        if bytes[i] == b'\\' {
            i += 1;
            escaped = true;
            if i == bytes.len() {
                return None;
            }
        }
        if bytes[i] == b':' && !escaped && t == tok.len() {
            return line.get(i + 1..);
        }
        if t == tok.len() || bytes[i] != tok[t] {
            return None;
        }
        i += 1;
        t += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::TlsFiles;

    fn endpoint() -> EndpointSpec {
        EndpointSpec {
            name: "src".into(),
            host: "db.example".into(),
            port: 5432,
            database: "app".into(),
            user: "alice".into(),
            password: None,
            sslmode: None,
            tls: TlsFiles::default(),
            passfile: None,
        }
    }

    fn with_env<T>(
        vars: &[(&str, &str)],
        home: Option<&Path>,
        f: impl FnOnce(&Environment<'_>) -> T,
    ) -> T {
        let map: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let lookup = move |name: &str| map.get(name).cloned();
        let env = Environment {
            var: &lookup,
            home: home.map(Path::to_path_buf),
        };
        f(&env)
    }

    fn private_file(dir: &Path, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    #[test]
    fn pgpass_matches_like_libpq() {
        let text = "# comment\n\
                    other:5432:app:alice:nope\n\
                    db.example:5433:app:alice:wrong-port\n\
                    db.example:*:app:alice:p\\:w\\\\d:ignored\n\
                    *:*:*:*:fallback\n";
        assert_eq!(
            pgpass_lookup(text, "db.example", "5432", "app", "alice").as_deref(),
            Some("p:w\\d")
        );
        assert_eq!(
            pgpass_lookup(text, "db.example", "5433", "app", "alice").as_deref(),
            Some("wrong-port")
        );
        assert_eq!(
            pgpass_lookup(text, "x", "1", "y", "z").as_deref(),
            Some("fallback")
        );
        // Escaped ':' inside a field, CRLF line ends, the socket directory.
        let text = "h\\:1:5432:a:u:one\r\nlocalhost:5432:a:u:two\r\n";
        assert_eq!(
            pgpass_lookup(text, "h:1", "5432", "a", "u").as_deref(),
            Some("one")
        );
        assert_eq!(
            pgpass_lookup(text, DEFAULT_SOCKET_DIR, "5432", "a", "u").as_deref(),
            Some("two")
        );
        // A '*' only matches as a whole field; a prefix is not a match.
        assert_eq!(
            pgpass_lookup("db*:5432:a:u:x\n", "db1", "5432", "a", "u"),
            None
        );
        assert_eq!(
            pgpass_lookup("db:5432:a:u:x\n", "db", "5432", "ab", "u"),
            None
        );
        assert_eq!(pgpass_lookup("db:5432:a:u\n", "db", "5432", "a", "u"), None);
        assert_eq!(
            pgpass_lookup("db:5432:a:u:\n", "db", "5432", "a", "u").as_deref(),
            Some("")
        );
    }

    #[test]
    fn password_precedence_is_configuration_then_pgpassword_then_file() {
        let dir = tempfile::tempdir().unwrap();
        private_file(
            dir.path(),
            ".pgpass",
            "db.example:5432:app:alice:from-home\n",
        );
        let other = private_file(dir.path(), "other", "*:*:*:*:from-pgpassfile\n");
        let named = private_file(dir.path(), "named", "*:*:*:*:from-passfile\n");
        let home = Some(dir.path());

        let mut ep = endpoint();
        let p = with_env(&[], home, |env| resolve(&ep, env)).unwrap();
        assert_eq!(p.password.unwrap().expose(), "from-home");
        assert_eq!(
            p.password_from,
            PasswordFrom::File(dir.path().join(".pgpass"))
        );

        let pgpassfile = other.to_str().unwrap();
        let p = with_env(&[("PGPASSFILE", pgpassfile)], home, |env| resolve(&ep, env)).unwrap();
        assert_eq!(p.password.unwrap().expose(), "from-pgpassfile");

        ep.passfile = Some(named.clone());
        let p = with_env(&[("PGPASSFILE", pgpassfile)], home, |env| resolve(&ep, env)).unwrap();
        assert_eq!(p.password.unwrap().expose(), "from-passfile");

        let p = with_env(&[("PGPASSWORD", "from-env")], home, |env| resolve(&ep, env)).unwrap();
        assert_eq!(
            (p.password.unwrap().expose(), p.password_from),
            ("from-env", PasswordFrom::Env)
        );

        // An empty password is no password, as in libpq.
        ep.password = Some(Secret::new(""));
        let p = with_env(&[("PGPASSWORD", "from-env")], home, |env| resolve(&ep, env)).unwrap();
        assert_eq!(p.password.unwrap().expose(), "from-env");

        ep.password = Some(Secret::new("from-hcl"));
        let p = with_env(&[("PGPASSWORD", "from-env")], home, |env| resolve(&ep, env)).unwrap();
        assert_eq!(
            (p.password.unwrap().expose(), p.password_from),
            ("from-hcl", PasswordFrom::Configuration)
        );
    }

    #[test]
    fn a_readable_by_others_password_file_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = private_file(dir.path(), ".pgpass", "*:*:*:*:x\n");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let p = with_env(&[], Some(dir.path()), |env| resolve(&endpoint(), env)).unwrap();
        assert!(p.password.is_none());
        let PasswordFrom::Nowhere(why) = p.password_from else {
            panic!()
        };
        assert!(why.contains("group or world access"), "{why}");
    }

    #[test]
    fn sslmode_comes_from_the_configuration_then_pgsslmode() {
        let dir = tempfile::tempdir().unwrap();
        let home = Some(dir.path());
        let mut ep = endpoint();
        let p = with_env(&[], home, |env| resolve(&ep, env)).unwrap();
        assert_eq!(
            (p.sslmode, p.sslmode_from),
            (SslMode::Prefer, Origin::Default)
        );
        let tls = p.tls.unwrap();
        assert!(!tls.verify_chain && !tls.verify_host && tls.sni && tls.client.is_none());

        let p = with_env(&[("PGSSLMODE", "disable")], home, |env| resolve(&ep, env)).unwrap();
        assert_eq!(
            (p.sslmode, p.sslmode_from),
            (SslMode::Disable, Origin::Env("PGSSLMODE"))
        );
        assert!(p.tls.is_none());

        ep.sslmode = Some(SslMode::Require);
        let p = with_env(
            &[("PGSSLMODE", "disable"), ("PGSSLSNI", "0")],
            home,
            |env| resolve(&ep, env),
        )
        .unwrap();
        assert_eq!(p.sslmode, SslMode::Require);
        assert!(!p.tls.unwrap().sni);

        ep.sslmode = None;
        let err = with_env(&[("PGSSLMODE", "allow")], home, |env| resolve(&ep, env)).unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
    }

    #[test]
    fn verification_needs_a_root_certificate_and_a_present_one_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let home = Some(dir.path());
        let mut ep = endpoint();
        ep.sslmode = Some(SslMode::VerifyFull);
        let err = with_env(&[], home, |env| resolve(&ep, env)).unwrap_err();
        assert!(
            err.to_string().contains("no root certificate is set"),
            "{err}"
        );

        // ~/.postgresql/root.crt turns on chain verification even under
        // require, as in libpq.
        std::fs::create_dir(dir.path().join(".postgresql")).unwrap();
        std::fs::write(dir.path().join(".postgresql/root.crt"), "x").unwrap();
        ep.sslmode = Some(SslMode::Require);
        let tls = with_env(&[], home, |env| resolve(&ep, env))
            .unwrap()
            .tls
            .unwrap();
        assert!(tls.verify_chain && !tls.verify_host);

        // An explicitly named file must exist.
        ep.tls.sslrootcert = Some(dir.path().join("missing.crt"));
        let err = with_env(&[], home, |env| resolve(&ep, env)).unwrap_err();
        assert!(err.to_string().contains("missing.crt"), "{err}");
        ep.tls.sslrootcert = None;
        let err = with_env(&[("PGSSLROOTCERT", "/nonexistent/ca.crt")], home, |env| {
            resolve(&ep, env)
        })
        .unwrap_err();
        assert!(err.to_string().contains("(from PGSSLROOTCERT)"), "{err}");

        // Unix sockets never use TLS.
        ep.host = "/var/run/postgresql".into();
        ep.sslmode = Some(SslMode::VerifyFull);
        assert!(
            with_env(&[], None, |env| resolve(&ep, env))
                .unwrap()
                .tls
                .is_none()
        );
    }
}
