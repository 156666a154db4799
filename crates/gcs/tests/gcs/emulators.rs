//! Conformance and integrity on the emulators.

use crate::OnEmulator;
use imb_storage::{Error, Key, ObjectCreate, ObjectRead, ObjectReadExt, Payload, PutOptions};
use imb_testkit::gcs::{Emulator, raw_request};

#[tokio::test(flavor = "multi_thread")]
async fn fake_gcs_server_passes_the_conformance_suite() {
    let emu = Emulator::fake_gcs();
    let mut cfg = emu.config();
    // Small thresholds so the suite's larger payloads take the resumable path too.
    cfg.resumable_threshold = 512 * 1024;
    cfg.chunk_size = 256 * 1024;
    let store = imb_gcs::GcsStore::new(cfg).unwrap();
    // fake-gcs-server stores bytes whatever their checksum; that case runs on
    // gcp-storage-emulator below.
    let caps = imb_storage::conformance::Capabilities {
        validates_checksums: false,
    };
    imb_storage::conformance::backup_store_with(&store, "suite", caps).await;
    imb_storage::conformance::replace_overwrites(&store, &store, "suite/replace").await;
    imb_storage::conformance::delete_removes(&store, &store, "suite/delete").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prefix_scopes_every_object() {
    let emu = Emulator::fake_gcs();
    let mut cfg = emu.config();
    cfg.prefix = "nightly/immich".into();
    let store = imb_gcs::GcsStore::new(cfg).unwrap();
    imb_storage::conformance::put_get_head(&store, "p").await;
    imb_storage::conformance::list_pages(&store, "l").await;
    // The object really lives under the prefix in the bucket.
    let plain = emu.store();
    let k = Key::parse("nightly/immich/p/a/b/photo.jpg").unwrap();
    assert!(plain.head(&k).await.is_ok());
}

/// The emulator enforces `ifGenerationMatch=0` only on multipart uploads; assert
/// that it does, so "never overwrite" tests cannot pass vacuously.
#[tokio::test(flavor = "multi_thread")]
async fn fake_gcs_server_answers_412_to_a_multipart_create_of_an_existing_object() {
    let emu = Emulator::fake_gcs();
    let store = emu.store();
    let k = Key::parse("library/a.jpg").unwrap();
    store
        .put_opts(&k, Payload::from(b"first".to_vec()), PutOptions::default())
        .await
        .unwrap();
    let body = b"--b\r\nContent-Type: application/json\r\n\r\n{\"name\":\"library/a.jpg\"}\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\nsecond\r\n--b--\r\n";
    let (status, _) = raw_request(
        emu.port(),
        "POST",
        "/upload/storage/v1/b/bk1/o?uploadType=multipart&ifGenerationMatch=0",
        &[("Content-Type", "multipart/related; boundary=b")],
        body,
    );
    assert_eq!(status, 412);
    let again = store
        .put_opts(&k, Payload::from(b"second".to_vec()), PutOptions::default())
        .await;
    assert!(
        matches!(again, Err(Error::AlreadyExists { .. })),
        "{again:?}"
    );
    assert_eq!(&store.get_bytes(&k).await.unwrap()[..], b"first");
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_class_and_metadata_are_kept() {
    let emu = Emulator::fake_gcs();
    let store = emu.store();
    let k = Key::parse("library/cold.jpg").unwrap();
    let data = b"archive me".to_vec();
    let opts = PutOptions::default()
        .with_storage_class("ARCHIVE")
        .with_metadata("sha256", "abc")
        .with_crc32c(crc32c::crc32c(&data));
    let r = store
        .put_opts(&k, Payload::from(data.clone()), opts)
        .await
        .unwrap();
    assert_eq!(r.crc32c, Some(crc32c::crc32c(&data)));
    assert!(r.generation.is_some());
    let m = store.head(&k).await.unwrap();
    assert_eq!(m.storage_class.as_deref(), Some("ARCHIVE"));
    assert_eq!(m.metadata.get("sha256").map(String::as_str), Some("abc"));
    assert_eq!(m.crc32c, Some(crc32c::crc32c(&data)));
}

/// fake-gcs-server does not validate checksums; gcp-storage-emulator does.
#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_body_is_rejected_by_the_checksum_and_reported() {
    let emu = Emulator::gcp_storage_emulator();
    let store = emu.store();
    let k = Key::parse("library/corrupt.jpg").unwrap();
    let data = imb_storage::conformance::pattern(50_000, 3);
    let wrong = crc32c::crc32c(&data) ^ 0x10;
    let res = store
        .put_opts(
            &k,
            Payload::from(data.clone()),
            PutOptions::default().with_crc32c(wrong),
        )
        .await;
    assert!(
        matches!(res, Err(Error::ChecksumMismatch { .. })),
        "{res:?}"
    );
    assert!(matches!(store.head(&k).await, Err(Error::NotFound { .. })));
    let ok = store
        .put_opts(
            &k,
            Payload::from(data.clone()),
            PutOptions::default().with_crc32c(crc32c::crc32c(&data)),
        )
        .await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn gcp_storage_emulator_passes_the_checksum_and_streaming_cases() {
    let emu = Emulator::gcp_storage_emulator();
    let store = emu.store();
    imb_storage::conformance::checksum_is_enforced(&store, "crc").await;
    imb_storage::conformance::put_get_head(&store, "pgh").await;
    imb_storage::conformance::streamed_create(&store, "stream").await;
}
