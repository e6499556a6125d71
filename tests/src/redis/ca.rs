//! A throwaway certificate authority, made with the `openssl` CLI, for TLS Redis.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ::redis::{ClientTlsConfig, TlsCertificates};

/// A private CA and the certificates the TLS tests need, as PEM files in a temp
/// dir that is removed on drop. Keys are ECDSA P-256, certificates last 30 days.
///
/// - [`ca_cert`](Self::ca_cert) / [`ca_key`](Self::ca_key): the CA (self-signed).
/// - [`server_cert`](Self::server_cert) / [`server_key`](Self::server_key): signed by
///   the CA, subjectAltName `IP:127.0.0.1, DNS:localhost`, extended key usage
///   serverAuth *and* clientAuth (Redis presents it as its client certificate on
///   replication and cluster-bus links too).
/// - [`client_cert`](Self::client_cert) / [`client_key`](Self::client_key): signed
///   by the CA, clientAuth only.
/// - [`other_ca_cert`](Self::other_ca_cert) / [`other_ca_key`](Self::other_ca_key):
///   an unrelated CA, for "untrusted certificate" tests, and
///   [`other_client_cert`](Self::other_client_cert) /
///   [`other_client_key`](Self::other_client_key), a client certificate it signed.
pub struct TestCa {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub other_ca_cert: PathBuf,
    pub other_ca_key: PathBuf,
    pub other_client_cert: PathBuf,
    pub other_client_key: PathBuf,
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const CURVE: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("openssl {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn has_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn serial() -> String {
    format!("0x{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

/// A self-signed CA: `<name>.key`, `<name>.crt`.
fn make_ca(dir: &Path, name: &str, cn: &str) -> Result<(), String> {
    let (key, crt, subj) = (
        format!("{name}.key"),
        format!("{name}.crt"),
        format!("/CN={cn}"),
    );
    let mut args = vec!["req", "-x509", "-new", "-nodes"];
    args.extend(CURVE);
    args.extend([
        "-keyout",
        &key,
        "-out",
        &crt,
        "-days",
        "30",
        "-subj",
        &subj,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &args)
}

/// A leaf `<name>.key`, `<name>.crt` signed by the CA `<ca>.key`/`<ca>.crt`.
fn make_leaf(dir: &Path, name: &str, ca: &str, cn: &str, ext: &str) -> Result<(), String> {
    let (key, csr, crt, extfile) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
        format!("{name}.ext"),
    );
    let subj = format!("/CN={cn}");
    std::fs::write(dir.join(&extfile), ext).map_err(|e| format!("{extfile}: {e}"))?;
    let mut args = vec!["req", "-new", "-nodes"];
    args.extend(CURVE);
    args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
    openssl(dir, &args)?;
    let (ca_crt, ca_key, serial) = (format!("{ca}.crt"), format!("{ca}.key"), serial());
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-set_serial",
            &serial,
            "-days",
            "30",
            "-extfile",
            &extfile,
            "-out",
            &crt,
        ],
    )
}

const SERVER_EXT: &str = "basicConstraints=critical,CA:FALSE\n\
keyUsage=critical,digitalSignature,keyEncipherment\n\
extendedKeyUsage=serverAuth,clientAuth\n\
subjectAltName=IP:127.0.0.1,DNS:localhost\n";

const CLIENT_EXT: &str = "basicConstraints=critical,CA:FALSE\n\
keyUsage=critical,digitalSignature\n\
extendedKeyUsage=clientAuth\n";

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

impl TestCa {
    /// Generates a fresh CA and its certificates, or `None` (after saying so
    /// loudly; a failure under `AUTHGATE_REQUIRE_REDIS=1`) without `openssl`.
    ///
    /// Also installs rustls' `ring` provider as the process default (see
    /// [`install_crypto_provider`](super::install_crypto_provider)), since whoever
    /// makes a CA is about to open TLS connections.
    pub fn new() -> Option<Self> {
        if !has_openssl() {
            return super::unavailable("this TLS Redis test", "the openssl CLI on PATH");
        }
        super::install_crypto_provider();
        let dir =
            std::env::temp_dir().join(format!("authgate-ca-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("CA temp dir");
        let ca = Self {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
            other_ca_cert: dir.join("other-ca.crt"),
            other_ca_key: dir.join("other-ca.key"),
            other_client_cert: dir.join("other-client.crt"),
            other_client_key: dir.join("other-client.key"),
            dir,
        };
        let made = make_ca(&ca.dir, "ca", "authgate test CA")
            .and_then(|()| make_leaf(&ca.dir, "server", "ca", "localhost", SERVER_EXT))
            .and_then(|()| make_leaf(&ca.dir, "client", "ca", "authgate-test-client", CLIENT_EXT))
            .and_then(|()| make_ca(&ca.dir, "other-ca", "unrelated test CA"))
            .and_then(|()| {
                make_leaf(
                    &ca.dir,
                    "other-client",
                    "other-ca",
                    "authgate-test-client",
                    CLIENT_EXT,
                )
            });
        if let Err(e) = made {
            panic!("generating the test CA in {}: {e}", ca.dir.display());
        }
        Some(ca)
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> Vec<u8> {
        read(&self.ca_cert)
    }

    /// Client TLS settings trusting only this CA, presenting [`client_cert`](Self::client_cert)
    /// when `with_client_cert`.
    pub fn tls_certs(&self, with_client_cert: bool) -> TlsCertificates {
        TlsCertificates {
            client_tls: with_client_cert.then(|| ClientTlsConfig {
                client_cert: read(&self.client_cert),
                client_key: read(&self.client_key),
            }),
            root_cert: Some(self.ca_pem()),
        }
    }

    /// Client TLS settings trusting only the *other* CA (so the server is untrusted).
    pub fn untrusted_tls_certs(&self) -> TlsCertificates {
        TlsCertificates {
            client_tls: None,
            root_cert: Some(read(&self.other_ca_cert)),
        }
    }

    /// Client TLS settings trusting this CA but presenting a client certificate
    /// the server does not trust (signed by the other CA).
    pub fn foreign_client_tls_certs(&self) -> TlsCertificates {
        TlsCertificates {
            client_tls: Some(ClientTlsConfig {
                client_cert: read(&self.other_client_cert),
                client_key: read(&self.other_client_key),
            }),
            root_cert: Some(self.ca_pem()),
        }
    }
}
