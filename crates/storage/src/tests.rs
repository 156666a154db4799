//! Unit tests: keys, path encoding, and the conformance suite on the in-crate backends.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use proptest::prelude::*;

use crate::{InMemory, Key, KeyError, LocalDir, decode_path, encode_path};

#[test]
fn keys_reject_bad_shapes() {
    assert_eq!(Key::parse(""), Err(KeyError::Empty));
    for bad in ["/a", "a/", "a//b", "a/./b", "../a", "a/.."] {
        assert!(
            matches!(Key::parse(bad), Err(KeyError::BadSegment(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        Key::parse("a\nb"),
        Err(KeyError::ControlCharacter(_))
    ));
    assert!(matches!(
        Key::parse("a".repeat(1025)),
        Err(KeyError::TooLong(_))
    ));
    assert!(Key::parse("library/.immich").is_ok());
    assert!(Key::parse("a".repeat(1024)).is_ok());
}

#[test]
fn encoding_keeps_plain_names_and_escapes_the_rest() {
    assert_eq!(
        encode_path(Path::new("library/admin/IMG 1.jpg")).unwrap(),
        "library/admin/IMG 1.jpg"
    );
    assert_eq!(encode_path(Path::new("a/50%.jpg")).unwrap(), "a/50%25.jpg");
    assert_eq!(
        encode_path(Path::new("a/new\nline")).unwrap(),
        "a/new%0Aline"
    );
    let raw = Path::new(OsStr::from_bytes(b"bad\xff\xfename.jpg"));
    assert_eq!(encode_path(raw).unwrap(), "bad%FF%FEname.jpg");
    assert!(matches!(encode_path(Path::new("/abs")), Err(KeyError::BadSegment(p)) if p == "/abs"));
    assert!(
        matches!(encode_path(Path::new("a/../b")), Err(KeyError::BadSegment(p)) if p == "a/../b")
    );
    assert!(matches!(decode_path("a%2"), Err(KeyError::BadEscape(_))));
    // A sign is not a hex digit (u8::from_str_radix would take "+5" for 5).
    assert!(matches!(decode_path("a%+5"), Err(KeyError::BadEscape(_))));
    assert!(matches!(decode_path("a%-1b"), Err(KeyError::BadEscape(_))));
    assert_eq!(decode_path("a%2Fb%2fc").unwrap(), Path::new("a/b/c"));
}

proptest! {
    #[test]
    fn path_encoding_round_trips(segments in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..12), 1..5)) {
        // Any bytes except '/' and NUL make a file name; "." and ".." are not names.
        let segs: Vec<Vec<u8>> = segments
            .into_iter()
            .map(|s| s.into_iter().map(|b| if b == b'/' || b == 0 { b'x' } else { b }).collect::<Vec<u8>>())
            .filter(|s| s != b"." && s != b"..")
            .collect();
        prop_assume!(!segs.is_empty());
        let joined = segs.join(&b'/');
        let path = Path::new(OsStr::from_bytes(&joined));
        let enc = encode_path(path).unwrap();
        let key = format!("library/{}", enc);
        prop_assert!(Key::parse(key).is_ok() || enc.len() > 1000);
        let back = decode_path(&enc).unwrap();
        prop_assert_eq!(back.as_os_str().as_bytes(), &joined[..]);
    }
}

#[tokio::test]
async fn in_memory_passes_the_conformance_suite() {
    let store = InMemory::new();
    crate::conformance::backup_store(&store, "suite").await;
    crate::conformance::replace_overwrites(&store, &store, "suite/replace").await;
    crate::conformance::delete_removes(&store, &store, "suite/delete").await;
}

/// On a multi-threaded runtime (where a local directory works in place), with
/// creates through unnamed files and, as on a filesystem without them, through
/// staged files; `flush` syncs.
#[tokio::test(flavor = "multi_thread")]
async fn local_dir_passes_the_conformance_suite_unnamed_and_staged() {
    for staged in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LocalDir::new(dir.path().join("target")).unwrap();
        if staged {
            store = store.staged_only();
        }
        crate::conformance::backup_store(&store, "suite").await;
        crate::conformance::replace_overwrites(&store, &store, "suite/replace").await;
        crate::ObjectCreate::flush(&store).await.expect("syncfs");
        let staging: Vec<_> = std::fs::read_dir(dir.path().join("target/.imb-staging"))
            .unwrap()
            .collect();
        assert!(staging.is_empty(), "staged files left: {staging:?}");
    }
}

#[tokio::test]
async fn local_dir_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalDir::new(dir.path().join("target")).unwrap();
    crate::conformance::backup_store(&store, "suite").await;
    crate::conformance::replace_overwrites(&store, &store, "suite/replace").await;
    crate::conformance::delete_removes(&store, &store, "suite/delete").await;
    // Nothing staged is left behind, and staging never shows in listings.
    let staging: Vec<_> = std::fs::read_dir(dir.path().join("target/.imb-staging"))
        .unwrap()
        .collect();
    assert!(staging.is_empty(), "staged files left: {staging:?}");
}

#[tokio::test]
async fn local_dir_refuses_an_unwritable_root() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = LocalDir::new(file.join("sub")).unwrap_err();
    assert!(err.to_string().contains("plain-file"), "{err}");
}

#[tokio::test]
async fn local_listing_does_not_walk_directories_outside_the_prefix() {
    use crate::{ObjectCreate, ObjectReadExt, Payload, PutOptions};
    let dir = tempfile::tempdir().unwrap();
    let store = LocalDir::new(dir.path()).unwrap();
    store
        .put_opts(
            &Key::parse("manifest-1.db").unwrap(),
            Payload::from_static(b"m"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    store
        .put_opts(
            &Key::parse("library/a.jpg").unwrap(),
            Payload::from_static(b"a"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    // An unreadable directory outside the prefix would fail the walk if entered.
    std::fs::create_dir_all(dir.path().join("library/blocked")).unwrap();
    std::fs::write(dir.path().join("library/blocked/x"), b"x").unwrap();
    let listed = store.list_all("manifest-").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(store.list_all("library/").await.unwrap().len(), 2);
    assert_eq!(store.list_all("lib").await.unwrap().len(), 2);
}
