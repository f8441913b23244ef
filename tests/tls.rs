//! TLS and authentication on every connection pgsync opens (issue 7):
//! throwaway clusters with `ssl = on`, certificates made here with OpenSSL,
//! pg_hba rules per case, and each `sslmode` exercised on an ordinary
//! session (tokio-postgres over OpenSSL) and on the replication session
//! (libpq). The end-to-end test runs `pgsync apply` through TLS with a
//! client certificate and a password file and greps everything it leaves
//! for the secrets.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::symm::Cipher;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};
use pgsync::cluster::LocalCluster;
use pgsync::model::{EndpointSpec, Secret, SslMode, TlsFiles};
use pgsync::pg::slot::ReplicationSession;
use pgsync::pg::{ConnParams, Environment, connect_with, resolve};
use tokio_postgres::Client;

use crate::support::cli::{Workspace, text};
use crate::support::pg::{Pair, column, connect};

/// The password of every encrypted client key.
const KEY_PW: &str = "kp-7f3e-keysecret";
/// alice's SCRAM password: `:` and `\` exercise the password file's escapes.
const ALICE_PW: &str = r"al:ce\scram-9d1";
/// bob's md5 password.
const BOB_PW: &str = "bob-md5-4c2a";

// ---------------------------------------------------------------------------
// Certificates

fn new_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

struct Issued {
    cert: X509,
    key: PKey<Private>,
}

/// A certificate for `cn` with `sans` (DNS names or IP addresses), valid
/// from `from` to `to` (Unix seconds), signed by `issuer` (self-signed when
/// `None`); a CA when `ca`.
fn issue(cn: &str, sans: &[&str], issuer: Option<&Issued>, ca: bool, from: i64, to: i64) -> Issued {
    let key = new_key();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |i| i.cert.subject_name()))
        .unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(from).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(to).unwrap()).unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
    } else {
        b.append_extension(BasicConstraints::new().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_agreement()
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    if !sans.is_empty() {
        let mut san = SubjectAlternativeName::new();
        for s in sans {
            if s.parse::<IpAddr>().is_ok() {
                san.ip(s);
            } else {
                san.dns(s);
            }
        }
        let ext = san
            .build(&b.x509v3_context(issuer.map(|i| i.cert.as_ref()), None))
            .unwrap();
        b.append_extension(ext).unwrap();
    }
    let signer = issuer.map_or(&key, |i| &i.key);
    b.sign(signer, MessageDigest::sha256()).unwrap();
    Issued {
        cert: b.build(),
        key,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

const DAY: i64 = 86_400;

fn postgres_ids() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// A CA, a wrong CA, server certificates (good, for another name, expired)
/// and a client certificate for role `certuser` with its key plain,
/// encrypted PKCS#8 and encrypted traditional PEM, as files in a directory
/// the server's `postgres` user can read.
struct Pki {
    dir: tempfile::TempDir,
    ca: Issued,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("pgsync-pki-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let t = now();
        let ca = issue("pgsync test CA", &[], None, true, t - DAY, t + 30 * DAY);
        let wrong = issue("some other CA", &[], None, true, t - DAY, t + 30 * DAY);
        let pki = Pki { dir, ca };
        pki.write_cert("ca.crt", &pki.ca.cert);
        pki.write_cert("wrong-ca.crt", &wrong.cert);

        let good = issue(
            "localhost",
            &["localhost", "127.0.0.1"],
            Some(&pki.ca),
            false,
            t - DAY,
            t + 30 * DAY,
        );
        let other = issue(
            "other.example",
            &["other.example"],
            Some(&pki.ca),
            false,
            t - DAY,
            t + 30 * DAY,
        );
        let expired = issue(
            "localhost",
            &["localhost", "127.0.0.1"],
            Some(&pki.ca),
            false,
            t - 30 * DAY,
            t - DAY,
        );
        for (name, issued) in [("good", &good), ("other", &other), ("expired", &expired)] {
            pki.write_cert(&format!("{name}.crt"), &issued.cert);
            pki.write_private(
                &format!("{name}.key"),
                &issued.key.private_key_to_pem_pkcs8().unwrap(),
            );
        }
        pki.use_server_cert("good");

        let client = issue("certuser", &[], Some(&pki.ca), false, t - DAY, t + 30 * DAY);
        pki.write_cert("client.crt", &client.cert);
        pki.write_private(
            "client.key",
            &client.key.private_key_to_pem_pkcs8().unwrap(),
        );
        pki.write_private(
            "client-pkcs8.key",
            &client
                .key
                .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), KEY_PW.as_bytes())
                .unwrap(),
        );
        pki.write_private(
            "client-legacy.key",
            &client
                .key
                .ec_key()
                .unwrap()
                .private_key_to_pem_passphrase(Cipher::aes_128_cbc(), KEY_PW.as_bytes())
                .unwrap(),
        );
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_cert(&self, name: &str, cert: &X509) {
        let p = self.path(name);
        std::fs::write(&p, cert.to_pem().unwrap()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    fn write_private(&self, name: &str, pem: &[u8]) {
        let p = self.path(name);
        std::fs::write(&p, pem).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// Makes `server.crt`/`server.key` the `name` pair (the server re-reads
    /// them on reload). The key belongs to the server's user, mode 0600.
    fn use_server_cert(&self, name: &str) {
        let crt = std::fs::read(self.path(&format!("{name}.crt"))).unwrap();
        let key = std::fs::read(self.path(&format!("{name}.key"))).unwrap();
        std::fs::write(self.path("server.crt"), crt).unwrap();
        std::fs::set_permissions(
            self.path("server.crt"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let key_path = self.path("server.key");
        std::fs::write(&key_path, key).unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        if is_root() {
            let (uid, gid) = postgres_ids().expect("the postgres user");
            std::os::unix::fs::chown(&key_path, Some(uid), Some(gid)).unwrap();
        }
    }

    /// `postgresql.conf` lines for a server with TLS on.
    fn server_settings(&self) -> Vec<String> {
        vec![
            "ssl = on".to_owned(),
            format!("ssl_cert_file = '{}'", self.path("server.crt").display()),
            format!("ssl_key_file = '{}'", self.path("server.key").display()),
            format!("ssl_ca_file = '{}'", self.path("ca.crt").display()),
        ]
    }
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// ---------------------------------------------------------------------------
// Roles and pg_hba rules

/// Roles for every authentication method, and rules that admit them only
/// over TLS (except `plainonly`, admitted only without TLS).
fn add_roles_and_rules(cluster: &LocalCluster) {
    let alice = ALICE_PW.replace('\'', "''");
    cluster
        .psql(
            "postgres",
            &[
                "-c",
                &format!(
                    "set password_encryption = 'scram-sha-256';\n\
                     create role alice login superuser password '{alice}';\n\
                     set password_encryption = 'md5';\n\
                     create role bob login superuser password '{BOB_PW}';\n\
                     create role certuser login superuser;\n\
                     create role trusty login superuser;\n\
                     create role plainonly login superuser;"
                ),
            ],
        )
        .unwrap();
    cluster
        .add_hba_rules(
            "hostssl all alice 127.0.0.1/32 scram-sha-256\n\
             hostssl all bob 127.0.0.1/32 md5\n\
             hostssl all certuser 127.0.0.1/32 cert\n\
             hostssl all trusty 127.0.0.1/32 trust\n\
             hostnossl all alice,bob,certuser,trusty 127.0.0.1/32 reject\n\
             hostssl all plainonly 127.0.0.1/32 reject\n\
             hostnossl all plainonly 127.0.0.1/32 trust",
        )
        .unwrap();
}

// ---------------------------------------------------------------------------
// Connecting in-process, isolated from the test process's environment

fn endpoint(host: &str, port: u16, user: &str, sslmode: SslMode) -> EndpointSpec {
    EndpointSpec {
        name: "src".into(),
        host: host.into(),
        port,
        database: "postgres".into(),
        user: user.into(),
        password: None,
        sslmode: Some(sslmode),
        tls: TlsFiles::default(),
        passfile: None,
    }
}

/// Settings as `connect` resolves them, with an empty environment and no
/// home directory (so nothing of the machine's ~/.pgpass or PG* leaks in).
fn params(ep: &EndpointSpec) -> ConnParams {
    let nothing = |_: &str| None;
    let env = Environment {
        var: &nothing,
        home: None,
    };
    resolve(ep, &env).expect("settings resolve")
}

/// An ordinary session: whether it uses TLS, or the error's full text.
async fn ordinary(ep: &EndpointSpec) -> Result<bool, String> {
    let c = connect_with(&params(ep))
        .await
        .map_err(|e| pgsync::error_chain(&e))?;
    let ssl = column(
        &c.client,
        "select ssl::text from pg_stat_ssl where pid = pg_backend_pid()",
    )
    .await;
    Ok(ssl[0].as_deref() == Some("true"))
}

/// A replication session (libpq): whether its walsender uses TLS, or the
/// error's full text.
async fn replication(ep: &EndpointSpec, admin: &Client) -> Result<bool, String> {
    let session = ReplicationSession::open_with(&params(ep))
        .await
        .map_err(|e| pgsync::error_chain(&e))?;
    let ssl = column(
        admin,
        "select s.ssl::text from pg_stat_ssl s join pg_stat_activity a using (pid) \
         where a.backend_type = 'walsender' order by a.backend_start desc limit 1",
    )
    .await;
    drop(session);
    Ok(ssl.first().and_then(|v| v.as_deref()) == Some("true"))
}

/// Both sessions succeed, with TLS or without as `tls` says.
async fn expect_ok(ep: &EndpointSpec, admin: &Client, tls: bool, case: &str) {
    assert_eq!(ordinary(ep).await, Ok(tls), "{case}: ordinary session");
    assert_eq!(
        replication(ep, admin).await,
        Ok(tls),
        "{case}: replication session"
    );
}

/// Both sessions fail with messages holding every one of `want`, and
/// neither holds a secret.
async fn expect_err(ep: &EndpointSpec, admin: &Client, want: &[&str], case: &str) {
    for (which, result) in [
        ("ordinary", ordinary(ep).await),
        ("replication", replication(ep, admin).await),
    ] {
        let err = match result {
            Err(e) => e,
            Ok(tls) => panic!("{case}: {which} session connected (tls: {tls})"),
        };
        eprintln!("{case}, {which} session: {err}");
        for w in want {
            assert!(
                err.contains(w),
                "{case}: {which} session error lacks {w:?}:\n{err}"
            );
        }
        for secret in [KEY_PW, ALICE_PW, BOB_PW, "wrong-password-31"] {
            assert!(
                !err.contains(secret),
                "{case}: {which} error shows a secret:\n{err}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sslmode_on_the_ordinary_and_the_replication_session() {
    let pki = Pki::new();
    let settings = pki.server_settings();
    let tls = LocalCluster::start(&refs(&settings)).expect("TLS cluster");
    let plain = LocalCluster::start(&[]).expect("plain cluster");
    add_roles_and_rules(&tls);
    let admin = connect(&tls, "postgres").await;
    let plain_admin = connect(&plain, "postgres").await;
    let ca = Some(pki.path("ca.crt"));

    let ep =
        |host: &str, cluster: &LocalCluster, mode| endpoint(host, cluster.port(), "postgres", mode);
    expect_ok(
        &ep("127.0.0.1", &tls, SslMode::Disable),
        &admin,
        false,
        "disable",
    )
    .await;
    expect_ok(
        &ep("127.0.0.1", &tls, SslMode::Prefer),
        &admin,
        true,
        "prefer, TLS server",
    )
    .await;
    expect_ok(
        &ep("127.0.0.1", &plain, SslMode::Prefer),
        &plain_admin,
        false,
        "prefer, plain server",
    )
    .await;
    expect_ok(
        &ep("127.0.0.1", &tls, SslMode::Require),
        &admin,
        true,
        "require",
    )
    .await;

    let mut verify_ca = ep("127.0.0.1", &tls, SslMode::VerifyCa);
    verify_ca.tls.sslrootcert = ca.clone();
    expect_ok(&verify_ca, &admin, true, "verify-ca").await;

    let mut by_name = ep("localhost", &tls, SslMode::VerifyFull);
    by_name.tls.sslrootcert = ca.clone();
    expect_ok(&by_name, &admin, true, "verify-full, DNS name in the SAN").await;
    let mut by_ip = ep("127.0.0.1", &tls, SslMode::VerifyFull);
    by_ip.tls.sslrootcert = ca.clone();
    expect_ok(&by_ip, &admin, true, "verify-full, IP address in the SAN").await;

    // prefer falls back to plain text when the TLS attempt is refused, as
    // libpq does (here pg_hba admits `plainonly` only without TLS).
    let fallback = endpoint("127.0.0.1", tls.port(), "plainonly", SslMode::Prefer);
    expect_ok(&fallback, &admin, false, "prefer, refused over TLS").await;
    let strict = endpoint("127.0.0.1", tls.port(), "plainonly", SslMode::Require);
    expect_err(
        &strict,
        &admin,
        &["on endpoint \"src\"", "pg_hba.conf rejects connection"],
        "require, refused over TLS",
    )
    .await;

    let no_tls = ep("127.0.0.1", &plain, SslMode::Require);
    expect_err(
        &no_tls,
        &plain_admin,
        &[
            "TLS is not available on endpoint \"src\"",
            &format!(
                "the server at 127.0.0.1:{} does not accept TLS connections",
                plain.port()
            ),
            "sslmode = \"require\"",
        ],
        "require against a server without TLS",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_problems_name_the_endpoint_and_the_reason() {
    let pki = Pki::new();
    let settings = pki.server_settings();
    let cluster = LocalCluster::start(&refs(&settings)).expect("TLS cluster");
    let admin = connect(&cluster, "postgres").await;
    let with_root = |host: &str, mode, root: &str| {
        let mut ep = endpoint(host, cluster.port(), "postgres", mode);
        ep.tls.sslrootcert = Some(pki.path(root));
        ep
    };

    expect_err(
        &with_root("localhost", SslMode::VerifyFull, "wrong-ca.crt"),
        &admin,
        &[
            "TLS handshake failed on endpoint \"src\"",
            "the server's certificate (CN=localhost) is not signed by a CA in sslrootcert",
            "wrong-ca.crt",
        ],
        "verify-full with the wrong CA",
    )
    .await;
    expect_err(
        &with_root("127.0.0.1", SslMode::VerifyCa, "wrong-ca.crt"),
        &admin,
        &[
            "TLS handshake failed on endpoint \"src\"",
            "is not signed by a CA",
        ],
        "verify-ca with the wrong CA",
    )
    .await;
    // A root certificate that exists turns on verification under require
    // too, as in libpq.
    expect_err(
        &with_root("127.0.0.1", SslMode::Require, "wrong-ca.crt"),
        &admin,
        &[
            "TLS handshake failed on endpoint \"src\"",
            "is not signed by a CA",
        ],
        "require with a root certificate",
    )
    .await;

    // A certificate for another name: verify-full refuses it, verify-ca
    // (no host name check) accepts it.
    pki.use_server_cert("other");
    cluster.reload().unwrap();
    expect_err(
        &with_root("127.0.0.1", SslMode::VerifyFull, "ca.crt"),
        &admin,
        &[
            "TLS handshake failed on endpoint \"src\"",
            "the server's certificate is for other.example but not for host \"127.0.0.1\"",
        ],
        "verify-full, host name mismatch",
    )
    .await;
    expect_err(
        &with_root("localhost", SslMode::VerifyFull, "ca.crt"),
        &admin,
        &["is for other.example but not for host \"localhost\""],
        "verify-full, host name mismatch by name",
    )
    .await;
    expect_ok(
        &with_root("127.0.0.1", SslMode::VerifyCa, "ca.crt"),
        &admin,
        true,
        "verify-ca, other name",
    )
    .await;

    // An expired certificate.
    pki.use_server_cert("expired");
    cluster.reload().unwrap();
    expect_err(
        &with_root("localhost", SslMode::VerifyCa, "ca.crt"),
        &admin,
        &[
            "TLS handshake failed on endpoint \"src\"",
            "the server's certificate (CN=localhost) expired on",
        ],
        "verify-ca, expired certificate",
    )
    .await;
    expect_ok(
        &endpoint("127.0.0.1", cluster.port(), "postgres", SslMode::Require),
        &admin,
        true,
        "require checks nothing",
    )
    .await;

    // verify-* without any root certificate is a settings error.
    let none = endpoint("localhost", cluster.port(), "postgres", SslMode::VerifyFull);
    let nothing = |_: &str| None;
    let err = resolve(
        &none,
        &Environment {
            var: &nothing,
            home: None,
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no root certificate is set"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_md5_trust_and_client_certificates_and_their_failures() {
    let pki = Pki::new();
    let settings = pki.server_settings();
    let cluster = LocalCluster::start(&refs(&settings)).expect("TLS cluster");
    add_roles_and_rules(&cluster);
    let admin = connect(&cluster, "postgres").await;
    let ep = |user: &str, password: Option<&str>| {
        let mut ep = endpoint("localhost", cluster.port(), user, SslMode::VerifyFull);
        ep.tls.sslrootcert = Some(pki.path("ca.crt"));
        ep.password = password.map(Secret::new);
        ep
    };

    expect_ok(&ep("alice", Some(ALICE_PW)), &admin, true, "scram-sha-256").await;
    expect_ok(&ep("bob", Some(BOB_PW)), &admin, true, "md5").await;
    expect_ok(&ep("trusty", None), &admin, true, "trust").await;
    for user in ["alice", "bob"] {
        expect_err(
            &ep(user, Some("wrong-password-31")),
            &admin,
            &[
                &format!("authentication failed for user \"{user}\" on endpoint \"src\""),
                "the server rejected the password (from `password` in the configuration)",
            ],
            "wrong password",
        )
        .await;
    }
    expect_err(
        &ep("alice", None),
        &admin,
        &[
            "authentication failed for user \"alice\" on endpoint \"src\"",
            "the server asks for a password and none is set",
        ],
        "no password",
    )
    .await;

    // Client certificates: `cert` in pg_hba, the key plain or encrypted.
    let with_key = |key: &str, password: Option<&str>| {
        let mut e = ep("certuser", None);
        e.tls.sslcert = Some(pki.path("client.crt"));
        e.tls.sslkey = Some(pki.path(key));
        e.tls.sslpassword = password.map(Secret::new);
        e
    };
    expect_ok(
        &with_key("client.key", None),
        &admin,
        true,
        "client certificate",
    )
    .await;
    expect_ok(
        &with_key("client-pkcs8.key", Some(KEY_PW)),
        &admin,
        true,
        "encrypted PKCS#8 key",
    )
    .await;
    expect_ok(
        &with_key("client-legacy.key", Some(KEY_PW)),
        &admin,
        true,
        "encrypted traditional PEM key",
    )
    .await;
    expect_err(
        &with_key("client-pkcs8.key", Some("wrong-password-31")),
        &admin,
        &[
            "unusable connection settings on endpoint \"src\"",
            "client-pkcs8.key\" cannot be read with the given sslpassword",
        ],
        "wrong sslpassword",
    )
    .await;
    expect_err(
        &with_key("client-legacy.key", None),
        &admin,
        &["client-legacy.key\" is encrypted: set `sslpassword`"],
        "encrypted key without sslpassword",
    )
    .await;
    expect_err(
        &ep("certuser", None),
        &admin,
        &[
            "authentication failed for user \"certuser\" on endpoint \"src\"",
            "requires a valid client certificate",
        ],
        "cert authentication without a certificate",
    )
    .await;
    let open_key = pki.path("open.key");
    std::fs::copy(pki.path("client.key"), &open_key).unwrap();
    std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    expect_err(
        &with_key("open.key", None),
        &admin,
        &["open.key\" has group or world access"],
        "key readable by others",
    )
    .await;
}

/// `pgsync --chdir WS ARGS` with a clean `PG*` environment and HOME in the
/// workspace, plus `env`.
fn pgsync(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = ws.command(args);
    for var in [
        "PGPASSWORD",
        "PGPASSFILE",
        "PGSSLMODE",
        "PGSSLROOTCERT",
        "PGSSLCERT",
        "PGSSLKEY",
        "PGSSLSNI",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", ws.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run pgsync")
}

fn copy_private(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// pgpass escaping: `\` and `:` get a backslash.
fn pgpass_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace(':', "\\:")
}

#[test]
fn the_cli_names_the_endpoint_and_honours_pg_variables_and_password_files() {
    let pki = Pki::new();
    let settings = pki.server_settings();
    let pair = Pair::start_with(&[], &refs(&settings));
    add_roles_and_rules(&pair.destination);
    pair.source
        .psql("app", &["-c", "create table t (id int primary key)"])
        .unwrap();
    let config = |dst_extra: &str| {
        format!(
            r#"endpoint "src" {{
  host     = "127.0.0.1"
  port     = {}
  database = "app"
  user     = "postgres"
  sslmode  = "disable"
}}

endpoint "dst" {{
  host     = "127.0.0.1"
  port     = {}
  database = "app"
  user     = "alice"
{dst_extra}
}}

task "t" {{
  source      = endpoint.src
  destination = endpoint.dst
  schema "public" {{}}
}}
"#,
            pair.source.port(),
            pair.destination.port()
        )
    };
    let verified = "  sslmode = \"verify-full\"\n  sslrootcert = \"ca.crt\"";
    let run = |extra: &str, env: &[(&str, &str)]| {
        let ws = Workspace::with_config(&config(extra));
        std::fs::copy(pki.path("ca.crt"), ws.path().join("ca.crt")).unwrap();
        let out = pgsync(&ws, &["precheck"], env);
        (out, ws)
    };
    let ok = |out: &std::process::Output, case: &str| {
        assert_eq!(out.status.code(), Some(0), "{case}: {}", text(out));
    };
    let auth_failed = |out: &std::process::Output, case: &str| {
        assert_eq!(out.status.code(), Some(1), "{case}: {}", text(out));
        let all = text(out);
        assert!(
            all.contains("error: authentication failed for user \"alice\" on endpoint \"dst\": the server rejected the password"),
            "{case}: {all}"
        );
        for secret in [ALICE_PW, "wrong-password-31"] {
            assert!(!all.contains(secret), "{case}: a password is shown: {all}");
        }
    };

    // The password in the configuration (relative sslrootcert: the
    // configuration directory).
    let (out, _) = run(
        &format!(
            "{verified}\n  password = \"{}\"",
            ALICE_PW.replace('\\', "\\\\")
        ),
        &[],
    );
    ok(&out, "password in the configuration");
    let (out, _) = run(
        &format!("{verified}\n  password = \"wrong-password-31\""),
        &[],
    );
    auth_failed(&out, "wrong password in the configuration");
    // PGPASSWORD when the configuration has none; the configuration wins.
    let (out, _) = run(verified, &[("PGPASSWORD", ALICE_PW)]);
    ok(&out, "PGPASSWORD");
    let (out, _) = run(
        &format!("{verified}\n  password = \"wrong-password-31\""),
        &[("PGPASSWORD", ALICE_PW)],
    );
    auth_failed(&out, "the configuration beats PGPASSWORD");

    // Password files: ~/.pgpass, PGPASSFILE, `passfile`; PGPASSWORD beats them.
    let line = format!("127.0.0.1:*:app:alice:{}\n", pgpass_escape(ALICE_PW));
    let ws = Workspace::with_config(&config(verified));
    std::fs::copy(pki.path("ca.crt"), ws.path().join("ca.crt")).unwrap();
    let home_pgpass = ws.path().join(".pgpass");
    std::fs::write(&home_pgpass, format!("# comment\n*:*:*:bob:x\n{line}")).unwrap();
    std::fs::set_permissions(&home_pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    ok(&pgsync(&ws, &["precheck"], &[]), "~/.pgpass");
    auth_failed(
        &pgsync(&ws, &["precheck"], &[("PGPASSWORD", "wrong-password-31")]),
        "PGPASSWORD beats the password file",
    );
    std::fs::set_permissions(&home_pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = pgsync(&ws, &["precheck"], &[]);
    assert!(
        text(&out).contains("the server asks for a password and none is set")
            && text(&out).contains("group or world access"),
        "an open ~/.pgpass is ignored, as libpq does: {}",
        text(&out)
    );
    let other = ws.path().join("other-pgpass");
    std::fs::write(&other, &line).unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
    ok(
        &pgsync(
            &ws,
            &["precheck"],
            &[("PGPASSFILE", other.to_str().unwrap())],
        ),
        "PGPASSFILE",
    );
    let (out, _) = {
        let ws = Workspace::with_config(&config(&format!(
            "{verified}\n  passfile = \"secrets/pgpass\""
        )));
        std::fs::copy(pki.path("ca.crt"), ws.path().join("ca.crt")).unwrap();
        std::fs::create_dir(ws.path().join("secrets")).unwrap();
        std::fs::write(ws.path().join("secrets/pgpass"), &line).unwrap();
        std::fs::set_permissions(
            ws.path().join("secrets/pgpass"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        (
            pgsync(&ws, &["precheck"], &[("PGPASSFILE", "/nonexistent")]),
            ws,
        )
    };
    ok(&out, "passfile beats PGPASSFILE");

    // PGSSLMODE and PGSSLROOTCERT apply when the configuration leaves them out.
    let wrong_ca = pki.path("wrong-ca.crt");
    let (out, _) = run(
        "",
        &[
            ("PGPASSWORD", ALICE_PW),
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", wrong_ca.to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("error: TLS handshake failed on endpoint \"dst\": the server's certificate (CN=localhost) is not signed by a CA in sslrootcert"),
        "{}",
        text(&out)
    );
    let (out, _) = run("", &[("PGPASSWORD", ALICE_PW), ("PGSSLMODE", "disable")]);
    assert!(
        text(&out).contains("pg_hba.conf rejects connection"),
        "PGSSLMODE=disable is honoured: {}",
        text(&out)
    );
}

#[test]
fn apply_runs_through_tls_with_a_client_certificate_and_a_password_file_and_leaks_no_secret() {
    let pki = Pki::new();
    let settings = pki.server_settings();
    let pair = Pair::start_with(&refs(&settings), &refs(&settings));
    add_roles_and_rules(&pair.source);
    add_roles_and_rules(&pair.destination);
    pair.source
        .psql(
            "app",
            &[
                "-c",
                "create table items (id int primary key, v text); \
                 insert into items select g, 'v' || g from generate_series(1, 500) g",
            ],
        )
        .unwrap();

    let hcl = format!(
        r#"endpoint "src" {{
  host        = "localhost"
  port        = {}
  database    = "app"
  user        = "certuser"
  sslmode     = "verify-full"
  sslrootcert = "tls/ca.crt"
  sslcert     = "tls/client.crt"
  sslkey      = "tls/client.key"
  sslpassword = env("PGSYNC_TEST_KEY_PASSWORD")
}}

endpoint "dst" {{
  host        = "127.0.0.1"
  port        = {}
  database    = "app"
  user        = "alice"
  sslmode     = "verify-full"
  sslrootcert = "tls/ca.crt"
  passfile    = "tls/pgpass"
}}

task "tls" {{
  source      = endpoint.src
  destination = endpoint.dst
  schema "public" {{}}
}}
"#,
        pair.source.port(),
        pair.destination.port()
    );
    let ws = Workspace::with_config(&hcl);
    let tls_dir = ws.path().join("tls");
    std::fs::create_dir(&tls_dir).unwrap();
    std::fs::copy(pki.path("ca.crt"), tls_dir.join("ca.crt")).unwrap();
    std::fs::copy(pki.path("client.crt"), tls_dir.join("client.crt")).unwrap();
    copy_private(&pki.path("client-pkcs8.key"), &tls_dir.join("client.key"));
    std::fs::write(
        tls_dir.join("pgpass"),
        format!(
            "127.0.0.1:{}:app:alice:{}\n",
            pair.destination.port(),
            pgpass_escape(ALICE_PW)
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        tls_dir.join("pgpass"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();

    let env = [("PGSYNC_TEST_KEY_PASSWORD", KEY_PW), ("RUST_LOG", "trace")];
    let mut outputs = Vec::new();
    let out = pgsync(
        &ws,
        &["apply", "--auto-approve", "--exit-when-caught-up"],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "apply: {}", text(&out));
    outputs.push(text(&out));
    let count = pair
        .destination
        .psql("app", &["-tAc", "select count(*) from items"])
        .unwrap();
    assert_eq!(count.trim(), "500");

    // The replication session streams a change through TLS too.
    pair.source
        .psql("app", &["-c", "insert into items values (501, 'late')"])
        .unwrap();
    let out = pgsync(
        &ws,
        &["apply", "--auto-approve", "--exit-when-caught-up"],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "second apply: {}", text(&out));
    outputs.push(text(&out));
    let count = pair
        .destination
        .psql("app", &["-tAc", "select count(*) from items"])
        .unwrap();
    assert_eq!(count.trim(), "501", "{}", text(&out));

    // What pgsync wrote is private to its user.
    let state = ws.path().join(".pgsync");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700, ".pgsync");
    for name in ["pid", "status.json"] {
        if state.join(name).exists() {
            assert_eq!(mode(&state.join(name)), 0o600, "{name}");
        }
    }
    let plan_file = ws.path().join("saved.plan");
    let out = pgsync(&ws, &["plan", "--out", plan_file.to_str().unwrap()], &env);
    assert_eq!(out.status.code(), Some(0), "plan --out: {}", text(&out));
    assert_eq!(mode(&plan_file), 0o600, "plan file");
    outputs.push(text(&out));
    outputs.push(String::from_utf8_lossy(&std::fs::read(&plan_file).unwrap()).into_owned());

    for args in [
        &["status"][..],
        &["status", "--json"],
        &["plan"],
        &["destroy", "--auto-approve"],
    ] {
        let out = pgsync(&ws, args, &env);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        outputs.push(text(&out));
    }
    let mut files = Vec::new();
    collect_files(&ws.path().join(".pgsync"), &mut files);
    for f in files {
        let bytes = std::fs::read(&f).unwrap_or_default();
        outputs.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    for secret in [KEY_PW, ALICE_PW, &pgpass_escape(ALICE_PW)] {
        for o in &outputs {
            assert!(!o.contains(secret), "a secret leaked:\n{o}");
        }
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, out);
        } else {
            out.push(p);
        }
    }
}
