//! TLS for RPCs: three masters (Raft over TLS) and a worker with a certificate signed by a
//! test CA serve a client that trusts that CA, also when the certificate names a service
//! name instead of the address dialled (`tls_server_name`); a client without the CA, with
//! another CA or checking another name is refused; the token still applies over TLS.

use crate::cluster::TestCluster;
use curvine_fluid::client::Client;
use curvine_fluid::config::ClusterConfig;
use curvine_fluid::fs_error::FsError;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A CA and a server certificate it signed for `names`, as the files of a Kubernetes TLS
/// Secret (`ca.crt`, `tls.crt`, `tls.key`) in `dir`.
fn tls_secret(dir: &Path, names: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let key = KeyPair::generate().expect("key");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = CertificateParams::new(names)
        .expect("params")
        .signed_by(&key, &ca, &ca_key)
        .expect("cert");
    std::fs::write(dir.join("ca.crt"), ca.pem()).expect("write ca");
    std::fs::write(dir.join("tls.crt"), cert.pem()).expect("write cert");
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).expect("write key");
    dir.to_path_buf()
}

fn use_tls(config: &mut ClusterConfig, secret: &Path, server_name: &str) {
    let file = |n: &str| secret.join(n).display().to_string();
    config.security.tls_cert_file = file("tls.crt");
    config.security.tls_key_file = file("tls.key");
    config.security.tls_ca_file = file("ca.crt");
    config.security.tls_server_name = server_name.to_string();
}

/// A client of `cluster` with its config changed by `change`, giving up after 2 s.
fn client_with(cluster: &TestCluster, change: impl Fn(&mut ClusterConfig)) -> Client {
    let mut config = cluster.base.clone();
    config.client.rpc_retry_max_duration_ms = 2_000;
    config.client.rpc_timeout_ms = 1_000;
    change(&mut config);
    Client::new(&config).expect("client")
}

fn assert_unreachable<T: std::fmt::Debug>(result: Result<T, FsError>, what: &str) {
    match result {
        Err(FsError::Unavailable(_)) => {}
        other => panic!("{what}: expected the masters to be unreachable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rpcs_over_tls_serve_only_clients_that_trust_the_cluster_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The certificate names the service, not 127.0.0.1: clients check `tls_server_name`.
    let secret = tls_secret(&dir.path().join("tls"), &["curvine-master.test"]);
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").expect("token");
    let cluster = TestCluster::start(3, 1, |c| {
        use_tls(c, &secret, "curvine-master.test");
        c.security.token_file = token.display().to_string();
    })
    .await;

    // Trusting the CA: metadata through the Raft group, data through the worker.
    let client = cluster.client();
    client.mkdir("/tls", true).await.expect("mkdir over TLS");
    let data = crate::cluster::pattern(3 << 20, 11);
    client.write_file("/tls/f", &data).await.expect("write");
    assert_eq!(client.read_file("/tls/f").await.expect("read"), data);
    let report = client.report().await.expect("report");
    assert_eq!(report.masters.len(), 3);
    assert_eq!(report.live_workers, 1);

    // Plain HTTP/2 to a TLS server: no answer.
    let plain = client_with(&cluster, |c| {
        c.security.tls_ca_file.clear();
        c.security.tls_cert_file.clear();
        c.security.tls_key_file.clear();
    });
    assert_unreachable(plain.stat("/tls/f").await, "a client without TLS");

    // Another CA: the server's certificate is not trusted.
    let other = tls_secret(&dir.path().join("other"), &["curvine-master.test"]);
    let stranger = client_with(&cluster, |c| use_tls(c, &other, "curvine-master.test"));
    assert_unreachable(
        stranger.stat("/tls/f").await,
        "a client trusting another CA",
    );

    // The right CA but another name: the certificate does not name it.
    let misnamed = client_with(&cluster, |c| use_tls(c, &secret, "someone-else.test"));
    assert_unreachable(
        misnamed.stat("/tls/f").await,
        "a client checking another name",
    );
    // And without a fixed name, the address dialled (127.0.0.1) is not in the certificate.
    let by_address = client_with(&cluster, |c| use_tls(c, &secret, ""));
    assert_unreachable(
        by_address.stat("/tls/f").await,
        "a client checking 127.0.0.1",
    );

    // TLS does not replace the token: the CA without the token is refused.
    let tokenless = client_with(&cluster, |c| c.security.token_file.clear());
    match tokenless.stat("/tls/f").await {
        Err(FsError::Unauthenticated(_)) => {}
        other => panic!("expected unauthenticated, got {other:?}"),
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_naming_the_address_needs_no_server_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = tls_secret(&dir.path().join("tls"), &["127.0.0.1", "localhost"]);
    let cluster = TestCluster::start(1, 1, |c| use_tls(c, &secret, "")).await;
    let client = cluster.client();
    client.write_file("/f", b"hello").await.expect("write");
    assert_eq!(client.read_file("/f").await.expect("read"), b"hello");
    tokio::time::timeout(Duration::from_secs(30), cluster.shutdown())
        .await
        .expect("shutdown");
}
