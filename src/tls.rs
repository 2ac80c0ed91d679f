//! TLS for the clients okrd opens (SPEC §2).
//!
//! One TLS stack, rustls (with ring and Mozilla's roots), serves every
//! client written in Rust: PostgreSQL and MySQL (sqlx), HTTP (reqwest, for
//! connectors and notifiers) and SMTP (lettre). librdkafka is C and brings
//! OpenSSL; a `kafka` connector configures it through `properties`.
//!
//! - [`CaFile`]: a `ca_file` (PEM), read and checked when the config loads;
//!   a client given one trusts only the CAs in it, as curl's `--cacert` and
//!   libpq's `sslrootcert` do.
//! - [`http_client`]: a reqwest client builder that trusts a `ca_file`.
//! - [`pg_options`], [`mysql_options`]: a database URL's connect options,
//!   with libpq's rule that `sslmode=require` with an `sslrootcert` checks
//!   the CA (`verify-ca`).
//! - [`describe`], [`explain`]: a failed connection in words: an untrusted
//!   certificate, a host-name mismatch, a server without TLS.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{CertificateError, RootCertStore};
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// A private CA bundle: the certificates of a `ca_file`, as DER.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CaFile {
    /// The file, as configured.
    pub path: PathBuf,
    certs: Vec<Vec<u8>>,
}

impl CaFile {
    /// Reads `path`: one or more PEM certificates, each of which must parse.
    pub fn load(path: &Path) -> Result<Self, String> {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
        let mut certs = Vec::new();
        let mut store = RootCertStore::empty();
        for (i, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
            let cert = cert.map_err(|e| {
                format!(
                    "CA file {}: certificate {} is not valid PEM: {e}",
                    path.display(),
                    i + 1
                )
            })?;
            store.add(cert.clone()).map_err(|e| {
                format!(
                    "CA file {}: certificate {} is not a usable CA certificate: {e}",
                    path.display(),
                    i + 1
                )
            })?;
            certs.push(cert.to_vec());
        }
        if certs.is_empty() {
            return Err(format!(
                "CA file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            certs,
        })
    }

    /// The certificates, as DER.
    pub fn certs(&self) -> impl Iterator<Item = &[u8]> {
        self.certs.iter().map(Vec::as_slice)
    }
}

/// A reqwest client builder that trusts `ca`'s certificates only, or the
/// built-in roots without one.
pub fn http_client(ca: Option<&CaFile>) -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder();
    if let Some(ca) = ca {
        builder = builder.tls_built_in_root_certs(false);
        // Each certificate parsed when the file was loaded.
        for der in ca.certs() {
            if let Ok(cert) = reqwest::Certificate::from_der(der) {
                builder = builder.add_root_certificate(cert);
            }
        }
    }
    builder
}

/// Whether `url`'s query has the parameter `name`.
fn has_param(url: &str, names: &[&str]) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|kv| names.contains(&kv.split('=').next().unwrap_or_default()))
    })
}

/// The connect options of a PostgreSQL URL. libpq's TLS parameters:
/// `sslmode` (`disable`, `prefer` — the default —, `require`, `verify-ca`,
/// `verify-full`) and `sslrootcert`; as in libpq, `require` with an
/// `sslrootcert` also checks that the certificate is signed by it.
pub fn pg_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    if matches!(options.get_ssl_mode(), PgSslMode::Require) && has_param(url, &["sslrootcert"]) {
        return Ok(options.ssl_mode(PgSslMode::VerifyCa));
    }
    Ok(options)
}

/// The connect options of a MySQL or MariaDB URL: TLS through `ssl-mode`
/// (`DISABLED`, `PREFERRED` — the default —, `REQUIRED`, `VERIFY_CA`,
/// `VERIFY_IDENTITY`) and `ssl-ca`; `REQUIRED` with an `ssl-ca` checks the
/// CA too (a CA given is a CA to check, as with PostgreSQL). The session's time zone is UTC and its
/// SQL mode the server's own (sqlx would add `PIPES_AS_CONCAT`, which
/// changes what `||` means in a user's query).
pub fn mysql_options(url: &str) -> Result<MySqlConnectOptions, sqlx::Error> {
    let options: MySqlConnectOptions = url.parse()?;
    let options = options
        .pipes_as_concat(false)
        .timezone(Some("+00:00".into()));
    if matches!(options.get_ssl_mode(), MySqlSslMode::Required)
        && has_param(url, &["ssl-ca", "sslca"])
    {
        return Ok(options.ssl_mode(MySqlSslMode::VerifyCa));
    }
    Ok(options)
}

/// What went wrong with a connection's TLS, in words, when the error (or
/// one of its causes) is a TLS failure: the certificate's issuer is not
/// trusted, it is not valid for the host name, it has expired, or the
/// server does not speak TLS.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(rustls_words(r));
        }
        if let Some(sqlx::Error::Tls(inner)) = e.downcast_ref::<sqlx::Error>() {
            let text = inner.to_string();
            return Some(if text.contains("does not support TLS") {
                "the server does not speak TLS, and the URL's sslmode (ssl-mode) requires it"
                    .to_string()
            } else {
                format!("TLS failed: {text}")
            });
        }
        // An I/O error's `source` skips the error it wraps (rustls's, or
        // another I/O error): look at that one itself.
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

fn rustls_words(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "TLS: the server's certificate is not signed by a trusted CA (is the CA file the one that signed it?)".into()
            }
            CertificateError::NotValidForName => {
                "TLS: the server's certificate is not valid for the host name connected to".into()
            }
            CertificateError::NotValidForNameContext { expected, presented } => format!(
                "TLS: the server's certificate is not valid for the host name {:?} (it names {})",
                expected.to_str(),
                presented.join(", ")
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "TLS: the server's certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "TLS: the server's certificate is not valid yet".into()
            }
            other => format!("TLS: the server's certificate is refused: {other:?}"),
        },
        other => format!("TLS handshake failed: {other}"),
    }
}

/// An error and its causes as one message ([`crate::telemetry::error_chain`]),
/// led by [`describe`]'s words when it is a TLS failure.
pub fn explain(e: &(dyn std::error::Error + 'static)) -> String {
    let chain = crate::telemetry::error_chain(e);
    match describe(e) {
        Some(words) => format!("{words} ({chain})"),
        None => chain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_with_a_root_certificate_checks_the_ca_as_libpq_does() {
        let mode = |url: &str| pg_options(url).unwrap().get_ssl_mode();
        assert!(matches!(
            mode("postgres://u@h/d?sslmode=require&sslrootcert=/ca.pem"),
            PgSslMode::VerifyCa
        ));
        assert!(matches!(
            mode("postgres://u@h/d?sslmode=require"),
            PgSslMode::Require
        ));
        assert!(matches!(
            mode("postgres://u@h/d?sslmode=verify-full&sslrootcert=/ca.pem"),
            PgSslMode::VerifyFull
        ));
        let my = |url: &str| mysql_options(url).unwrap().get_ssl_mode();
        assert!(matches!(
            my("mysql://u@h/d?ssl-mode=REQUIRED&ssl-ca=/ca.pem"),
            MySqlSslMode::VerifyCa
        ));
        assert!(matches!(
            my("mysql://u@h/d?ssl-mode=DISABLED"),
            MySqlSslMode::Disabled
        ));
    }

    #[test]
    fn a_ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = CaFile::load(&empty).unwrap_err();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let e = CaFile::load(&dir.path().join("missing.pem")).unwrap_err();
        assert!(e.contains("cannot read CA file"), "{e}");
    }

    #[test]
    fn tls_failures_are_named() {
        let untrusted = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        let e = sqlx::Error::Io(untrusted);
        assert!(describe(&e).unwrap().contains("not signed by a trusted CA"));
        let plain = sqlx::Error::Tls("server does not support TLS".into());
        assert!(describe(&plain).unwrap().contains("does not speak TLS"));
        assert_eq!(describe(&sqlx::Error::RowNotFound), None);
    }
}
