//! TLS for every port and for the hop (rustls, with ring as the crypto provider).
//!
//! [`TlsFiles`] names what the settings point at: a certificate chain and key (PEM) served
//! by every server of the process, an optional client CA with which the processor asks for
//! and checks client certificates (mutual TLS), the CA the hop client trusts and the
//! certificate it presents. [`TlsFiles::load`] reads them once at start-up; a missing or
//! unreadable file stops start-up with an error that names the setting. `--tls-self-signed`
//! ([`self_signed`]) makes a CA and a certificate for this machine's loopback names instead,
//! and writes the CA where clients can be pointed at it.
//!
//! Servers negotiate the protocol with ALPN: `h2` and `http/1.1` on the gateway and the
//! processor, `h2` only on the gRPC port. The hop client asks for the one `HOP_PROTOCOL`
//! names.

use std::{
    fs, io,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    crypto::{CryptoProvider, ring},
    server::WebPkiClientVerifier,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};

/// The target of this module's log lines: its public path, which `RUST_LOG` names.
const LOG_TARGET: &str = "system::tls";

/// ALPN names of the protocols this system speaks.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN name of HTTP/1.1.
pub(crate) const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Why TLS could not be set up; each names the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds nothing usable.
    #[error("{setting}: {path}: {reason}")]
    File {
        /// The setting (environment variable) that named the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The files do not go together, or a setting is missing its partner.
    #[error("{setting}: {reason}")]
    Setting {
        /// The setting (environment variable) at fault.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The files TLS is made from, as the settings name them.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// Certificate chain the servers present (`TLS_CERT`).
    pub cert: Option<PathBuf>,
    /// Private key of that certificate (`TLS_KEY`).
    pub key: Option<PathBuf>,
    /// Make a CA and a certificate for this machine, writing them into this directory
    /// (`TLS_SELF_SIGNED`); instead of `cert` and `key`.
    pub self_signed: Option<PathBuf>,
    /// CA that signs the certificates clients must present to the processor
    /// (`TLS_CLIENT_CA`): mutual TLS on the processor's port.
    pub client_ca: Option<PathBuf>,
    /// CA the hop client trusts for an `https` processor (`PROCESSOR_CA`); the system's
    /// roots when unset (and the self-signed CA too, in that mode).
    pub processor_ca: Option<PathBuf>,
    /// Certificate chain the hop client presents when the processor asks
    /// (`HOP_CLIENT_CERT`).
    pub hop_cert: Option<PathBuf>,
    /// Its private key (`HOP_CLIENT_KEY`).
    pub hop_key: Option<PathBuf>,
    /// The name the hop expects in the processor's certificate (`PROCESSOR_TLS_NAME`);
    /// the host of the processor's URL when unset.
    pub processor_name: Option<String>,
}

/// TLS as loaded at start-up: server configurations for each kind of port and the hop's
/// client side.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The gateway's port (ALPN `h2`, `http/1.1`); `None` when TLS is off.
    pub gateway: Option<Arc<ServerConfig>>,
    /// The gRPC port (ALPN `h2`); `None` when TLS is off.
    pub grpc: Option<Arc<ServerConfig>>,
    /// The processor's port (ALPN `h2`, `http/1.1`; client certificates checked with
    /// `TLS_CLIENT_CA`); `None` when TLS is off.
    pub processor: Option<Arc<ServerConfig>>,
    /// The hop client's side, used when the processor's URL is `https`.
    pub hop: HopTls,
    /// Where the self-signed CA was written, in that mode.
    pub self_signed_ca: Option<PathBuf>,
}

/// The hop client's TLS: whom it trusts, what it presents, which name it expects.
#[derive(Debug, Clone)]
pub struct HopTls {
    /// The client configuration, without ALPN (the connector sets it per hop protocol).
    pub config: Arc<ClientConfig>,
    /// The name expected in the processor's certificate instead of the URL's host.
    pub server_name: Option<ServerName<'static>>,
}

impl HopTls {
    /// Trusts the system's roots and `extra` (PEM certificates), presents no certificate.
    pub fn trusting(extra: &[CertificateDer<'static>]) -> HopTls {
        let mut roots = native_roots();
        for cert in extra {
            let _ = roots.add(cert.clone());
        }
        HopTls {
            config: Arc::new(
                client_builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            ),
            server_name: None,
        }
    }

    /// The configuration with `alpn` as the one protocol asked for.
    pub fn with_alpn(&self, alpn: &[u8]) -> Arc<ClientConfig> {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(config)
    }
}

impl TlsFiles {
    /// Whether the servers speak TLS.
    pub fn serves_tls(&self) -> bool {
        self.cert.is_some() || self.key.is_some() || self.self_signed.is_some()
    }

    /// Reads every file and builds the configurations. `hosts` are the names and
    /// addresses a self-signed certificate is made for, besides the loopback ones.
    pub fn load(&self, hosts: &[IpAddr]) -> Result<Tls, TlsError> {
        let mut extra_roots = Vec::new();
        let mut self_signed_ca = None;
        let identity = match (&self.cert, &self.key, &self.self_signed) {
            (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                return Err(setting(
                    "TLS_SELF_SIGNED",
                    "give either TLS_SELF_SIGNED or TLS_CERT and TLS_KEY, not both",
                ));
            }
            (Some(cert), Some(key), None) => {
                Some((read_certs("TLS_CERT", cert)?, read_key("TLS_KEY", key)?))
            }
            (Some(_), None, None) => {
                return Err(setting("TLS_KEY", "TLS_CERT is set but its key is not"));
            }
            (None, Some(_), None) => {
                return Err(setting(
                    "TLS_CERT",
                    "TLS_KEY is set but its certificate is not",
                ));
            }
            (None, None, Some(dir)) => {
                let made = self_signed(dir, hosts)?;
                extra_roots.push(made.ca.clone());
                self_signed_ca = Some(made.ca_path.clone());
                Some((made.chain, made.key))
            }
            (None, None, None) => None,
        };
        if let Some(ca) = &self.processor_ca {
            extra_roots.extend(read_certs("PROCESSOR_CA", ca)?);
        }
        let client_verifier = match &self.client_ca {
            Some(ca) => {
                if identity.is_none() {
                    return Err(setting(
                        "TLS_CLIENT_CA",
                        "mutual TLS needs the processor to serve TLS: set TLS_CERT and TLS_KEY \
                         or TLS_SELF_SIGNED",
                    ));
                }
                let mut roots = RootCertStore::empty();
                for cert in read_certs("TLS_CLIENT_CA", ca)? {
                    roots
                        .add(cert)
                        .map_err(|err| file("TLS_CLIENT_CA", ca, err))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|err| file("TLS_CLIENT_CA", ca, err))?;
                Some(verifier)
            }
            None => None,
        };
        let hop_identity = match (&self.hop_cert, &self.hop_key) {
            (Some(cert), Some(key)) => Some((
                read_certs("HOP_CLIENT_CERT", cert)?,
                read_key("HOP_CLIENT_KEY", key)?,
            )),
            (Some(_), None) => {
                return Err(setting(
                    "HOP_CLIENT_KEY",
                    "HOP_CLIENT_CERT is set but its key is not",
                ));
            }
            (None, Some(_)) => {
                return Err(setting(
                    "HOP_CLIENT_CERT",
                    "HOP_CLIENT_KEY is set but its certificate is not",
                ));
            }
            // In the self-signed mode the hop presents the process's own certificate, so
            // that a processor asking for one signed by the same CA takes it.
            (None, None) if self.self_signed.is_some() => identity
                .as_ref()
                .map(|(chain, key)| (chain.clone(), key.clone_key())),
            (None, None) => None,
        };
        let server_name = match &self.processor_name {
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .map_err(|err| setting("PROCESSOR_TLS_NAME", &err.to_string()))?,
            ),
            None => None,
        };
        let mut roots = native_roots();
        for cert in extra_roots {
            roots
                .add(cert)
                .map_err(|err| setting("PROCESSOR_CA", &err.to_string()))?;
        }
        let hop_builder = client_builder().with_root_certificates(roots);
        let hop_config = match hop_identity {
            Some((chain, key)) => hop_builder
                .with_client_auth_cert(chain, key)
                .map_err(|err| setting("HOP_CLIENT_CERT", &err.to_string()))?,
            None => hop_builder.with_no_client_auth(),
        };
        let hop = HopTls {
            config: Arc::new(hop_config),
            server_name,
        };
        let Some((chain, key)) = identity else {
            return Ok(Tls {
                gateway: None,
                grpc: None,
                processor: None,
                hop,
                self_signed_ca,
            });
        };
        let server = |verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
                      alpn: &[&[u8]]|
         -> Result<Arc<ServerConfig>, TlsError> {
            let builder = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|err| setting("TLS_CERT", &err.to_string()))?;
            let builder = match verifier {
                Some(verifier) => builder.with_client_cert_verifier(verifier),
                None => builder.with_no_client_auth(),
            };
            let mut config = builder
                .with_single_cert(chain.clone(), key.clone_key())
                .map_err(|err| setting("TLS_KEY", &format!("does not fit TLS_CERT: {err}")))?;
            config.alpn_protocols = alpn.iter().map(|name| name.to_vec()).collect();
            Ok(Arc::new(config))
        };
        Ok(Tls {
            gateway: Some(server(None, &[ALPN_H2, ALPN_HTTP1])?),
            grpc: Some(server(None, &[ALPN_H2])?),
            processor: Some(server(client_verifier, &[ALPN_H2, ALPN_HTTP1])?),
            hop,
            self_signed_ca,
        })
    }
}

/// What [`self_signed`] made.
#[derive(Debug)]
pub struct SelfSigned {
    /// The CA's certificate.
    pub ca: CertificateDer<'static>,
    /// Where the CA's certificate was written.
    pub ca_path: PathBuf,
    /// The server's certificate followed by the CA's.
    pub chain: Vec<CertificateDer<'static>>,
    /// The server certificate's key.
    pub key: PrivateKeyDer<'static>,
}

/// Makes, in `dir`, a CA (`ca.pem`, its key `ca-key.pem`; both kept and used again when
/// they are there, so clients pointed at `ca.pem` keep working across restarts) and a
/// certificate it signs for `localhost`, `127.0.0.1`, `::1` and `hosts` (`cert.pem`,
/// `key.pem`), valid for servers and for clients.
pub fn self_signed(dir: &Path, hosts: &[IpAddr]) -> Result<SelfSigned, TlsError> {
    let at = |name: &str| dir.join(name);
    let fail = |path: &Path, err: &dyn std::fmt::Display| file("TLS_SELF_SIGNED", path, err);
    fs::create_dir_all(dir).map_err(|err| fail(dir, &err))?;
    let (ca_path, ca_key_path) = (at("ca.pem"), at("ca-key.pem"));
    let ca_params = ca_params();
    let (ca_key, ca_pem) = if ca_path.exists() && ca_key_path.exists() {
        let key_pem = fs::read_to_string(&ca_key_path).map_err(|err| fail(&ca_key_path, &err))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|err| fail(&ca_key_path, &err))?;
        let pem = fs::read(&ca_path).map_err(|err| fail(&ca_path, &err))?;
        (key, pem)
    } else {
        let key = KeyPair::generate().map_err(|err| fail(dir, &err))?;
        let cert = ca_params.self_signed(&key).map_err(|err| fail(dir, &err))?;
        write_private(&ca_key_path, key.serialize_pem().as_bytes())
            .map_err(|err| fail(&ca_key_path, &err))?;
        fs::write(&ca_path, cert.pem()).map_err(|err| fail(&ca_path, &err))?;
        (key, cert.pem().into_bytes())
    };
    let ca = CertificateDer::from_pem_slice(&ca_pem).map_err(|err| fail(&ca_path, &err))?;
    let issuer = Issuer::new(ca_params, ca_key);
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    for host in hosts {
        let name = host.to_string();
        if !host.is_unspecified() && !host.is_loopback() && !names.contains(&name) {
            names.push(name);
        }
    }
    let mut params = CertificateParams::new(names).map_err(|err| fail(dir, &err))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "diplom ingest system");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().map_err(|err| fail(dir, &err))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|err| fail(dir, &err))?;
    let (cert_path, key_path) = (at("cert.pem"), at("key.pem"));
    fs::write(&cert_path, cert.pem()).map_err(|err| fail(&cert_path, &err))?;
    write_private(&key_path, key.serialize_pem().as_bytes())
        .map_err(|err| fail(&key_path, &err))?;
    Ok(SelfSigned {
        chain: vec![cert.der().clone(), ca.clone()],
        ca,
        ca_path,
        key: PrivateKeyDer::try_from(key.serialize_der()).map_err(|err| fail(&key_path, &err))?,
    })
}

/// The CA's parameters: always the same, so that a kept CA key signs as the kept CA.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "diplom ingest system local CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}

/// The crypto provider of every configuration here.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn client_builder() -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| unreachable!("ring supports the default protocol versions"))
}

/// The system's trusted roots; empty when they cannot be read (a processor whose CA is not
/// among them is then refused at the handshake, naming the unknown issuer).
fn native_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for err in &found.errors {
        tracing::debug!(target: LOG_TARGET, %err, "reading the system's trusted roots");
    }
    roots.add_parsable_certificates(found.certs);
    roots
}

/// Every certificate in the PEM file `path`, at least one.
pub fn read_certs(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = fs::read(path).map_err(|err| file(setting, path, err))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| file(setting, path, err))?;
    if certs.is_empty() {
        return Err(file(setting, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// The private key in the PEM file `path` (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn read_key(
    setting: &'static str,
    path: &Path,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = fs::read(path).map_err(|err| file(setting, path, err))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|err| match err {
        rustls_pki_types::pem::Error::NoItemsFound => {
            file(setting, path, "no PEM private key in it")
        }
        err => file(setting, path, err),
    })
}

fn file(setting: &'static str, path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        setting,
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn setting(setting: &'static str, reason: &str) -> TlsError {
    TlsError::Setting {
        setting,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use rustls::client::danger::ServerCertVerifier;

    use super::*;

    #[test]
    fn a_kept_ca_signs_certificates_its_first_certificate_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let first = self_signed(dir.path(), &[]).unwrap();
        let second = self_signed(dir.path(), &[]).unwrap();
        assert_eq!(first.ca, second.ca, "the CA is kept across runs");
        let mut roots = RootCertStore::empty();
        roots.add(first.ca.clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        let now = rustls_pki_types::UnixTime::now();
        for name in ["localhost", "127.0.0.1", "::1"] {
            verifier
                .verify_server_cert(
                    &second.chain[0],
                    &second.chain[1..],
                    &ServerName::try_from(name).unwrap(),
                    &[],
                    now,
                )
                .unwrap_or_else(|err| panic!("{name}: {err}"));
        }
    }

    #[test]
    fn bad_files_name_their_setting() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        fs::write(&empty, "").unwrap();
        let missing = dir.path().join("missing.pem");
        let cases = [
            (
                TlsFiles {
                    cert: Some(missing.clone()),
                    key: Some(empty.clone()),
                    ..TlsFiles::default()
                },
                "TLS_CERT",
            ),
            (
                TlsFiles {
                    cert: Some(empty.clone()),
                    ..TlsFiles::default()
                },
                "TLS_KEY",
            ),
            (
                TlsFiles {
                    self_signed: Some(dir.path().join("ss")),
                    client_ca: Some(empty.clone()),
                    ..TlsFiles::default()
                },
                "TLS_CLIENT_CA",
            ),
            (
                TlsFiles {
                    processor_ca: Some(missing.clone()),
                    ..TlsFiles::default()
                },
                "PROCESSOR_CA",
            ),
        ];
        for (files, named) in cases {
            let err = files.load(&[]).unwrap_err().to_string();
            assert!(err.starts_with(named), "{err:?} should name {named}");
        }
    }
}
