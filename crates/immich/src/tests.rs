//! Unit tests: settings, key handling, error mapping, DTO reading and the form layout.

use std::time::Duration;

use crate::error::{from_status, server_message};
use crate::multipart::Form;
use crate::*;

#[test]
fn key_is_never_shown() {
    let k = ApiKey::new("  s3cret-key\n", "test").unwrap();
    assert_eq!(format!("{k:?}"), "ApiKey(<redacted>)");
    let cfg = ClientConfig::new("http://h", k);
    assert!(!format!("{cfg:?}").contains("s3cret"));
    assert!(k_header_is_sensitive(&cfg.api_key));
    let e = ApiKey::new("bad key", "$IMMICH_API_KEY").unwrap_err();
    assert!(!e.to_string().contains("bad key"), "{e}");
    assert!(e.to_string().contains("$IMMICH_API_KEY"), "{e}");
    assert!(matches!(ApiKey::new("  ", "x"), Err(Error::ApiKey { .. })));
}

fn k_header_is_sensitive(k: &ApiKey) -> bool {
    k.header().is_sensitive()
}

#[test]
fn key_from_file_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("key");
    std::fs::write(&p, "abc123\n").unwrap();
    assert!(ApiKey::from_file(&p).is_ok());
    let missing = ApiKey::from_file(&dir.path().join("nope")).unwrap_err();
    assert!(missing.to_string().contains("nope"), "{missing}");
    let unset = ApiKey::from_env("IMB_IMMICH_TEST_UNSET_VARIABLE").unwrap_err();
    assert!(unset.to_string().contains("not set"), "{unset}");
}

#[test]
fn api_root_is_normalised() {
    let k = ApiKey::new("k", "t").unwrap();
    let root = |u: &str| ClientConfig::new(u, k.clone()).api_root();
    assert_eq!(
        root("https://photos.example.org").unwrap(),
        "https://photos.example.org/api"
    );
    assert_eq!(
        root("https://photos.example.org/api/").unwrap(),
        "https://photos.example.org/api"
    );
    assert_eq!(
        root("http://10.0.0.2:2283/immich").unwrap(),
        "http://10.0.0.2:2283/immich/api"
    );
    let why = |u: &str| match root(u) {
        Err(crate::Error::InvalidConfig { setting, message }) => format!("{setting}: {message}"),
        other => panic!("{u}: {other:?}"),
    };
    assert_eq!(
        why("ftp://x"),
        r#"server url: "ftp://x": must start with http:// or https://"#
    );
    assert_eq!(why("http://"), r#"server url: "http://": has no host"#);
    assert_eq!(
        why("http://h/api?x=1"),
        r#"server url: "http://h/api?x=1": must not have a query, fragment or spaces"#
    );
}

#[test]
fn api_versions() {
    assert_eq!("v2".parse::<ApiVersion>().unwrap(), ApiVersion::V2);
    assert_eq!("V3".parse::<ApiVersion>().unwrap(), ApiVersion::V3);
    assert!(matches!(
        "v4".parse::<ApiVersion>(),
        Err(crate::Error::InvalidConfig { setting: "api", .. })
    ));
    assert_eq!(ApiVersion::for_major(1), ApiVersion::V2);
    assert_eq!(ApiVersion::for_major(2), ApiVersion::V2);
    assert_eq!(ApiVersion::for_major(3), ApiVersion::V3);
}

#[test]
fn statuses_map_to_errors() {
    let e = |status, body: &str| {
        from_status(
            "POST /assets",
            Some("a.jpg"),
            status,
            body,
            1,
            Duration::ZERO,
        )
    };
    assert!(matches!(
        e(401, r#"{"message":"Invalid API key"}"#),
        Error::Unauthorized { status: 401, .. }
    ));
    assert!(matches!(
        e(403, "{}"),
        Error::Unauthorized { status: 403, .. }
    ));
    let q = e(400, r#"{"message":"Quota has been exceeded!"}"#);
    assert!(q.is_quota_exceeded(), "{q}");
    assert!(q.to_string().starts_with("a.jpg:"), "{q}");
    assert!(matches!(
        e(
            400,
            r#"{"message":"Unsupported file type a.txt","error":"Bad Request","statusCode":400}"#
        ),
        Error::UnsupportedFileType { .. }
    ));
    assert!(matches!(
        e(
            400,
            r#"{"message":"Not found or no albumAsset.create access"}"#
        ),
        Error::NotFound { .. }
    ));
    assert!(matches!(e(404, ""), Error::NotFound { .. }));
    assert!(e(503, "").is_transient());
    assert!(matches!(
        e(400, r#"{"message":["deviceId must be a string","x"]}"#),
        Error::Rejected { .. }
    ));
    assert_eq!(server_message(r#"{"message":["a","b"]}"#), "a; b");
    assert_eq!(server_message("plain"), "plain");
}

#[test]
fn check_results_are_read_leniently() {
    let json = r#"{"results":[
        {"id":"a","action":"accept"},
        {"id":"b","action":"reject","reason":"duplicate","assetId":"x","isTrashed":true},
        {"id":"c","action":"reject","reason":"unsupported-format"},
        {"id":"d","action":"reject","reason":"something-new","extra":1}]}"#;
    #[derive(serde::Deserialize)]
    struct R {
        results: Vec<crate::types::CheckResultDto>,
    }
    let r: R = serde_json::from_str(json).unwrap();
    let v: Vec<CheckResult> = r.results.into_iter().map(CheckResult::from).collect();
    assert_eq!(v[0].verdict, CheckVerdict::Accept);
    assert_eq!(
        v[1].verdict,
        CheckVerdict::Duplicate {
            asset_id: "x".into(),
            is_trashed: true
        }
    );
    assert!(
        matches!(&v[2].verdict, CheckVerdict::Reject { reason } if reason == "unsupported-format")
    );
    assert!(matches!(&v[3].verdict, CheckVerdict::Reject { reason } if reason == "something-new"));
}

#[test]
fn media_types_and_quota() {
    let m = MediaTypes {
        image: vec![".jpg".into(), ".heic".into()],
        video: vec![".mp4".into()],
        sidecar: vec![".xmp".into()],
    };
    assert!(m.accepts("a/B.JPG"));
    assert!(m.is_video("clip.mp4"));
    assert!(!m.accepts("notes.txt"));
    assert!(!m.accepts(".jpg"));
    assert!(!m.accepts("jpg"));
    assert!(m.is_sidecar("a.xmp"));
    let u: User = serde_json::from_str(
        r#"{"id":"u","email":"e","name":"n","quotaSizeInBytes":100,"quotaUsageInBytes":60,"isAdmin":true}"#,
    )
    .unwrap();
    assert_eq!(u.quota_remaining(), Some(40));
    assert!(!u.would_exceed_quota(40));
    assert!(u.would_exceed_quota(41));
    let unlimited: User = serde_json::from_str(r#"{"id":"u","quotaSizeInBytes":null}"#).unwrap();
    assert!(!unlimited.would_exceed_quota(u64::MAX));
}

#[test]
fn album_choice_is_deterministic() {
    let a = |id: &str, name: &str, created: &str, owner: &str| Album {
        id: id.into(),
        album_name: name.into(),
        asset_count: 0,
        created_at: created.into(),
        owner_id: Some(owner.into()),
        album_users: vec![],
    };
    let albums = vec![
        a("3", "Trip", "2024-02-01T00:00:00.000Z", "me"),
        a("2", "Trip", "2024-01-01T00:00:00.000Z", "me"),
        a("1", "Trip", "2024-01-01T00:00:00.000Z", "me"),
        a("0", "Trip", "2023-01-01T00:00:00.000Z", "someone else"),
        a("9", "trip", "2020-01-01T00:00:00.000Z", "me"),
    ];
    assert_eq!(pick_album(&albums, "Trip", "me").unwrap().id, "1");
    assert!(pick_album(&albums, "Other", "me").is_none());
    let v3: Album = serde_json::from_str(
        r#"{"id":"x","albumName":"A","albumUsers":[{"role":"owner","user":{"id":"me"}}]}"#,
    )
    .unwrap();
    assert_eq!(v3.owner(), Some("me"));
}

#[test]
fn form_puts_text_fields_before_files() {
    let mut f = Form::new("BOUND".into());
    f.text("fileCreatedAt", "2024-01-01T00:00:00.000Z");
    f.text("filename", "a \"b\".jpg");
    f.file(
        "assetData",
        "a \"b\".jpg",
        imb_storage::Payload::from(b"DATA".to_vec()),
    );
    let (body, ct, len) = f.finish();
    assert_eq!(ct, "multipart/form-data; boundary=BOUND");
    let bytes = futures_body(body, len);
    assert_eq!(bytes.len() as u64, len);
    let text = String::from_utf8(bytes).unwrap();
    let created = text.find("name=\"fileCreatedAt\"").unwrap();
    let file = text.find("name=\"assetData\"").unwrap();
    assert!(created < file);
    assert!(text.contains("filename=\"a %22b%22.jpg\""), "{text}");
    assert!(text.contains("\r\n\r\nDATA\r\n--BOUND--\r\n"), "{text}");
}

/// Collects an all-in-memory body.
fn futures_body(body: imb_http::body::Source, len: u64) -> Vec<u8> {
    assert_eq!(body.len(), len);
    let b = body.body();
    b.as_bytes().expect("in-memory body").to_vec()
}
