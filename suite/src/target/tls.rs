//! The target's TLS: the client configuration (the system's roots, or the one CA certificate
//! `--ca-cert` pins) and a failed check told for people.

use std::sync::Arc;

use super::ConnectError;

/// A failed TLS check for people: which check failed.
pub(super) fn tls_reason(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer => "TLS: the certificate's issuer is not trusted (unknown issuer; --ca-cert names a CA or the server's own certificate)".to_owned(),
            C::Expired | C::ExpiredContext { .. } => "TLS: the certificate has expired".to_owned(),
            C::NotValidYet | C::NotValidYetContext { .. } => "TLS: the certificate is not valid yet".to_owned(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "TLS: the certificate does not name this host (name mismatch)".to_owned()
            }
            C::BadSignature => "TLS: the certificate's signature does not verify".to_owned(),
            C::Revoked => "TLS: the certificate is revoked".to_owned(),
            other => format!("TLS: invalid certificate ({other})"),
        },
        other => format!("TLS: {other}"),
    }
}

pub(super) fn tls_config(
    ca_cert: Option<&std::path::Path>,
) -> Result<rustls::ClientConfig, ConnectError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let mut pinned = Vec::new();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_cert {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| ConnectError::Config(format!("--ca-cert {}: {e}", path.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| ConnectError::Config(format!("--ca-cert {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(ConnectError::Config(format!(
                "--ca-cert {}: no certificate in the file",
                path.display()
            )));
        }
        for cert in &certs {
            roots
                .add(cert.clone())
                .map_err(|e| ConnectError::Config(format!("--ca-cert {}: {e}", path.display())))?;
        }
        pinned = certs;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Config(e.to_string()))?;
    if pinned.is_empty() {
        return Ok(builder.with_root_certificates(roots).with_no_client_auth());
    }
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| ConnectError::Config(format!("--ca-cert: {e}")))?;
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            inner,
            pinned,
            provider,
        }))
        .with_no_client_auth())
}

/// The verifier with `--ca-cert`: the usual chain check against the system's roots and the
/// given certificates; and a server certificate that is exactly one of the given ones (a
/// self-signed development certificate, its own issuer, that the chain check rejects when it
/// is no CA certificate) is trusted as pinned, once it names the host.
#[derive(Debug)]
struct Pinned {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<rustls_pki_types::CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => Ok(verified),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
                | rustls::CertificateError::Other(_)
                | rustls::CertificateError::BadEncoding,
            )) if self
                .pinned
                .iter()
                .any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
