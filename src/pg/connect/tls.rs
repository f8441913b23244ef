//! TLS for tokio-postgres sessions, through OpenSSL (`postgres-openssl`),
//! configured as libpq configures its own OpenSSL session:
//!
//! - only `sslrootcert` is trusted (never the system store);
//! - `verify-ca` checks the chain, `verify-full` also the host name (DNS or
//!   IP address SANs, RFC 6125 rules via OpenSSL's `X509_check_host/ip`);
//!   `require`/`prefer` check nothing unless a root certificate exists;
//! - the client certificate chain and its key (PEM, PKCS#8 or traditional,
//!   encrypted or not) are loaded as libpq does, including its key-file
//!   permission rule;
//! - TLS 1.2 at least (libpq's `ssl_min_protocol_version` default).
//!
//! A [`Probe`] records what happened during the handshake (whether TLS
//! started, the first certificate verification error) so a failure can be
//! explained in words instead of an OpenSSL error stack.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509Ref, X509StoreContextRef};
use postgres_openssl::MakeTlsConnector;
use tokio_postgres::Socket;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};

use super::ConnectFailure;
use super::params::{ClientCert, TlsParams, show};

/// The certificates and key of a connection, read and checked.
pub struct Material {
    roots: Vec<X509>,
    client: Option<(Vec<X509>, PKey<Private>)>,
}

fn settings(message: String) -> ConnectFailure {
    ConnectFailure::Settings(message)
}

impl Material {
    /// Reads `sslrootcert`, `sslcert` and `sslkey`, decrypting the key with
    /// `sslpassword`, and checks that the key belongs to the certificate.
    ///
    /// # Errors
    /// [`ConnectFailure::Settings`] naming the file and what is wrong with
    /// it; never the key password.
    pub fn load(p: &TlsParams) -> Result<Material, ConnectFailure> {
        let roots = match &p.rootcert {
            Some(path) if p.verify_chain => {
                let pem = std::fs::read(path).map_err(|e| {
                    settings(format!("sslrootcert {} cannot be read: {e}", show(path)))
                })?;
                let certs = X509::stack_from_pem(&pem).unwrap_or_default();
                if certs.is_empty() {
                    return Err(settings(format!(
                        "sslrootcert {} holds no PEM certificate",
                        show(path)
                    )));
                }
                certs
            }
            _ => Vec::new(),
        };
        let client = match &p.client {
            None => None,
            Some(c) => Some(load_client(c)?),
        };
        Ok(Material { roots, client })
    }

    /// The OpenSSL context for this material: TLS 1.2 at least, trusting
    /// exactly the roots, presenting the client certificate. Built once per
    /// distinct material and process (building one loads the system's CA
    /// bundle, which [`SslConnector::builder`] always does, costing more
    /// CPU than a copy session moves in a second); the cache is keyed by a
    /// SHA-256 of the certificates and key, so a changed file gets a new
    /// context and no key bytes are kept besides the context itself.
    fn base(&self) -> Result<SslConnector, ConnectFailure> {
        static CACHE: OnceLock<Mutex<HashMap<[u8; 32], SslConnector>>> = OnceLock::new();
        let openssl = |e: openssl::error::ErrorStack| settings(format!("setting up TLS: {e}"));
        let mut digest = openssl::sha::Sha256::new();
        for cert in &self.roots {
            digest.update(b"root");
            digest.update(&cert.to_der().map_err(openssl)?);
        }
        if let Some((chain, key)) = &self.client {
            for cert in chain {
                digest.update(b"chain");
                digest.update(&cert.to_der().map_err(openssl)?);
            }
            digest.update(b"key");
            digest.update(&key.private_key_to_der().map_err(openssl)?);
        }
        let digest = digest.finish();
        let cache = CACHE.get_or_init(Mutex::default);
        if let Some(c) = cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&digest)
        {
            return Ok(c.clone());
        }
        let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(openssl)?;
        b.set_min_proto_version(Some(SslVersion::TLS1_2))
            .map_err(openssl)?;
        // Trust exactly sslrootcert, as libpq does (the builder loaded the
        // system's default store).
        let mut store = X509StoreBuilder::new().map_err(openssl)?;
        for cert in &self.roots {
            store.add_cert(cert.clone()).map_err(openssl)?;
        }
        b.set_cert_store(store.build());
        if let Some((chain, key)) = &self.client {
            let (leaf, rest) = chain.split_first().expect("checked non-empty");
            b.set_certificate(leaf).map_err(openssl)?;
            for extra in rest {
                b.add_extra_chain_cert(extra.clone()).map_err(openssl)?;
            }
            b.set_private_key(key).map_err(openssl)?;
        }
        let connector = b.build();
        cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(digest, connector.clone());
        Ok(connector)
    }

    /// A connector for one connection attempt, reporting into `probe`.
    ///
    /// # Errors
    /// [`ConnectFailure::Settings`] when OpenSSL refuses the material.
    pub fn connector(
        &self,
        p: &TlsParams,
        probe: &Arc<Probe>,
    ) -> Result<TrackedMake, ConnectFailure> {
        let mut make = MakeTlsConnector::new(self.base()?);
        let (verify_chain, verify_host, sni) = (p.verify_chain, p.verify_host, p.sni);
        let recorder = Arc::clone(probe);
        make.set_callback(move |config, _host| {
            config.set_use_server_name_indication(sni);
            config.set_verify_hostname(verify_host);
            if verify_chain {
                let recorder = Arc::clone(&recorder);
                config.set_verify_callback(SslVerifyMode::PEER, move |ok, ctx| {
                    if !ok {
                        recorder.record(ctx);
                    }
                    ok
                });
            } else {
                config.set_verify(SslVerifyMode::NONE);
            }
            Ok(())
        });
        Ok(TrackedMake {
            inner: make,
            probe: Arc::clone(probe),
        })
    }
}

fn load_client(c: &ClientCert) -> Result<(Vec<X509>, PKey<Private>), ConnectFailure> {
    let pem = std::fs::read(&c.cert)
        .map_err(|e| settings(format!("sslcert {} cannot be read: {e}", show(&c.cert))))?;
    let chain = X509::stack_from_pem(&pem).unwrap_or_default();
    let Some(leaf) = chain.first() else {
        return Err(settings(format!(
            "sslcert {} holds no PEM certificate",
            show(&c.cert)
        )));
    };
    check_key_permissions(&c.key)?;
    let pem = std::fs::read(&c.key)
        .map_err(|e| settings(format!("sslkey {} cannot be read: {e}", show(&c.key))))?;
    let key = match &c.password {
        Some(password) => PKey::private_key_from_pem_passphrase(&pem, password.expose().as_bytes())
            .map_err(|_| {
                settings(format!(
                    "sslkey {} cannot be read with the given sslpassword: the password is wrong, \
                     or the file is not a PEM private key",
                    show(&c.key)
                ))
            })?,
        None => {
            // Never let OpenSSL prompt on the terminal: answer "no
            // password" and note that one was asked for.
            let asked = AtomicBool::new(false);
            PKey::private_key_from_pem_callback(&pem, |_buf| {
                asked.store(true, Ordering::Relaxed);
                Ok(0)
            })
            .map_err(|_| {
                if asked.load(Ordering::Relaxed) {
                    settings(format!(
                        "sslkey {} is encrypted: set `sslpassword`",
                        show(&c.key)
                    ))
                } else {
                    settings(format!("sslkey {} is not a PEM private key", show(&c.key)))
                }
            })?
        }
    };
    let public = leaf
        .public_key()
        .map_err(|e| settings(format!("sslcert {}: {e}", show(&c.cert))))?;
    if !key.public_eq(&public) {
        return Err(settings(format!(
            "sslkey {} does not belong to the certificate in sslcert {}",
            show(&c.key),
            show(&c.cert)
        )));
    }
    Ok((chain, key))
}

/// libpq's rule for private key files: a regular file, mode 0600 or less,
/// or 0640 or less when owned by root.
fn check_key_permissions(path: &std::path::Path) -> Result<(), ConnectFailure> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| settings(format!("sslkey {} cannot be read: {e}", show(path))))?;
    if !meta.is_file() {
        return Err(settings(format!(
            "sslkey {} is not a regular file",
            show(path)
        )));
    }
    let mode = meta.mode();
    let too_open = if meta.uid() == 0 {
        mode & 0o037 != 0
    } else {
        mode & 0o077 != 0
    };
    if too_open {
        return Err(settings(format!(
            "sslkey {} has group or world access; it must have permissions u=rw (0600) or less \
             if owned by the current user, or u=rw,g=r (0640) or less if owned by root",
            show(path)
        )));
    }
    Ok(())
}

/// What happened during one connection attempt's TLS handshake.
#[derive(Default)]
pub struct Probe {
    started: AtomicBool,
    failure: Mutex<Option<VerifyFailure>>,
}

/// The first certificate verification error of a handshake.
#[derive(Debug, Clone)]
pub struct VerifyFailure {
    /// OpenSSL's `X509_V_ERR_*` code.
    pub code: i32,
    /// OpenSSL's text for it.
    pub text: &'static str,
    /// 0 for the server's own certificate.
    pub depth: u32,
    /// The failing certificate's subject.
    pub subject: String,
    /// The server's own certificate's subject.
    pub leaf: String,
    /// DNS and IP address SANs (or the CN when there are none).
    pub names: Vec<String>,
    /// `notBefore` .. `notAfter`.
    pub validity: (String, String),
}

impl Probe {
    /// Whether the server agreed to TLS and the handshake began.
    pub fn started(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }

    /// The first verification error, if any.
    pub fn failure(&self) -> Option<VerifyFailure> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    fn record(&self, ctx: &X509StoreContextRef) {
        let Ok(mut slot) = self.failure.lock() else {
            return;
        };
        if slot.is_some() {
            return;
        }
        let err = ctx.error();
        let (subject, names, validity) = match ctx.current_cert() {
            Some(cert) => (
                subject_of(cert),
                names_of(cert),
                (cert.not_before().to_string(), cert.not_after().to_string()),
            ),
            None => (String::new(), Vec::new(), (String::new(), String::new())),
        };
        let leaf = ctx
            .chain()
            .and_then(|c| c.iter().next().map(subject_of))
            .unwrap_or_else(|| subject.clone());
        *slot = Some(VerifyFailure {
            code: err.as_raw(),
            text: err.error_string(),
            depth: ctx.error_depth(),
            leaf,
            subject,
            names,
            validity,
        });
    }
}

fn subject_of(cert: &X509Ref) -> String {
    let mut out = String::new();
    for entry in cert.subject_name().entries() {
        let key = entry.object().nid().short_name().unwrap_or("?");
        let value = entry.data().to_string().unwrap_or_default();
        if !out.is_empty() {
            out.push_str(", ");
        }
        let _ = write!(out, "{key}={value}");
    }
    out
}

fn names_of(cert: &X509Ref) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(sans) = cert.subject_alt_names() {
        for san in &sans {
            if let Some(dns) = san.dnsname() {
                names.push(dns.to_owned());
            } else if let Some(ip) = san.ipaddress() {
                let addr = match ip.len() {
                    4 => <[u8; 4]>::try_from(ip)
                        .map(|a| std::net::IpAddr::from(a).to_string())
                        .ok(),
                    16 => <[u8; 16]>::try_from(ip)
                        .map(|a| std::net::IpAddr::from(a).to_string())
                        .ok(),
                    _ => None,
                };
                names.extend(addr);
            }
        }
    }
    if names.is_empty() {
        for cn in cert.subject_name().entries_by_nid(Nid::COMMONNAME) {
            if let Ok(s) = cn.data().to_string() {
                names.push(s);
            }
        }
    }
    names
}

/// OpenSSL's `X509_V_ERR_*` codes that get their own explanation.
mod code {
    pub const UNABLE_TO_GET_ISSUER_CERT: i32 = 2;
    pub const CERT_SIGNATURE_FAILURE: i32 = 7;
    pub const CERT_NOT_YET_VALID: i32 = 9;
    pub const CERT_HAS_EXPIRED: i32 = 10;
    pub const DEPTH_ZERO_SELF_SIGNED_CERT: i32 = 18;
    pub const SELF_SIGNED_CERT_IN_CHAIN: i32 = 19;
    pub const UNABLE_TO_GET_ISSUER_CERT_LOCALLY: i32 = 20;
    pub const UNABLE_TO_VERIFY_LEAF_SIGNATURE: i32 = 21;
    pub const HOSTNAME_MISMATCH: i32 = 62;
    pub const IP_ADDRESS_MISMATCH: i32 = 64;
}

/// The words for a certificate verification failure.
pub fn explain(f: &VerifyFailure, p: &TlsParams, host: &str) -> String {
    let whose = if f.depth == 0 {
        "the server's certificate".to_owned()
    } else {
        format!("certificate {} in the server's chain", f.subject)
    };
    let root = p
        .rootcert
        .as_deref()
        .map(show)
        .unwrap_or_else(|| "(none)".into());
    match f.code {
        code::HOSTNAME_MISMATCH | code::IP_ADDRESS_MISMATCH => format!(
            "the server's certificate is for {} but not for host {host:?} (sslmode = \
             \"verify-full\" checks the host name; connect by a name the certificate lists, or \
             use \"verify-ca\")",
            if f.names.is_empty() {
                "no host name".to_owned()
            } else {
                f.names.join(", ")
            }
        ),
        code::CERT_HAS_EXPIRED => format!("{whose} ({}) expired on {}", f.subject, f.validity.1),
        code::CERT_NOT_YET_VALID => format!(
            "{whose} ({}) is not valid before {}",
            f.subject, f.validity.0
        ),
        code::UNABLE_TO_GET_ISSUER_CERT
        | code::UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        | code::UNABLE_TO_VERIFY_LEAF_SIGNATURE
        | code::SELF_SIGNED_CERT_IN_CHAIN
        | code::DEPTH_ZERO_SELF_SIGNED_CERT
        | code::CERT_SIGNATURE_FAILURE => format!(
            "the server's certificate ({}) is not signed by a CA in sslrootcert {root} (wrong \
             CA? OpenSSL: {}, at {})",
            f.leaf, f.text, f.subject
        ),
        _ => format!("{whose} ({}) was rejected: {}", f.subject, f.text),
    }
}

/// `postgres_openssl::MakeTlsConnector` that tells its [`Probe`] when the
/// server agreed to TLS.
pub struct TrackedMake {
    inner: MakeTlsConnector,
    probe: Arc<Probe>,
}

/// One connection's TLS connector.
pub struct TrackedConnect {
    inner: postgres_openssl::TlsConnector,
    probe: Arc<Probe>,
}

impl MakeTlsConnect<Socket> for TrackedMake {
    type Stream = postgres_openssl::TlsStream<Socket>;
    type TlsConnect = TrackedConnect;
    type Error = openssl::error::ErrorStack;

    fn make_tls_connect(&mut self, domain: &str) -> Result<TrackedConnect, Self::Error> {
        let inner = <MakeTlsConnector as MakeTlsConnect<Socket>>::make_tls_connect(
            &mut self.inner,
            domain,
        )?;
        Ok(TrackedConnect {
            inner,
            probe: Arc::clone(&self.probe),
        })
    }
}

impl TlsConnect<Socket> for TrackedConnect {
    type Stream = postgres_openssl::TlsStream<Socket>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = <postgres_openssl::TlsConnector as TlsConnect<Socket>>::Future;

    fn connect(self, stream: Socket) -> Self::Future {
        self.probe.started.store(true, Ordering::SeqCst);
        TlsConnect::connect(self.inner, stream)
    }
}
