//! Credentials: the real gcp_auth service-account flow against a loopback token
//! endpoint, and errors that never quote the key.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::OnEmulator;
use imb_gcs::{Credentials, GcsStore};
use imb_storage::{Key, ObjectCreate, Payload, PutOptions};
use imb_testkit::gcs::{Emulator, Fault, FaultProxy, token_server};

#[tokio::test(flavor = "multi_thread")]
async fn a_service_account_key_runs_the_jwt_flow_and_sends_its_token() {
    let emu = Emulator::fake_gcs();
    let (token_uri, hits) = token_server("test-token-123");
    let proxy = FaultProxy::start(0, emu.port(), |_| Fault::Forward);
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "1",
        "private_key": imb_testkit::gcs::private_key_pem(),
        "client_email": "backup@p.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    });
    let creds = Credentials::from_json("GCS_CREDENTIALS", &key.to_string()).unwrap();
    let mut cfg = emu.config();
    cfg.endpoint = proxy.endpoint();
    cfg.tokens = Arc::new(creds);
    let store = GcsStore::new(cfg).unwrap();
    let k = Key::parse("library/a.jpg").unwrap();
    store
        .put_opts(&k, Payload::from(b"a".to_vec()), PutOptions::default())
        .await
        .unwrap();
    store
        .put_opts(
            &Key::parse("library/b.jpg").unwrap(),
            Payload::from(b"b".to_vec()),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let reqs = proxy.requests();
    assert!(!reqs.is_empty());
    for r in &reqs {
        assert_eq!(
            r.header("authorization"),
            Some("Bearer test-token-123"),
            "{r:?}"
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the token is cached between requests"
    );
}

#[test]
fn a_malformed_key_is_a_clear_error_that_does_not_print_the_key() {
    let secret = r#"{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\nSECRETMATERIAL\n-----END PRIVATE KEY-----\n","client_email":"x@y"}"#;
    let err = Credentials::from_json("GCS_CREDENTIALS", secret)
        .unwrap_err()
        .to_string();
    assert!(err.contains("GCS_CREDENTIALS"), "{err}");
    assert!(!err.contains("SECRETMATERIAL"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("key.json");
    std::fs::write(&p, "not json SECRETMATERIAL").unwrap();
    let err = Credentials::from_file("GOOGLE_APPLICATION_CREDENTIALS", p.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key.json") && !err.contains("SECRETMATERIAL"),
        "{err}"
    );
    assert!(!format!("{:?}", Credentials::None).contains("SECRET"));
}

#[test]
fn gs_urls_parse_and_bad_ones_name_the_setting() {
    assert_eq!(
        imb_gcs::parse_gs_url("gs://my-bucket").unwrap(),
        ("my-bucket".into(), String::new())
    );
    assert_eq!(
        imb_gcs::parse_gs_url("gs://my-bucket/nightly/immich/").unwrap(),
        ("my-bucket".into(), "nightly/immich".into())
    );
    let err = imb_gcs::parse_gs_url("gs://Bad_Bucket!")
        .unwrap_err()
        .to_string();
    assert!(err.contains("dest"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_gets_a_fresh_token_once() {
    let emu = Emulator::fake_gcs();
    let (token_uri, hits) = token_server("tok");
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f = first.clone();
    let proxy = FaultProxy::start(0, emu.port(), move |s| {
        if s.target.starts_with("/upload/") && f.swap(false, Ordering::SeqCst) {
            Fault::Status(401, None)
        } else {
            Fault::Forward
        }
    });
    let key = serde_json::json!({
        "type": "service_account", "private_key": imb_testkit::gcs::private_key_pem(),
        "client_email": "backup@p.iam.gserviceaccount.com", "token_uri": token_uri,
    });
    let mut cfg = emu.config();
    cfg.endpoint = proxy.endpoint();
    cfg.tokens = Arc::new(Credentials::from_json("GCS_CREDENTIALS", &key.to_string()).unwrap());
    let store = GcsStore::new(cfg).unwrap();
    store
        .put_opts(
            &Key::parse("library/a.jpg").unwrap(),
            Payload::from(b"a".to_vec()),
            PutOptions::default(),
        )
        .await
        .expect("succeeds after one refresh");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "a second token was fetched after the 401"
    );
    assert!(!first.load(Ordering::SeqCst));
}
