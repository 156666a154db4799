//! Injected faults: 5xx bursts, resets, lost and slow responses. Uploads are
//! retried (the checksum makes them idempotent); creating an album is not.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::OnTestServer;
use imb_immich::{ClientConfig, Error, ImmichClient, RetryPolicy, UploadStatus};
use imb_testkit::immich::{Fault, TestServer, TestServerOptions, burst};

use crate::{jpg, upload_of};

/// Fault the first `n` requests matching `method path`, then serve.
fn first_n(
    method: &'static str,
    path: &'static str,
    n: usize,
    fault: Fault,
) -> impl Fn(&imb_testkit::immich::Seen) -> Fault + Send + Sync + 'static {
    let left = Arc::new(AtomicUsize::new(n));
    move |s| {
        if s.method == method
            && s.path() == path
            && left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(1))
                .is_ok()
        {
            fault.clone()
        } else {
            Fault::Serve
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_5xx_burst_is_retried() {
    let server =
        TestServer::start(TestServerOptions::v3().with_faults(burst("/api/assets", 3, 503)));
    let c = server.client();
    let out = c.upload(&upload_of("a.jpg", &jpg(1, 5000))).await.unwrap();
    assert_eq!(out.status, UploadStatus::Created);
    assert_eq!(c.retries(), 3);
    assert_eq!(server.assets().len(), 1);
    let statuses: Vec<u16> = server
        .requests()
        .iter()
        .filter(|s| s.path() == "/api/assets")
        .map(|s| s.status)
        .collect();
    assert_eq!(statuses, vec![503, 503, 503, 201]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_longer_than_the_retries_is_transient() {
    let server =
        TestServer::start(TestServerOptions::v3().with_faults(burst("/api/users/me", 100, 502)));
    let c = server.client();
    let err = c.my_user().await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    let Error::Transient { attempts, .. } = err else {
        unreachable!()
    };
    assert_eq!(attempts, RetryPolicy::fast().max_retries + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_mid_upload_is_retried() {
    let server = TestServer::start(TestServerOptions::v3().with_faults(first_n(
        "POST",
        "/api/assets",
        1,
        Fault::ResetMidBody,
    )));
    let c = server.client();
    let out = c
        .upload(&upload_of("a.jpg", &jpg(2, 200_000)))
        .await
        .unwrap();
    assert_eq!(out.status, UploadStatus::Created);
    assert_eq!(server.assets().len(), 1);
    assert_eq!(c.retries(), 1, "one reset scripted, one retry");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_before_an_answer_is_retried_for_reads() {
    let server = TestServer::start(TestServerOptions::v3().with_faults(first_n(
        "GET",
        "/api/albums",
        2,
        Fault::Reset,
    )));
    let c = server.client();
    assert!(c.albums().await.unwrap().is_empty());
    assert_eq!(c.retries(), 2);
}

/// The 201 is lost on the way back: the retry is answered "duplicate" with the
/// same id, and the asset exists once.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_ends_as_a_duplicate_of_itself() {
    let server = TestServer::start(TestServerOptions::v3().with_faults(first_n(
        "POST",
        "/api/assets",
        1,
        Fault::LoseResponse,
    )));
    let c = server.client();
    let out = c.upload(&upload_of("a.jpg", &jpg(3, 1000))).await.unwrap();
    assert_eq!(out.status, UploadStatus::Duplicate);
    let assets = server.assets();
    assert_eq!(assets.len(), 1);
    assert_eq!(out.id, assets[0].id);
}

/// The connection breaks before an answer arrives, for content the server already
/// has (the checksum short-circuit answered and the reset beat the answer): the
/// client asks `bulk-upload-check` instead of sending the body again.
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_upload_of_known_content_is_a_duplicate() {
    let server = TestServer::start(TestServerOptions::v3().with_faults(first_n(
        "POST",
        "/api/assets",
        1,
        Fault::Reset,
    )));
    let data = jpg(4, 100_000);
    let existing = server.add_asset(imb_testkit::immich::DEFAULT_EMAIL, "a.jpg", &data);
    let c = server.client();
    let out = c.upload(&upload_of("a.jpg", &data)).await.unwrap();
    assert_eq!(out.status, UploadStatus::Duplicate);
    assert_eq!(out.id, existing);
    let paths: Vec<String> = server
        .requests()
        .iter()
        .filter(|s| s.method == "POST")
        .map(|s| s.path().to_owned())
        .collect();
    assert_eq!(paths, vec!["/api/assets", "/api/assets/bulk-upload-check"]);
    assert_eq!(c.retries(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_answer_times_out_and_is_retried() {
    let server = TestServer::start(TestServerOptions::v3().with_faults(first_n(
        "GET",
        "/api/server/media-types",
        1,
        Fault::Delay(Duration::from_secs(5)),
    )));
    let mut cfg: ClientConfig = server.client_config();
    cfg.read_timeout = Duration::from_secs(1);
    let c = ImmichClient::new(cfg).unwrap();
    let m = c.media_types().await.unwrap();
    assert!(!m.image.is_empty());
    assert_eq!(c.retries(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_an_album_is_not_retried_after_a_5xx_but_is_after_a_429() {
    let server =
        TestServer::start(TestServerOptions::v3().with_faults(burst("/api/albums", 1, 500)));
    let c = server.client();
    let err = c.create_album("Trip").await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(c.retries(), 0);
    assert!(server.albums().is_empty());

    let server =
        TestServer::start(TestServerOptions::v3().with_faults(burst("/api/albums", 2, 429)));
    let c = server.client();
    c.create_album("Trip").await.unwrap();
    assert_eq!(c.retries(), 2);
    assert_eq!(server.albums().len(), 1);
}
