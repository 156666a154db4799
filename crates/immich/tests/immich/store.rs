//! `ImmichStore`: the create-only cases of the storage contract that a server
//! without reads can run (the conformance suite's other cases need `ObjectRead`).

use std::io::Write;
use std::sync::Arc;

use crate::OnTestServer;
use imb_immich::{
    ImmichStore, META_DURATION_MS, META_FILE_CREATED_AT, META_IS_FAVORITE, META_SHA1, UploadStatus,
};
use imb_storage::{CopyOptions, Error, Key, ObjectCreate, Payload, PutOptions};
use imb_testkit::immich::{TestServer, TestServerOptions};

use crate::{jpg, sha1_hex};

fn store(server: &TestServer) -> ImmichStore {
    ImmichStore::new(Arc::new(server.client()))
}

fn key(s: &str) -> Key {
    Key::parse(s).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_upload_is_created_with_the_asset_id() {
    let server = TestServer::start(TestServerOptions::v3());
    let s = store(&server);
    let data = jpg(1, 300_000);
    let put = s
        .put_opts(
            &key("DCIM/Camera/IMG_0001.jpg"),
            Payload::from(data.clone()),
            PutOptions::default()
                .with_metadata(META_FILE_CREATED_AT, "2023-12-24T18:00:00.000+01:00")
                .with_metadata(META_IS_FAVORITE, "true")
                .with_crc32c(imb_hash::digest(&data).crc32c),
        )
        .await
        .unwrap();
    assert_eq!(put.size, data.len() as u64);
    assert_eq!(put.crc32c, Some(imb_hash::digest(&data).crc32c));
    let assets = server.assets();
    assert_eq!(put.id.as_deref(), Some(assets[0].id.as_str()));
    assert_eq!(assets[0].filename, "IMG_0001.jpg", "the key's last segment");
    assert_eq!(assets[0].checksum, sha1_hex(&data));
    assert_eq!(
        assets[0].fields["fileCreatedAt"],
        "2023-12-24T18:00:00.000+01:00"
    );
    assert_eq!(assets[0].fields["isFavorite"], "true");
    assert!(
        assets[0].fields["fileModifiedAt"].ends_with('Z'),
        "defaulted, with a zone"
    );
}

/// Create-only: the same content again, under any key, is `AlreadyExists` and
/// nothing is stored twice.
#[tokio::test(flavor = "multi_thread")]
async fn the_same_content_again_already_exists() {
    let server = TestServer::start(TestServerOptions::v3());
    let s = store(&server);
    let data = jpg(2, 10_000);
    let first = s
        .put_opts(
            &key("a/one.jpg"),
            Payload::from(data.clone()),
            PutOptions::default(),
        )
        .await
        .unwrap();
    for k in ["a/one.jpg", "b/other-name.jpg"] {
        let again = s
            .put_opts(&key(k), Payload::from(data.clone()), PutOptions::default())
            .await;
        assert!(
            matches!(again, Err(Error::AlreadyExists { .. })),
            "{k}: {again:?}"
        );
    }
    assert_eq!(server.assets().len(), 1);
    // `upload` gives the existing id for the same case.
    let (outcome, _) = s
        .upload(
            &key("c/third.jpg"),
            Payload::from(data),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, UploadStatus::Duplicate);
    assert_eq!(Some(outcome.id), first.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_payload_with_a_given_sha1_is_read_once() {
    let server = TestServer::start(TestServerOptions::v3());
    let s = store(&server);
    let data = jpg(3, 1_100_000);
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(&data).unwrap();
    let payload = Payload::File {
        file: Arc::new(std::fs::File::open(f.path()).unwrap()),
        len: data.len() as u64,
    };
    let put = s
        .put_opts(
            &key("Movies/clip.mp4"),
            payload,
            PutOptions::default()
                .with_metadata(META_SHA1, sha1_hex(&data))
                .with_metadata(META_DURATION_MS, "4500"),
        )
        .await
        .unwrap();
    assert_eq!(put.crc32c, None, "nothing was hashed locally");
    let a = &server.assets()[0];
    assert_eq!(a.checksum, sha1_hex(&data));
    assert_eq!(a.fields["duration"], "4500");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_crc32c_is_refused_before_sending() {
    let server = TestServer::start(TestServerOptions::v3());
    let s = store(&server);
    let data = jpg(4, 5000);
    let res = s
        .put_opts(
            &key("x.jpg"),
            Payload::from(data.clone()),
            PutOptions::default().with_crc32c(imb_hash::digest(&data).crc32c ^ 1),
        )
        .await;
    assert!(
        matches!(res, Err(Error::ChecksumMismatch { .. })),
        "{res:?}"
    );
    assert!(server.assets().is_empty());
    assert!(server.requests().iter().all(|r| r.path() != "/api/assets"));
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_and_streamed_creates_are_not_implemented() {
    let server = TestServer::start(TestServerOptions::v3());
    let s = store(&server);
    let copy = s
        .copy_opts(&key("a.jpg"), &key("b.jpg"), CopyOptions::default())
        .await;
    assert!(
        matches!(copy, Err(Error::NotImplemented { .. })),
        "{copy:?}"
    );
    let up = s
        .create_upload(&key("d.sql.gz"), PutOptions::default())
        .await;
    assert!(matches!(up, Err(Error::NotImplemented { .. })));
}

#[tokio::test(flavor = "multi_thread")]
async fn server_refusals_keep_their_meaning() {
    let server = TestServer::start(TestServerOptions::v3().with_quota(100));
    let s = store(&server);
    let res = s
        .put_opts(
            &key("big.jpg"),
            Payload::from(jpg(5, 1000)),
            PutOptions::default(),
        )
        .await;
    let Err(Error::Generic {
        transient: false,
        source: Some(src),
        ..
    }) = res
    else {
        panic!("quota: {res:?}");
    };
    let inner = src
        .downcast_ref::<imb_immich::Error>()
        .expect("the client's error");
    assert!(inner.is_quota_exceeded(), "{inner}");

    let bad = ImmichStore::new(Arc::new(
        imb_immich::ImmichClient::new(server.client_config_for("wrong-key")).unwrap(),
    ));
    let res = bad
        .put_opts(
            &key("a.jpg"),
            Payload::from(jpg(6, 10)),
            PutOptions::default(),
        )
        .await;
    assert!(matches!(res, Err(Error::Unauthenticated { .. })), "{res:?}");
}
