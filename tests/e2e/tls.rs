//! `wss://` with a private CA: a TLS front (rustls, a CA and a certificate made for this test)
//! before the reference router, and `goldenpath check --ca-cert` trusting that CA.

use crate::common::{Reference, goldenpath, scratch};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer};

/// A CA, and a certificate for 127.0.0.1 / localhost signed by it: (CA PEM, TLS acceptor).
fn pki() -> (String, TlsAcceptor) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    (ca.pem(), TlsAcceptor::from(Arc::new(config)))
}

/// Terminate TLS on 127.0.0.1:0 and pass the bytes on to `backend`.
async fn tls_front(acceptor: TlsAcceptor, backend: std::net::SocketAddr) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn wss_with_a_private_ca_is_checked_and_without_it_is_unreachable() {
    let reference = Reference::start("tls-secret").await;
    let (ca_pem, acceptor) = pki();
    let front = tls_front(acceptor, reference.addr).await;
    let dir = scratch("tls");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let url = format!("wss://127.0.0.1:{}/ws", front.port());
    let base = [
        "check",
        "--url",
        &url,
        "--jwt-secret",
        "tls-secret",
        "--only",
        "GP-ISO-001",
        "--only",
        "GP-CONN",
    ];

    let mut args = base.to_vec();
    args.extend(["--ca-cert", ca.to_str().unwrap()]);
    let (code, out, err) = goldenpath(&args).await;
    // Narrowed by --only: PARTIAL (exit 5), nothing failed.
    assert_eq!(code, 5, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("PARTIAL: "), "{out}");

    // Without the CA the certificate does not verify: the target cannot be reached.
    let (code, out, err) = goldenpath(&base).await;
    assert_eq!(code, 3, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("target unreachable"), "{err}");
}

/// A self-signed certificate for `names`, its own issuer and no CA: (PEM, TLS acceptor).
fn self_signed(names: &[&str]) -> (String, TlsAcceptor) {
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    (cert.pem(), TlsAcceptor::from(Arc::new(config)))
}

#[tokio::test]
async fn a_self_signed_certificate_given_as_ca_cert_is_trusted_and_failures_say_which_check() {
    let reference = Reference::start("tls-secret").await;
    let dir = scratch("tls-self-signed");
    for (names, expect) in [
        (&["127.0.0.1", "localhost"][..], None),
        (&["elsewhere.invalid"][..], Some("name mismatch")),
    ] {
        let (pem, acceptor) = self_signed(names);
        let front = tls_front(acceptor, reference.addr).await;
        let cert = dir.join("self.pem");
        std::fs::write(&cert, pem).unwrap();
        let url = format!("wss://127.0.0.1:{}/ws", front.port());
        let base = [
            "check",
            "--url",
            &url,
            "--jwt-secret",
            "tls-secret",
            "--only",
            "GP-CONN-001",
        ];
        let mut args = base.to_vec();
        args.extend(["--ca-cert", cert.to_str().unwrap()]);
        let (code, out, err) = goldenpath(&args).await;
        match expect {
            None => {
                assert_eq!(code, 5, "pinned: stdout:\n{out}\nstderr:\n{err}");
                // Without it, the issuer is unknown, and the message says so.
                let (code, out, err) = goldenpath(&base).await;
                assert_eq!(code, 3, "stdout:\n{out}\nstderr:\n{err}");
                assert!(err.contains("unknown issuer"), "{err}");
                assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
            }
            Some(check) => {
                assert_eq!(code, 3, "stdout:\n{out}\nstderr:\n{err}");
                assert!(err.contains(check), "{err}");
                assert!(err.contains(&url), "{err}");
            }
        }
    }
}
