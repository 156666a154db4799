//! Each typed call against the test server: what the client sends, how it reads
//! the answers, and that the server keeps the semantics the client relies on.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use crate::OnTestServer;
use imb_immich::{
    ApiKey, ApiVersion, CHECK_BATCH, CheckItem, CheckVerdict, ClientConfig, Error, ImmichClient,
    RetryPolicy, UploadStatus, pick_album,
};
use imb_storage::Payload;
use imb_testkit::immich::{DEFAULT_EMAIL, EarlyAnswer, TestServer, TestServerOptions, TestUser};

use crate::{jpg, sha1_hex, upload_of};

#[tokio::test(flavor = "multi_thread")]
async fn server_info_calls() {
    let server = TestServer::start(TestServerOptions::v3());
    let c = server.client();
    let v = c.server_version().await.unwrap();
    assert_eq!((v.major, v.minor, v.patch), (3, 0, 3));
    assert_eq!(c.api().await.unwrap(), ApiVersion::V3);
    let m = c.media_types().await.unwrap();
    assert!(m.image.iter().any(|e| e == ".jpg"), "{m:?}");
    assert!(m.video.iter().any(|e| e == ".mp4"), "{m:?}");
    assert!(m.accepts("IMG_0001.HEIC"));
    assert!(!m.accepts("notes.txt"));
    let me = c.my_user().await.unwrap();
    assert_eq!(me.email, DEFAULT_EMAIL);
    assert_eq!(me.quota_size_in_bytes, None);
    assert_eq!(me.quota_usage_in_bytes, Some(0));
    // The version was asked once and remembered.
    c.api().await.unwrap();
    let asked = server
        .requests()
        .iter()
        .filter(|s| s.path() == "/api/server/version")
        .count();
    assert_eq!(asked, 2, "one explicit call and one for api()");
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_is_created_then_duplicate() {
    let server = TestServer::start(TestServerOptions::v3());
    let c = server.client();
    let data = jpg(1, 50_000);
    let first = c
        .upload(&upload_of("IMG_0001.jpg", &data).with_favorite(true))
        .await
        .unwrap();
    assert_eq!(first.status, UploadStatus::Created);
    let again = c
        .upload(&upload_of("copy-of-IMG_0001.jpg", &data))
        .await
        .unwrap();
    assert_eq!(again.status, UploadStatus::Duplicate);
    assert_eq!(again.id, first.id);

    let assets = server.assets();
    assert_eq!(assets.len(), 1, "the duplicate was not stored");
    let a = &assets[0];
    assert_eq!(a.id, first.id);
    assert_eq!(a.checksum, sha1_hex(&data));
    assert_eq!(a.filename, "IMG_0001.jpg");
    assert_eq!(a.size, data.len() as u64);
    assert_eq!(a.fields["fileCreatedAt"], "2024-05-01T10:00:00.000Z");
    assert_eq!(a.fields["fileModifiedAt"], "2024-05-02T11:00:00.000+02:00");
    assert_eq!(a.fields["isFavorite"], "true");
    assert!(
        !a.fields.contains_key("deviceAssetId"),
        "v3 gets no device ids"
    );

    let uploads: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|s| s.method == "POST" && s.path() == "/api/assets")
        .collect();
    assert_eq!(uploads.len(), 2);
    assert_eq!(
        uploads[0].header("x-immich-checksum"),
        Some(sha1_hex(&data).as_str())
    );
    assert_eq!(uploads[0].status, 201);
    assert!(uploads[0].body_read_before_answer);
    assert_eq!(uploads[1].status, 200);
    assert!(
        !uploads[1].body_read_before_answer,
        "the duplicate was answered from the checksum header"
    );
    assert_eq!(server.users()[0].usage, data.len() as u64);
}

/// Text fields arrive before the file parts, and a sidecar is accepted even
/// though the server judges every file part by an earlier `filename` field.
#[tokio::test(flavor = "multi_thread")]
async fn fields_order_and_sidecar() {
    let server = TestServer::start(TestServerOptions::v3());
    let c = server.client();
    let data = jpg(2, 10_000);
    let xmp = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>".to_vec();
    let up = upload_of("DSC_0002.jpg", &data)
        .with_sidecar(Some(Payload::from(xmp.clone())))
        .with_duration(Some(Duration::from_millis(1500)));
    let out = c.upload(&up).await.unwrap();
    assert_eq!(out.status, UploadStatus::Created);
    let a = &server.assets()[0];
    assert_eq!(a.filename, "DSC_0002.jpg");
    assert_eq!(
        a.sidecar,
        Some(("DSC_0002.xmp".to_owned(), xmp.len() as u64))
    );
    assert_eq!(
        a.fields["duration"], "1500",
        "v3 durations are milliseconds"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn file_payloads_stream_and_a_shrunk_file_is_an_io_error() {
    let server = TestServer::start(TestServerOptions::v3());
    let c = server.client();
    let data = jpg(3, 3_000_000);
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(&data).unwrap();
    let file = Arc::new(std::fs::File::open(f.path()).unwrap());
    let mut up = upload_of("VID_0003.mp4", &data);
    up.payload = Payload::File {
        file: file.clone(),
        len: data.len() as u64,
    };
    let out = c.upload(&up).await.unwrap();
    assert_eq!(out.status, UploadStatus::Created);
    assert_eq!(server.assets()[0].checksum, sha1_hex(&data));

    // A payload longer than the file: the file shrank after it was hashed.
    let other = jpg(4, 1000);
    let mut up = upload_of("short.jpg", &other);
    up.payload = Payload::File {
        file,
        len: 4_000_000,
    };
    up.sha1 = [7; 20];
    let err = c.upload(&up).await.unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("short.jpg"), "{err}");
    assert_eq!(server.assets().len(), 1);
}

async fn short_circuit_with_large_body(early: EarlyAnswer) {
    let server = TestServer::start(TestServerOptions::v3().with_early_answer(early));
    let data = jpg(5, 24 * 1024 * 1024);
    let existing = server.add_asset(DEFAULT_EMAIL, "big.mp4", &data);
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(&data).unwrap();
    let mut up = upload_of("big-again.mp4", &data);
    up.payload = Payload::File {
        file: Arc::new(std::fs::File::open(f.path()).unwrap()),
        len: data.len() as u64,
    };
    let c = server.client();
    let out = c.upload(&up).await.unwrap();
    assert_eq!(out.status, UploadStatus::Duplicate, "{early:?}");
    assert_eq!(out.id, existing);
    assert_eq!(server.assets().len(), 1);
    let posts: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|s| s.path() == "/api/assets")
        .collect();
    assert_eq!(posts.len(), 1, "no retry was needed: {posts:?}");
    assert_eq!(posts[0].status, 200);
    assert!(!posts[0].body_read_before_answer);
    if early == EarlyAnswer::Close {
        assert!(
            posts[0].body_bytes_read < data.len() as u64 / 2,
            "the server stopped reading"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn short_circuit_duplicate_then_drain() {
    short_circuit_with_large_body(EarlyAnswer::Drain).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn short_circuit_duplicate_then_close_is_not_a_broken_pipe() {
    short_circuit_with_large_body(EarlyAnswer::Close).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_upload_check_in_batches_and_order() {
    let server = TestServer::start(TestServerOptions::v3());
    let c = server.client();
    let a = jpg(10, 1000);
    let b = jpg(11, 1000);
    let ida = c.upload(&upload_of("a.jpg", &a)).await.unwrap().id;
    let idb = c.upload(&upload_of("b.jpg", &b)).await.unwrap().id;
    let mut items: Vec<CheckItem> = (0..CHECK_BATCH * 2 + 5)
        .map(|i| {
            CheckItem::new(
                format!("new/{i}.jpg"),
                &imb_hash::digest(&i.to_le_bytes()).sha1,
            )
        })
        .collect();
    items.insert(3, CheckItem::new("a.jpg", &imb_hash::digest(&a).sha1));
    items.push(CheckItem::new("b.jpg", &imb_hash::digest(&b).sha1));
    let res = c.bulk_upload_check(&items).await.unwrap();
    assert_eq!(res.len(), items.len());
    for (r, i) in res.iter().zip(&items) {
        assert_eq!(r.id, i.id);
    }
    assert_eq!(
        res[3].verdict,
        CheckVerdict::Duplicate {
            asset_id: ida,
            is_trashed: false
        }
    );
    assert_eq!(
        res.last().unwrap().verdict,
        CheckVerdict::Duplicate {
            asset_id: idb,
            is_trashed: false
        }
    );
    let accepted = res
        .iter()
        .filter(|r| r.verdict == CheckVerdict::Accept)
        .count();
    assert_eq!(accepted, items.len() - 2);
    let checks = server
        .requests()
        .iter()
        .filter(|s| s.path() == "/api/assets/bulk-upload-check")
        .count();
    assert_eq!(checks, 3, "batches of {CHECK_BATCH}");
}

#[tokio::test(flavor = "multi_thread")]
async fn quota_exceeded_is_reported_and_nothing_is_stored() {
    let server = TestServer::start(TestServerOptions::v3().with_quota(1000));
    let c = server.client();
    let first = jpg(20, 600);
    c.upload(&upload_of("first.jpg", &first)).await.unwrap();
    let err = c
        .upload(&upload_of("second.jpg", &jpg(21, 600)))
        .await
        .unwrap_err();
    assert!(err.is_quota_exceeded(), "{err}");
    assert!(err.to_string().contains("second.jpg"), "{err}");
    assert!(
        err.to_string().contains("Quota has been exceeded!"),
        "{err}"
    );
    assert_eq!(server.assets().len(), 1);
    assert_eq!(server.users()[0].usage, 600);
    // The up-front check says the same before anything is sent.
    let up_front = c.ensure_quota(600).await.unwrap_err();
    assert!(up_front.is_quota_exceeded(), "{up_front}");
    let me = c.ensure_quota(400).await.unwrap();
    assert_eq!(me.quota_remaining(), Some(400));
    // A duplicate is still answered: the checksum short-circuit comes before the quota.
    let dup = c.upload(&upload_of("first.jpg", &first)).await.unwrap();
    assert_eq!(dup.status, UploadStatus::Duplicate);
}

#[tokio::test(flavor = "multi_thread")]
async fn unsupported_extension_is_refused() {
    let server = TestServer::start(TestServerOptions::v3());
    let c = server.client();
    let err = c
        .upload(&upload_of("notes.txt", b"hello"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnsupportedFileType { .. }), "{err}");
    assert!(err.to_string().contains("notes.txt"), "{err}");
    assert!(server.assets().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_key_is_401_and_missing_permission_403() {
    let server = TestServer::start(TestServerOptions::v3().with_user(
        TestUser::new("viewer@example.test", "viewer-key").with_permissions(&["user.read"]),
    ));
    let secret = "not-the-right-key-42";
    let bad = ImmichClient::new(
        ClientConfig::new(server.api_url(), ApiKey::new(secret, "test").unwrap())
            .with_retry(RetryPolicy::fast()),
    )
    .unwrap();
    let err = bad.my_user().await.unwrap_err();
    assert!(
        matches!(err, Error::Unauthorized { status: 401, .. }),
        "{err}"
    );
    assert!(!err.to_string().contains(secret), "{err}");
    assert!(!format!("{err:?}").contains(secret));
    assert!(!format!("{bad:?}").contains(secret));

    let viewer = ImmichClient::new(server.client_config_for("viewer-key")).unwrap();
    assert_eq!(viewer.my_user().await.unwrap().email, "viewer@example.test");
    let err = viewer
        .upload(&upload_of("a.jpg", &jpg(30, 100)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Unauthorized { status: 403, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("asset.upload"), "{err}");
    // No retries for a refusal.
    assert_eq!(viewer.retries(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn albums_may_share_a_name() {
    let server = TestServer::start(TestServerOptions::v3());
    let c = server.client();
    let me = c.my_user().await.unwrap();
    let a1 = c.create_album("Trip").await.unwrap();
    let a2 = c.create_album("Trip").await.unwrap();
    assert_ne!(a1.id, a2.id);
    assert_eq!(a1.owner(), Some(me.id.as_str()));
    let albums = c.albums().await.unwrap();
    assert_eq!(albums.iter().filter(|a| a.album_name == "Trip").count(), 2);
    assert_eq!(
        pick_album(&albums, "Trip", &me.id).unwrap().id,
        a1.id,
        "the first made"
    );

    let x = c
        .upload(&upload_of("x.jpg", &jpg(40, 100)))
        .await
        .unwrap()
        .id;
    let y = c
        .upload(&upload_of("y.jpg", &jpg(41, 100)))
        .await
        .unwrap()
        .id;
    let res = c
        .add_to_album(&a1.id, &[x.clone(), y.clone()])
        .await
        .unwrap();
    assert!(res.iter().all(|r| r.success), "{res:?}");
    let again = c
        .add_to_album(&a1.id, std::slice::from_ref(&x))
        .await
        .unwrap();
    assert!(!again[0].success);
    assert_eq!(again[0].error.as_deref(), Some("duplicate"));
    assert!(again[0].is_in_album());
    let stored = server.albums();
    assert_eq!(stored[0].assets, vec![x, y]);
    assert!(stored[1].assets.is_empty());

    let gone = c
        .add_to_album("aaaaaaaa-0000-4000-8000-00000000ffff", &[])
        .await;
    // An empty list sends nothing; a real one finds the album missing.
    assert!(gone.unwrap().is_empty());
    let err = c
        .add_to_album("bbbbbbbb-0000-4000-8000-00000000ffff", &["z".into()])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn large_album_adds_go_in_batches() {
    let server = TestServer::start(TestServerOptions::v3());
    let c = server.client();
    let album = c.create_album("Many").await.unwrap();
    let ids: Vec<String> = (0..2100).map(|i| format!("missing-{i}")).collect();
    let res = c.add_to_album(&album.id, &ids).await.unwrap();
    assert_eq!(res.len(), ids.len());
    assert!(
        res.iter()
            .all(|r| r.error.as_deref() == Some("no_permission"))
    );
    let puts = server
        .requests()
        .iter()
        .filter(|s| s.method == "PUT")
        .count();
    assert_eq!(puts, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_server_gets_device_ids_and_string_durations() {
    let server = TestServer::start(TestServerOptions::v2());
    let c = server.client();
    assert_eq!(c.api().await.unwrap(), ApiVersion::V2);
    let data = jpg(50, 2000);
    let out = c
        .upload(
            &upload_of("clip.mp4", &data)
                .with_duration(Some(Duration::from_millis(3_723_500)))
                .with_device("phone-1", "asset-1"),
        )
        .await
        .unwrap();
    assert_eq!(out.status, UploadStatus::Created);
    let defaulted = jpg(51, 2000);
    c.upload(&upload_of("my photo.jpg", &defaulted))
        .await
        .unwrap();
    let assets = server.assets();
    assert_eq!(assets[0].fields["deviceId"], "phone-1");
    assert_eq!(assets[0].fields["deviceAssetId"], "asset-1");
    assert_eq!(assets[0].fields["duration"], "1:02:03.500000");
    assert_eq!(assets[1].fields["deviceId"], "immich-backup");
    assert_eq!(assets[1].fields["deviceAssetId"], "myphoto.jpg-2000");

    // The same server refuses an upload without them (a client forced to v3).
    let forced = ImmichClient::new(server.client_config().with_api(Some(ApiVersion::V3))).unwrap();
    let err = forced
        .upload(&upload_of("c.jpg", &jpg(52, 100)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Rejected { status: 400, .. }), "{err}");
    assert!(err.to_string().contains("deviceAssetId"), "{err}");
    // v2 albums name their owner with ownerId.
    let album = c.create_album("Old").await.unwrap();
    assert_eq!(album.owner(), Some(c.my_user().await.unwrap().id.as_str()));
    assert!(album.owner_id.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn api_override_skips_the_version_call() {
    let server = TestServer::start(TestServerOptions::v3());
    let c = ImmichClient::new(server.client_config().with_api(Some(ApiVersion::V3))).unwrap();
    c.upload(&upload_of("a.jpg", &jpg(60, 100))).await.unwrap();
    assert!(
        server
            .requests()
            .iter()
            .all(|s| s.path() != "/api/server/version")
    );
}
