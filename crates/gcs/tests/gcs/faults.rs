//! Faults neither emulator produces, injected by a loopback proxy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::OnEmulator;
use imb_gcs::GcsStore;
use imb_storage::{Error, Key, ObjectCreate, ObjectReadExt, Payload, PutOptions};
use imb_testkit::gcs::{Emulator, Fault, FaultProxy};

fn store_via(
    proxy: &FaultProxy,
    emu: &Emulator,
    tweak: impl FnOnce(&mut imb_gcs::GcsConfig),
) -> GcsStore {
    let mut cfg = emu.config();
    cfg.endpoint = proxy.endpoint();
    tweak(&mut cfg);
    GcsStore::new(cfg).unwrap()
}

/// A 5 GiB video must not start over after a network blip: the upload resumes
/// from the offset the server reports. A file payload is streamed chunk by chunk
/// and the cut chunk read again from the file; bytes in memory are sliced.
#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_resumable_upload_resumes_from_the_server_offset() {
    let dir = tempfile::tempdir().unwrap();
    let data = imb_storage::conformance::pattern(1_348_576, 9);
    let path = dir.path().join("video.mp4");
    std::fs::write(&path, &data).unwrap();
    let file = Payload::File {
        file: Arc::new(std::fs::File::open(&path).unwrap()),
        len: data.len() as u64,
    };
    resumes_after_a_cut(Payload::from(data.clone()), &data).await;
    resumes_after_a_cut(file, &data).await;
}

async fn resumes_after_a_cut(payload: Payload, data: &[u8]) {
    let emu = Emulator::gcp_storage_emulator();
    let cut = Arc::new(AtomicBool::new(false));
    let c = cut.clone();
    let proxy = FaultProxy::start(0, emu.port(), move |s| {
        // Cut the third chunk (bytes 512 KiB on) once, mid-body.
        let third = s.method == "PUT"
            && s.header("content-range")
                .is_some_and(|r| r.starts_with("bytes 524288-"));
        if third && !c.swap(true, Ordering::SeqCst) {
            Fault::ResetMidBody
        } else {
            Fault::Forward
        }
    });
    let store = store_via(&proxy, &emu, |c| {
        c.resumable_threshold = 256 * 1024;
        c.chunk_size = 256 * 1024;
    });
    let k = Key::parse("library/video.mp4").unwrap();
    store
        .put_opts(
            &k,
            payload,
            PutOptions::default().with_crc32c(crc32c::crc32c(data)),
        )
        .await
        .expect("upload completes despite the cut");
    assert!(cut.load(Ordering::SeqCst), "the fault fired");
    let got = store.get_bytes(&k).await.unwrap();
    assert_eq!(
        imb_hash::digest(&got).sha256,
        imb_hash::digest(data).sha256,
        "final object's hash"
    );
    let reqs = proxy.requests();
    assert!(
        reqs.iter().any(|r| r
            .header("content-range")
            .is_some_and(|v| v.starts_with("bytes */"))),
        "asked the server where it stood"
    );
    let first_chunk_sends = reqs
        .iter()
        .filter(|r| {
            r.header("content-range")
                .is_some_and(|v| v.starts_with("bytes 0-"))
        })
        .count();
    assert_eq!(first_chunk_sends, 1, "did not start over");
    assert_eq!(store.retries(), 1, "one cut, one retry");
}

/// 5xx bursts, 429 with Retry-After and a reset mid-body: every object arrives
/// exactly once and the retries are counted.
#[tokio::test(flavor = "multi_thread")]
async fn transient_faults_are_retried_and_counted() {
    let emu = Emulator::fake_gcs();
    let uploads = Arc::new(AtomicUsize::new(0));
    let u = uploads.clone();
    let proxy = FaultProxy::start(0, emu.port(), move |s| {
        if !s.target.starts_with("/upload/") {
            return Fault::Forward;
        }
        match u.fetch_add(1, Ordering::SeqCst) {
            0 | 1 => Fault::Status(503, None),
            2 => Fault::Status(429, Some(1)),
            3 => Fault::ResetMidBody,
            4 => Fault::Status(500, None),
            _ => Fault::Forward,
        }
    });
    let store = store_via(&proxy, &emu, |_| {});
    for i in 0..10 {
        let k = Key::parse(format!("library/f{i}.jpg")).unwrap();
        let data = format!("photo {i}").into_bytes();
        store
            .put_opts(
                &k,
                Payload::from(data.clone()),
                PutOptions::default().with_crc32c(crc32c::crc32c(&data)),
            )
            .await
            .unwrap_or_else(|e| panic!("f{i}: {e}"));
        assert_eq!(store.get_bytes(&k).await.unwrap(), data);
    }
    assert_eq!(store.retries(), 5, "two 503s, a 429, a reset and a 500");
    let listed = store.list_all("library/").await.unwrap();
    assert_eq!(listed.len(), 10, "nothing duplicated");
}

#[tokio::test(flavor = "multi_thread")]
async fn permanent_errors_are_not_retried_and_name_the_object() {
    let emu = Emulator::fake_gcs();
    let proxy = FaultProxy::start(0, emu.port(), |s| {
        if s.target.starts_with("/upload/") {
            Fault::Status(400, None)
        } else {
            Fault::Forward
        }
    });
    let store = store_via(&proxy, &emu, |_| {});
    let k = Key::parse("library/bad.jpg").unwrap();
    let err = store
        .put_opts(&k, Payload::from(b"x".to_vec()), PutOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("gs://bk1/library/bad.jpg"),
        "{err}"
    );
    assert!(!err.is_transient());
    assert_eq!(store.retries(), 0);
    assert_eq!(
        proxy
            .requests()
            .iter()
            .filter(|r| r.target.starts_with("/upload/"))
            .count(),
        1
    );
}

/// Real GCS answers 412 at the end of a resumable create of an existing object;
/// neither emulator does, so the proxy plays GCS.
#[tokio::test(flavor = "multi_thread")]
async fn a_412_at_the_end_of_a_resumable_upload_is_already_exists() {
    // Session URIs name the emulator; the proxy rewrites them to itself.
    let emu = Emulator::fake_gcs();
    let proxy = FaultProxy::start(0, emu.port(), |s| {
        if s.method == "PUT"
            && s.header("content-range")
                .is_some_and(|r| r.contains("/1048576"))
            && s.header("content-range")
                .is_some_and(|r| r.starts_with("bytes 786432-"))
        {
            Fault::Status(412, None)
        } else {
            Fault::Forward
        }
    });
    let store = store_via(&proxy, &emu, |c| {
        c.resumable_threshold = 256 * 1024;
        c.chunk_size = 256 * 1024;
    });
    let data = imb_storage::conformance::pattern(1_048_576, 1);
    let k = Key::parse("library/big.mp4").unwrap();
    let res = store
        .put_opts(&k, Payload::from(data), PutOptions::default())
        .await;
    assert!(matches!(res, Err(Error::AlreadyExists { .. })), "{res:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_response_times_out_and_is_retried() {
    let emu = Emulator::fake_gcs();
    let k = Key::parse("library/slow.jpg").unwrap();
    // Stored directly with the normal timeout: a put timed out under load and
    // retried would find its own object (412, AlreadyExists). Only the head is
    // under test.
    emu.store()
        .put_opts(&k, Payload::from(b"s".to_vec()), PutOptions::default())
        .await
        .unwrap();
    let first = Arc::new(AtomicBool::new(true));
    let f = first.clone();
    let proxy = FaultProxy::start(0, emu.port(), move |s| {
        if s.target.starts_with("/storage/v1/b/bk1/o/") && f.swap(false, Ordering::SeqCst) {
            // Far beyond the timeout; it only holds a detached proxy thread.
            Fault::Delay(Duration::from_secs(10))
        } else {
            Fault::Forward
        }
    });
    // Short enough to time out on the delay, long enough for a loaded machine.
    let store = store_via(&proxy, &emu, |c| c.timeout = Duration::from_secs(2));
    let head = imb_storage::ObjectRead::head(&store, &k)
        .await
        .expect("head retried after the timeout");
    assert_eq!(head.size, 1);
    assert!(!first.load(Ordering::SeqCst), "the delay fired");
    assert_eq!(store.retries(), 1, "one delay scripted, one retry");
}
