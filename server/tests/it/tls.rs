//! `serve` over TLS: a self-signed certificate made with rcgen, a reqwest client trusting it
//! logs in and fetches the hot list key (equal to the persisted key file, created beside the
//! SQLite file); plain HTTP and clients that do not trust the certificate get nowhere.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{ADMIN, ADMIN_PASSWORD, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_speaks_https_only_with_the_given_certificate() {
    let dir = tempfile::tempdir().expect("dir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("self-signed certificate");
    let cert_pem = cert.cert.pem();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert_pem).expect("write cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let db = dir.path().join("pw.db");
    let mut config = platewatch_server::Config {
        listen: addr,
        database_url: format!("sqlite://{}", db.display()),
        ..test_config()
    };
    config.ops.tls_cert = Some(cert_path);
    config.ops.tls_key = Some(key_path);
    let server = tokio::spawn(platewatch_server::serve(config));

    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"))
        .resolve("localhost", addr)
        .user_agent("platewatch-tls-test")
        .build()
        .expect("client");
    let base = format!("https://localhost:{port}");
    let mut login = None;
    for _ in 0..100 {
        let sent = https
            .post(format!("{base}/v1/login"))
            .json(&json!({ "username": ADMIN, "password": ADMIN_PASSWORD }))
            .send()
            .await;
        if let Ok(resp) = sent {
            login = Some(resp);
            break;
        }
        assert!(!server.is_finished(), "serve stopped early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let login = login.expect("the server answered over TLS");
    assert_eq!(login.status(), StatusCode::OK);
    let token = login.json::<Value>().await.expect("json")["token"]
        .as_str()
        .expect("token")
        .to_string();

    // The signing key was created beside the database and is what devices are given.
    let key_file = dir.path().join("pw.db.hotlist-key");
    let (signer, created) =
        platewatch_server::publish::HotlistSigner::load_or_create(&key_file).expect("key file");
    assert!(!created, "serve created the key file");
    let served: Value = https
        .get(format!("{base}/v1/hotlists/key"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("key")
        .json()
        .await
        .expect("json");
    assert_eq!(served["public_key"], signer.public_key_info().public_key);

    // The OpenAPI document is public.
    let doc = https
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .expect("openapi");
    assert_eq!(doc.status(), StatusCode::OK);

    // No plain HTTP on the TLS port, and no trust without the certificate.
    let plain = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/login"))
        .json(&json!({ "username": ADMIN, "password": ADMIN_PASSWORD }))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        plain.as_ref().map_or(true, |r| !r.status().is_success()),
        "plain HTTP must not be served: {plain:?}"
    );
    let untrusting = reqwest::Client::builder()
        .resolve("localhost", addr)
        .build()
        .expect("client");
    assert!(
        untrusting
            .get(format!("{base}/v1/rules"))
            .send()
            .await
            .is_err(),
        "a client that does not trust the certificate cannot connect"
    );
    server.abort();
}
