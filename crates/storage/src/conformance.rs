//! The conformance suite: the behaviour every backend must show. Backends' tests
//! call these functions against a real instance (a directory, an emulator, a test
//! server), each case under its own key prefix so cases can share one store.
//! Failures panic with a message naming the case, as test assertions do.

use std::io::Write;
use std::sync::Arc;

use crate::{
    BackupStore, CopyOptions, Error, GetOptions, Key, ListOptions, ObjectDelete, ObjectRead,
    ObjectReadExt, ObjectReplace, Payload, PutOptions,
};

fn key(prefix: &str, rest: &str) -> Key {
    Key::parse(format!("{prefix}/{rest}")).expect("suite keys are valid")
}

/// Bytes that are not all alike, so a misplaced chunk shows.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

/// What a backend (or the server behind it) can be trusted with, for cases that
/// would otherwise test the server rather than our code.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// The store refuses bytes that do not match a declared CRC32C, creating nothing.
    /// (fake-gcs-server does not; gcp-storage-emulator and real GCS do.)
    pub validates_checksums: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            validates_checksums: true,
        }
    }
}

/// Runs every case that a read-and-create store must pass.
pub async fn backup_store(store: &dyn BackupStore, prefix: &str) {
    backup_store_with(store, prefix, Capabilities::default()).await;
}

/// [`backup_store`], skipping what `caps` says the store cannot do.
pub async fn backup_store_with(store: &dyn BackupStore, prefix: &str, caps: Capabilities) {
    put_get_head(store, &format!("{prefix}/pgh")).await;
    create_is_exclusive(store, &format!("{prefix}/excl")).await;
    file_payload(store, &format!("{prefix}/file")).await;
    if caps.validates_checksums {
        checksum_is_enforced(store, &format!("{prefix}/crc")).await;
    }
    copy_is_create_only(store, &format!("{prefix}/copy")).await;
    list_pages(store, &format!("{prefix}/list")).await;
    missing_objects(store, &format!("{prefix}/missing")).await;
    unusual_keys(store, &format!("{prefix}/odd")).await;
    ranged_get(store, &format!("{prefix}/range")).await;
    empty_object(store, &format!("{prefix}/empty")).await;
    streamed_create(store, &format!("{prefix}/stream")).await;
}

/// A streamed create appears only when completed, refuses an existing key, and an
/// aborted one leaves nothing behind.
pub async fn streamed_create(store: &dyn BackupStore, prefix: &str) {
    let k = key(prefix, "database/dump.sql.gz");
    let data = pattern(700_000, 4);
    let mut up = store
        .create_upload(&k, PutOptions::default())
        .await
        .expect("streamed_create: start");
    for chunk in data.chunks(100_003) {
        up.write(bytes::Bytes::copy_from_slice(chunk))
            .await
            .expect("streamed_create: write");
    }
    assert!(
        matches!(store.head(&k).await, Err(Error::NotFound { .. })),
        "streamed_create: object visible before complete"
    );
    let res = up.complete().await.expect("streamed_create: complete");
    assert_eq!(res.size, data.len() as u64, "streamed_create: size");
    assert!(
        store.get_bytes(&k).await.expect("streamed_create: get") == data,
        "streamed_create: content"
    );

    let mut again = store
        .create_upload(&k, PutOptions::default())
        .await
        .expect("streamed_create: start again");
    again
        .write(bytes::Bytes::from_static(b"other"))
        .await
        .expect("streamed_create: write again");
    let res = again.complete().await;
    assert!(
        matches!(res, Err(Error::AlreadyExists { .. })),
        "streamed_create: second create of the key gave {res:?}"
    );
    assert!(
        store.get_bytes(&k).await.expect("streamed_create: get") == data,
        "streamed_create: overwritten"
    );

    let aborted = key(prefix, "database/aborted.sql.gz");
    let mut up = store
        .create_upload(&aborted, PutOptions::default())
        .await
        .expect("streamed_create: start aborted");
    up.write(bytes::Bytes::from_static(b"partial"))
        .await
        .expect("streamed_create: write");
    up.abort().await.expect("streamed_create: abort");
    assert!(
        matches!(store.head(&aborted).await, Err(Error::NotFound { .. })),
        "streamed_create: aborted upload left an object"
    );
}

/// A created object reads back byte for byte, with its size.
pub async fn put_get_head(store: &dyn BackupStore, prefix: &str) {
    let k = key(prefix, "a/b/photo.jpg");
    let data = pattern(300_000, 7);
    let put = store
        .put_opts(&k, Payload::from(data.clone()), PutOptions::default())
        .await
        .expect("put_get_head: put");
    assert_eq!(put.size, data.len() as u64, "put_get_head: reported size");
    if let Some(crc) = put.crc32c {
        assert_eq!(crc, crc32c::crc32c(&data), "put_get_head: reported crc32c");
    }
    let head = store.head(&k).await.expect("put_get_head: head");
    assert_eq!(head.size, data.len() as u64, "put_get_head: head size");
    assert_eq!(head.key, k, "put_get_head: head key");
    let got = store.get_bytes(&k).await.expect("put_get_head: get");
    assert!(got == data, "put_get_head: content differs");
}

/// A second create of the same key fails with `AlreadyExists` and leaves the
/// first content in place: the heart of "never overwrite".
pub async fn create_is_exclusive(store: &dyn BackupStore, prefix: &str) {
    let k = key(prefix, "once.jpg");
    store
        .put_opts(&k, Payload::from(b"first".to_vec()), PutOptions::default())
        .await
        .expect("create_is_exclusive: first put");
    let again = store
        .put_opts(
            &k,
            Payload::from(b"second!".to_vec()),
            PutOptions::default(),
        )
        .await;
    assert!(
        matches!(again, Err(Error::AlreadyExists { .. })),
        "create_is_exclusive: second put gave {again:?}"
    );
    let got = store.get_bytes(&k).await.expect("create_is_exclusive: get");
    assert_eq!(
        &got[..],
        b"first",
        "create_is_exclusive: content was overwritten"
    );
}

/// A file payload is sent from its open descriptor, from any size.
pub async fn file_payload(store: &dyn BackupStore, prefix: &str) {
    let data = pattern(1_100_000, 3);
    // Unique per call: suites for several backends run in parallel in one
    // process with the same prefix.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "imb-conformance-{}-{n}-{}",
        std::process::id(),
        prefix.replace('/', "_")
    ));
    let mut f = std::fs::File::create(&path).expect("file_payload: temp file");
    f.write_all(&data).expect("file_payload: write temp file");
    drop(f);
    let file = std::fs::File::open(&path).expect("file_payload: open temp file");
    let _ = std::fs::remove_file(&path);
    let k = key(prefix, "video.mp4");
    let payload = Payload::File {
        file: Arc::new(file),
        len: data.len() as u64,
    };
    store
        .put_opts(
            &k,
            payload,
            PutOptions::default().with_crc32c(crc32c::crc32c(&data)),
        )
        .await
        .expect("file_payload: put");
    let got = store.get_bytes(&k).await.expect("file_payload: get");
    assert!(got == data, "file_payload: content differs");
}

/// A declared CRC32C that does not match the bytes makes the store refuse the
/// object, and nothing appears at the key.
pub async fn checksum_is_enforced(store: &dyn BackupStore, prefix: &str) {
    let k = key(prefix, "corrupt.jpg");
    let data = pattern(10_000, 1);
    let wrong = crc32c::crc32c(&data) ^ 1;
    let res = store
        .put_opts(
            &k,
            Payload::from(data),
            PutOptions::default().with_crc32c(wrong),
        )
        .await;
    assert!(
        matches!(res, Err(Error::ChecksumMismatch { .. })),
        "checksum_is_enforced: put gave {res:?}"
    );
    let head = store.head(&k).await;
    assert!(
        matches!(head, Err(Error::NotFound { .. })),
        "checksum_is_enforced: an object appeared: {head:?}"
    );
}

/// A server-side copy creates a new object with the same bytes and refuses to
/// replace an existing one.
pub async fn copy_is_create_only(store: &dyn BackupStore, prefix: &str) {
    let src = key(prefix, "src.jpg");
    let dst = key(prefix, "moved/dst.jpg");
    let data = pattern(5_000, 9);
    store
        .put_opts(&src, Payload::from(data.clone()), PutOptions::default())
        .await
        .expect("copy_is_create_only: put");
    store
        .copy_opts(&src, &dst, CopyOptions::default())
        .await
        .expect("copy_is_create_only: copy");
    assert!(
        store
            .get_bytes(&dst)
            .await
            .expect("copy_is_create_only: get")
            == data,
        "copy_is_create_only: copy differs"
    );
    let other = key(prefix, "other.jpg");
    store
        .put_opts(
            &other,
            Payload::from(b"other".to_vec()),
            PutOptions::default(),
        )
        .await
        .expect("copy_is_create_only: put other");
    let res = store.copy_opts(&other, &dst, CopyOptions::default()).await;
    assert!(
        matches!(res, Err(Error::AlreadyExists { .. })),
        "copy_is_create_only: copy over existing gave {res:?}"
    );
    assert!(
        store
            .get_bytes(&dst)
            .await
            .expect("copy_is_create_only: get")
            == data,
        "copy_is_create_only: destination was overwritten"
    );
    let res = store
        .copy_opts(
            &key(prefix, "nope.jpg"),
            &key(prefix, "x.jpg"),
            CopyOptions::default(),
        )
        .await;
    assert!(
        matches!(res, Err(Error::NotFound { .. })),
        "copy_is_create_only: copy of a missing object gave {res:?}"
    );
}

/// Listing returns keys in order (bytewise: `b.jpg` before `b/…`), filtered by a
/// plain string prefix, across pages that end inside and outside directories.
pub async fn list_pages(store: &dyn BackupStore, prefix: &str) {
    let names = [
        "a.jpg",
        "b.jpg",
        "b/c.jpg",
        "b/d.jpg",
        "b/x/y.jpg",
        "ba.jpg",
        "e.jpg",
    ];
    for n in names {
        store
            .put_opts(
                &key(prefix, n),
                Payload::from(n.as_bytes().to_vec()),
                PutOptions::default(),
            )
            .await
            .expect("list_pages: put");
    }
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = store
            .list(
                &format!("{prefix}/"),
                ListOptions::default()
                    .with_max_results(2)
                    .with_page_token(token),
            )
            .await
            .expect("list_pages: list");
        assert!(
            page.objects.len() <= 2,
            "list_pages: page larger than asked"
        );
        seen.extend(page.objects.iter().map(|m| m.key.to_string()));
        pages += 1;
        assert!(pages < 20, "list_pages: pagination does not end");
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let want: Vec<String> = names.iter().map(|n| format!("{prefix}/{n}")).collect();
    assert_eq!(seen, want, "list_pages: keys or order");
    let b = store
        .list_all(&format!("{prefix}/b"))
        .await
        .expect("list_pages: list b");
    let got: Vec<String> = b.iter().map(|m| m.key.to_string()).collect();
    assert_eq!(
        got,
        vec![
            format!("{prefix}/b.jpg"),
            format!("{prefix}/b/c.jpg"),
            format!("{prefix}/b/d.jpg"),
            format!("{prefix}/b/x/y.jpg"),
            format!("{prefix}/ba.jpg")
        ],
        "list_pages: string prefix"
    );
    let none = store
        .list_all(&format!("{prefix}/zzz"))
        .await
        .expect("list_pages: empty");
    assert!(none.is_empty(), "list_pages: empty prefix listed {none:?}");
}

/// Missing objects are `NotFound` for head and get.
pub async fn missing_objects(store: &dyn BackupStore, prefix: &str) {
    let k = key(prefix, "nothing-here.jpg");
    assert!(
        matches!(store.head(&k).await, Err(Error::NotFound { .. })),
        "missing_objects: head"
    );
    assert!(
        matches!(
            store.get_opts(&k, GetOptions::default()).await,
            Err(Error::NotFound { .. })
        ),
        "missing_objects: get"
    );
}

/// Keys with spaces, Unicode, percent escapes and leading dots round-trip.
pub async fn unusual_keys(store: &dyn BackupStore, prefix: &str) {
    for (i, n) in [
        "with space.jpg",
        "ünïcödé/日本.jpg",
        "100%25 done/%FF.jpg",
        ".immich",
        "a+b=c&d.jpg",
    ]
    .iter()
    .enumerate()
    {
        let k = key(prefix, n);
        let data = pattern(100 + i, i as u8);
        store
            .put_opts(&k, Payload::from(data.clone()), PutOptions::default())
            .await
            .unwrap_or_else(|e| panic!("unusual_keys: put {n}: {e}"));
        let got = store
            .get_bytes(&k)
            .await
            .unwrap_or_else(|e| panic!("unusual_keys: get {n}: {e}"));
        assert!(got == data, "unusual_keys: {n} differs");
        let listed = store
            .list_all(k.as_str())
            .await
            .expect("unusual_keys: list");
        assert!(
            listed.iter().any(|m| m.key == k),
            "unusual_keys: {n} not listed"
        );
    }
}

/// A ranged get returns exactly the range.
pub async fn ranged_get(store: &dyn BackupStore, prefix: &str) {
    let k = key(prefix, "r.bin");
    let data = pattern(1000, 5);
    store
        .put_opts(&k, Payload::from(data.clone()), PutOptions::default())
        .await
        .expect("ranged_get: put");
    let mut res = store
        .get_opts(&k, GetOptions::default().with_range(100..356))
        .await
        .expect("ranged_get: get");
    let mut got = Vec::new();
    while let Some(c) = res.body.next_chunk().await.expect("ranged_get: chunk") {
        got.extend_from_slice(&c);
    }
    assert_eq!(got, &data[100..356], "ranged_get: bytes");
}

/// A zero-byte object is an object.
pub async fn empty_object(store: &dyn BackupStore, prefix: &str) {
    let k = key(prefix, ".immich");
    store
        .put_opts(
            &k,
            Payload::from(Vec::new()),
            PutOptions::default().with_crc32c(0),
        )
        .await
        .expect("empty_object: put");
    assert_eq!(store.head(&k).await.expect("empty_object: head").size, 0);
    assert!(
        store
            .get_bytes(&k)
            .await
            .expect("empty_object: get")
            .is_empty()
    );
}

/// Replace overwrites; used only for convenience copies such as `manifest.db`.
pub async fn replace_overwrites(read: &dyn ObjectRead, replace: &dyn ObjectReplace, prefix: &str) {
    let k = key(prefix, "manifest.db");
    for body in [&b"v1"[..], &b"version two"[..]] {
        replace
            .replace_opts(&k, Payload::from(body.to_vec()), PutOptions::default())
            .await
            .expect("replace_overwrites: replace");
        assert_eq!(
            &read.get_bytes(&k).await.expect("replace_overwrites: get")[..],
            body
        );
    }
}

/// Delete removes an object; deleting it again is `NotFound`.
pub async fn delete_removes(store: &dyn BackupStore, delete: &dyn ObjectDelete, prefix: &str) {
    let k = key(prefix, "dump.sql.gz");
    store
        .put_opts(&k, Payload::from(b"dump".to_vec()), PutOptions::default())
        .await
        .expect("delete_removes: put");
    delete.delete(&k).await.expect("delete_removes: delete");
    assert!(
        matches!(store.head(&k).await, Err(Error::NotFound { .. })),
        "delete_removes: still there"
    );
    assert!(
        matches!(delete.delete(&k).await, Err(Error::NotFound { .. })),
        "delete_removes: second delete"
    );
}
