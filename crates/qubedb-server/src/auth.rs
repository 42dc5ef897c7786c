//! Authentication: `trust` or SCRAM-SHA-256 against the data directory's roles, and TLS.
//!
//! Either way the role must exist and have LOGIN (FATAL 28000 otherwise, as in PostgreSQL, where `trust`
//! also names an existing role). With SCRAM-SHA-256 pgwire runs the exchange (RFC 5802 / 7677, and
//! SCRAM-SHA-256-PLUS channel binding when TLS is on) against the role's stored verifier
//! ([`qubedb::ScramVerifier`]): the server never sees or keeps the password. A user that does not exist,
//! has no password or whose password has expired (`VALID UNTIL`) still gets a full exchange, over a mock
//! verifier whose salt is derived from the user name and a per-server secret (so it is the same on
//! every attempt, like a real one); the proof then fails and the client reads the same
//! `password authentication failed for user "..."` (28P01) as for a wrong password, so a client cannot
//! learn which users exist.
//!
//! TLS ([`TlsFiles`]): rustls with the aws-lc-rs provider, from PEM files; clients that ask for SSL
//! (`sslmode=require`) get it, the others stay in plain text.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use pgwire::api::auth::sasl::scram::{ScramAuth, ScramSecret};
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::tokio::tokio_rustls::TlsAcceptor;
use pgwire::tokio::tokio_rustls::rustls;
use qubedb::{Cluster, ScramVerifier};

/// How clients prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMethod {
    /// Any existing role with LOGIN connects without a password (local development).
    #[default]
    Trust,
    /// The role's password, checked with SCRAM-SHA-256.
    ScramSha256,
}

impl std::str::FromStr for AuthMethod {
    type Err = String;

    fn from_str(text: &str) -> Result<AuthMethod, String> {
        match text.to_ascii_lowercase().as_str() {
            "trust" => Ok(AuthMethod::Trust),
            "scram-sha-256" | "scram" => Ok(AuthMethod::ScramSha256),
            other => Err(format!(
                "unknown authentication method \"{other}\" (trust or scram-sha-256)"
            )),
        }
    }
}

/// The certificate chain and private key of the server, PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// What TLS needs at run time: the acceptor, and the certificate for channel binding.
pub(crate) struct Tls {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) certificate_pem: Vec<u8>,
}

impl TlsFiles {
    /// Loads the files into a TLS acceptor.
    pub(crate) fn load(&self) -> std::io::Result<Tls> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let invalid = |what: &str, error: &dyn std::fmt::Display| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{what}: {error}"))
        };
        let certificate_pem = std::fs::read(&self.certificate)?;
        let certificates = CertificateDer::pem_slice_iter(&certificate_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| invalid(&self.certificate.display().to_string(), &error))?;
        if certificates.is_empty() {
            return Err(invalid(
                &self.certificate.display().to_string(),
                &"no certificate in the file",
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|error| invalid(&self.key.display().to_string(), &error))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| invalid("TLS protocol versions", &error))?
            .with_no_client_auth()
            .with_single_cert(certificates, key)
            .map_err(|error| invalid("TLS certificate and key", &error))?;
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificate_pem,
        })
    }
}

/// SCRAM's view of the roles.
struct RoleVerifiers {
    cluster: Cluster,
    /// Secret behind the mock salts of users that cannot log in with a password.
    mock_secret: [u8; 32],
}

impl std::fmt::Debug for RoleVerifiers {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("RoleVerifiers")
    }
}

#[async_trait]
impl AuthSource for RoleVerifiers {
    /// Not used: SCRAM asks for [`AuthSource::get_scram_secret`].
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        Err(PgWireError::InvalidPassword(
            login.user().unwrap_or_default().to_string(),
        ))
    }

    async fn get_scram_secret(&self, login: &LoginInfo) -> PgWireResult<(ScramSecret, Option<()>)> {
        let user = login.user().unwrap_or_default();
        let verifier = self
            .cluster
            .role(user)
            .filter(|role| !password_expired(role.valid_until.as_deref()))
            .and_then(|role| role.password)
            .and_then(|text| ScramVerifier::parse(&text))
            .unwrap_or_else(|| self.mock_verifier(user));
        Ok((
            ScramSecret::Verifier {
                salt: verifier.salt,
                iterations: verifier.iterations as usize,
                stored_key: verifier.stored_key,
                server_key: verifier.server_key,
            },
            None,
        ))
    }
}

impl RoleVerifiers {
    /// A verifier no proof matches, with a salt stable for `user`.
    fn mock_verifier(&self, user: &str) -> ScramVerifier {
        use aws_lc_rs::hmac;
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.mock_secret);
        let salt = hmac::sign(&key, user.as_bytes()).as_ref()[..16].to_vec();
        let mut stored_key = vec![0u8; 32];
        let mut server_key = vec![0u8; 32];
        // If the system's randomness failed, zero keys still match no proof of a real password.
        let _ = aws_lc_rs::rand::fill(&mut stored_key);
        let _ = aws_lc_rs::rand::fill(&mut server_key);
        ScramVerifier {
            iterations: qubedb::roles::SCRAM_ITERATIONS,
            salt,
            stored_key,
            server_key,
        }
    }
}

/// Whether a `VALID UNTIL` moment (RFC 3339) has passed.
pub(crate) fn password_expired(valid_until: Option<&str>) -> bool {
    valid_until
        .and_then(|moment| chrono::DateTime::parse_from_rfc3339(moment).ok())
        .is_some_and(|moment| moment < chrono::Utc::now())
}

/// A random secret for the mock salts, one per server.
pub(crate) fn mock_secret() -> std::io::Result<[u8; 32]> {
    let mut secret = [0u8; 32];
    aws_lc_rs::rand::fill(&mut secret)
        .map_err(|_| std::io::Error::other("the system's random source failed"))?;
    Ok(secret)
}

/// The SCRAM mechanism over `cluster`'s roles; with `certificate_pem`, SCRAM-SHA-256-PLUS too.
pub(crate) fn scram(
    cluster: Cluster,
    mock_secret: [u8; 32],
    certificate_pem: Option<&[u8]>,
) -> std::io::Result<ScramAuth> {
    let mut scram = ScramAuth::new(Arc::new(RoleVerifiers {
        cluster,
        mock_secret,
    }));
    scram.set_iterations(qubedb::roles::SCRAM_ITERATIONS as usize);
    if let Some(pem) = certificate_pem {
        scram.configure_certificate(pem).map_err(|error| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("certificate for SCRAM channel binding: {error}"),
            )
        })?;
    }
    Ok(scram)
}
