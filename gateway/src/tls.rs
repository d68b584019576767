//! HTTPS and WSS on the gateway's public listener: a certificate chain and key from PEM
//! files, reloaded when the files change (a bad new pair is logged and the served one
//! stays).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use service_kit::serve::Handshake;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Why the certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Only one of the certificate and the key was given.
    #[error("TLS needs both a certificate and its key, but only the {given} is set")]
    Incomplete {
        /// The one that was given: `certificate` or `key`.
        given: &'static str,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file holds no usable PEM item of the expected kind.
    #[error("{path} holds no PEM {what}: {cause}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// `certificate` or `private key`.
        what: &'static str,
        /// What the parser said.
        cause: String,
    },
    /// The key is unusable or does not belong to the certificate.
    #[error("the certificate and key cannot be used together: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Where the certificate chain and the private key are, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files when both are given, `None` when neither is, an error otherwise.
    pub fn from_options(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Option<Self>, TlsError> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(Self { cert, key })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(TlsError::Incomplete {
                given: "certificate",
            }),
            (None, Some(_)) => Err(TlsError::Incomplete { given: "key" }),
        }
    }

    /// Reads and checks the pair.
    fn load(&self, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
        let cert_pem = read(&self.cert)?;
        let key_pem = read(&self.key)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem {
                path: self.cert.clone(),
                what: "certificate",
                cause: e.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsError::Pem {
                path: self.cert.clone(),
                what: "certificate",
                cause: "no CERTIFICATE section".to_owned(),
            });
        }
        // The error text never includes key material.
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
            path: self.key.clone(),
            what: "private key",
            cause: e.to_string(),
        })?;
        Ok(CertifiedKey::from_der(chain, key, provider)?)
    }

    /// The modification times and sizes of both files: a change means a reload.
    fn stamp(&self) -> Option<[(SystemTime, u64); 2]> {
        let of = |path: &Path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        };
        Some([of(&self.cert)?, of(&self.key)?])
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The certificate being served, replaced in place on reload.
#[derive(Debug)]
struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl CurrentCert {
    fn get(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, key: CertifiedKey) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// TLS for the public listener: a [`Handshake`] for [`service_kit::serve::serve_with`]
/// that serves the current certificate. Cheap to clone.
#[derive(Clone)]
pub struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    current: Arc<CurrentCert>,
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

impl Tls {
    /// At start-up: loads `files` when TLS is asked for; an error names both files, so a
    /// certificate that cannot be served stops the start with a clear reason.
    pub fn load_at_start(files: Option<&TlsFiles>) -> anyhow::Result<Option<Self>> {
        files
            .map(|files| {
                Self::load(files.clone()).with_context(|| {
                    format!(
                        "loading the TLS certificate {} and key {}",
                        files.cert.display(),
                        files.key.display()
                    )
                })
            })
            .transpose()
    }

    /// Loads the pair in `files`; fails when it cannot be served.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = files.load(&provider)?;
        let current = Arc::new(CurrentCert(RwLock::new(Arc::new(key))));
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // The listener speaks HTTP/1.1 only (WebSocket upgrades included).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            current,
            files,
            provider,
        })
    }

    /// Reads the files again and serves the new pair to new connections; on error the
    /// pair served so far stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = self.files.load(&self.provider)?;
        self.current.set(key);
        Ok(())
    }

    /// Spawns a task that checks the files' modification times every `every` and reloads
    /// when either changed. A failed reload is logged, and tried again on the next change.
    pub fn spawn_reload(&self, every: Duration) -> JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut seen = tls.files.stamp();
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = tls.files.stamp();
                if now.is_none() || now == seen {
                    continue;
                }
                seen = now;
                match tls.reload() {
                    Ok(()) => {
                        tracing::info!(cert = %tls.files.cert.display(), "TLS certificate reloaded")
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "TLS certificate not reloaded; the previous one stays")
                    }
                }
            }
        })
    }
}

impl Handshake for Tls {
    type Stream = tokio_rustls::server::TlsStream<TcpStream>;

    async fn handshake(&self, tcp: TcpStream) -> io::Result<Self::Stream> {
        self.acceptor.accept(tcp).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_without_a_key_or_a_key_without_a_certificate_is_refused() {
        let err = TlsFiles::from_options(Some("cert.pem".into()), None).unwrap_err();
        assert!(
            err.to_string().contains("only the certificate is set"),
            "{err}"
        );
        let err = TlsFiles::from_options(None, Some("key.pem".into())).unwrap_err();
        assert!(err.to_string().contains("only the key is set"), "{err}");
    }

    #[test]
    fn neither_file_means_plain_http() {
        assert_eq!(TlsFiles::from_options(None, None).unwrap(), None);
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let files = TlsFiles {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        };
        let err = Tls::load(files).unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    }
}
