//! Unit and property tests of the manifest.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::{FileRecord, HistoryRecord, Manifest, ManifestReader};

fn rec(path: &str, seed: u8) -> FileRecord {
    FileRecord::new(
        path,
        [seed; 32],
        [seed.wrapping_add(1); 20],
        u32::from(seed) * 7,
        u64::from(seed) * 1000,
        1_700_000_000_000_000_000 + i64::from(seed),
    )
}

#[test]
fn rows_round_trip_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.db");
    let mut m = Manifest::open(&p).unwrap();
    let mut r = rec("library/admin/2024/a.jpg", 3);
    r.generation = Some(12345);
    r.object_key = Some("versions/library/admin/2024/a.jpg/2024-01-15T03-00-00".into());
    m.upsert(&r).unwrap();
    m.set_metadata("immich_version", "v2.3.1").unwrap();
    m.commit().unwrap();
    drop(m);
    let m = Manifest::open(&p).unwrap();
    assert_eq!(m.get("library/admin/2024/a.jpg").unwrap(), Some(r.clone()));
    assert_eq!(
        m.metadata("immich_version").unwrap().as_deref(),
        Some("v2.3.1")
    );
    assert_eq!(m.metadata("version").unwrap().as_deref(), Some("1"));
    assert_eq!(m.find_content(&[3; 32]).unwrap(), Some(r));
    assert_eq!(m.find_content(&[4; 32]).unwrap(), None);
}

#[test]
fn journal_holds_only_changed_rows_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Manifest::open(&dir.path().join("m.db")).unwrap();
    for i in 0..50u8 {
        m.upsert(&rec(&format!("f{i}"), i)).unwrap();
    }
    m.commit().unwrap();
    m.begin_journal(&dir.path().join("j1.db")).unwrap();
    m.upsert(&rec("f1", 99)).unwrap();
    m.upsert(&rec("new", 100)).unwrap();
    m.add_history(&HistoryRecord {
        file: rec("f1", 1),
        replaced_at: "2024-01-01T00:00:00Z".into(),
        reason: "changed".into(),
    })
    .unwrap();
    let (j, rows) = m.end_journal().unwrap().unwrap();
    assert_eq!(rows, 3);

    // A manifest that only has the base rows catches up by applying the journal.
    let mut other = Manifest::open(&dir.path().join("other.db")).unwrap();
    for i in 0..50u8 {
        other.upsert(&rec(&format!("f{i}"), i)).unwrap();
    }
    assert_eq!(other.apply(&j).unwrap(), 2);
    assert_eq!(other.get("f1").unwrap(), Some(rec("f1", 99)));
    assert_eq!(other.get("new").unwrap(), Some(rec("new", 100)));
    assert_eq!(other.history("f1").unwrap().len(), 1);
    let journal = ManifestReader::open(&j).unwrap();
    let mut n = 0;
    journal
        .for_each_file(|_| {
            n += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(n, 2, "the journal holds only the changed rows");
}

#[test]
fn archive_unseen_marks_only_unseen_live_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Manifest::open(&dir.path().join("m.db")).unwrap();
    for p in ["a", "b", "c"] {
        m.upsert(&rec(p, 1)).unwrap();
    }
    m.begin_journal(&dir.path().join("j.db")).unwrap();
    m.mark_seen("a").unwrap();
    m.mark_seen("c").unwrap();
    assert_eq!(m.archive_unseen().unwrap(), 1);
    assert!(m.get("b").unwrap().unwrap().archived);
    assert!(!m.get("a").unwrap().unwrap().archived);
    let counts = m.counts().unwrap();
    assert_eq!((counts.live, counts.archived), (2, 1));
    let (j, rows) = m.end_journal().unwrap().unwrap();
    assert_eq!(rows, 1);
    assert!(
        ManifestReader::open(&j)
            .unwrap()
            .get("b")
            .unwrap()
            .unwrap()
            .archived
    );
}

#[test]
fn snapshot_is_a_standalone_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Manifest::open(&dir.path().join("m.db")).unwrap();
    m.upsert(&rec("x", 5)).unwrap();
    let snap = dir.path().join("snap.db");
    m.snapshot(&snap).unwrap();
    drop(m);
    std::fs::remove_file(dir.path().join("m.db")).unwrap();
    let r = ManifestReader::open(&snap).unwrap();
    assert_eq!(r.get("x").unwrap(), Some(rec("x", 5)));
    assert!(!dir.path().join("snap.db-wal").exists());
    drop(r);
    let indexes = |p: &std::path::Path| -> i64 {
        rusqlite::Connection::open(p)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'files_by_content'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(
        indexes(&snap),
        0,
        "the uploaded snapshot leaves the dedup index out"
    );
    let m = Manifest::open(&snap).unwrap();
    assert_eq!(
        m.find_content(&[5; 32]).unwrap(),
        Some(rec("x", 5)),
        "and opening rebuilds it"
    );
    drop(m);
    assert_eq!(indexes(&snap), 1);
}

#[test]
fn garbage_and_newer_schemas_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("truncated.db");
    std::fs::write(&bad, b"SQLite format 3\0 but then nothing").unwrap();
    let err = ManifestReader::open(&bad).unwrap_err();
    assert!(err.to_string().contains("truncated.db"), "{err}");
    let p = dir.path().join("new.db");
    let mut m = Manifest::open(&p).unwrap();
    m.set_metadata("version", "99").unwrap();
    m.commit().unwrap();
    drop(m);
    let err = Manifest::open(&p).unwrap_err();
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

/// Manifests and journals come back from the target, where anyone with write
/// access may have shaped them: a trigger, a view in place of `files`, an extra
/// table or column, or a truncated file is refused by every way of opening it,
/// and nothing of it runs.
#[test]
fn tampered_manifests_are_refused_before_any_query() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.db");
    let mut m = Manifest::open(&good).unwrap();
    m.upsert(&rec("library/a.jpg", 1)).unwrap();
    m.snapshot(&dir.path().join("snap.db")).unwrap();
    drop(m);
    let tamperings: [(&str, &str, &str); 4] = [
        (
            "trigger",
            "CREATE TRIGGER evil AFTER INSERT ON files BEGIN \
             UPDATE manifest_metadata SET value = 'pwned'; END;",
            "trigger",
        ),
        (
            "view",
            "ALTER TABLE files RENAME TO real_files; CREATE VIEW files AS SELECT * FROM real_files;",
            "table",
        ),
        ("extra table", "CREATE TABLE notes (a);", "notes"),
        (
            "extra column",
            "ALTER TABLE files ADD COLUMN extra TEXT;",
            "columns",
        ),
    ];
    for (what, sql, says) in tamperings {
        let p = dir.path().join(format!("{}.db", what.replace(' ', "_")));
        std::fs::copy(dir.path().join("snap.db"), &p).unwrap();
        rusqlite::Connection::open(&p)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        let errs = [
            ManifestReader::open(&p).map(drop).unwrap_err(),
            Manifest::open(&p).map(drop).unwrap_err(),
            Manifest::open(&dir.path().join(format!("{what}-base.db")))
                .unwrap()
                .apply(&p)
                .map(drop)
                .unwrap_err(),
        ];
        for e in errs {
            assert!(
                matches!(e, crate::Error::Untrusted { .. }) && e.to_string().contains(says),
                "{what}: {e}"
            );
        }
    }
    // A truncated copy is an SQLite error naming the file, as any damaged one.
    let bytes = std::fs::read(dir.path().join("snap.db")).unwrap();
    let cut = dir.path().join("cut.db");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(
        ManifestReader::open(&cut)
            .unwrap_err()
            .to_string()
            .contains("cut.db")
    );
}

fn arb_record() -> impl Strategy<Value = FileRecord> {
    (
        "[a-z]{1,3}(/[a-z0-9 %.]{1,6}){0,2}",
        any::<[u8; 32]>(),
        any::<[u8; 20]>(),
        any::<u32>(),
        0..u64::from(u32::MAX),
        any::<i64>(),
        any::<bool>(),
        proptest::option::of(any::<i64>()),
        proptest::option::of("[a-z/]{1,20}"),
    )
        .prop_map(
            |(
                file_path,
                checksum,
                sha1,
                crc32c,
                size,
                mtime_ns,
                archived,
                generation,
                object_key,
            )| FileRecord {
                file_path,
                checksum,
                sha1,
                crc32c,
                size,
                mtime_ns,
                archived,
                generation,
                object_key,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    /// Whatever sequence of upserts, with saves at arbitrary points, the manifest
    /// holds exactly the last record per path, and base + journals replayed in
    /// order reconstructs it: no row is ever lost.
    #[test]
    fn never_loses_a_row(ops in prop::collection::vec((arb_record(), any::<bool>()), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Manifest::open(&dir.path().join("m.db")).unwrap();
        let mut model = BTreeMap::new();
        let mut journals = Vec::new();
        m.begin_journal(&dir.path().join("j0.db")).unwrap();
        for (i, (r, save)) in ops.into_iter().enumerate() {
            m.upsert(&r).unwrap();
            model.insert(r.file_path.clone(), r);
            if save {
                let (j, _) = m.end_journal().unwrap().unwrap();
                journals.push(j);
                m.begin_journal(&dir.path().join(format!("j{}.db", i + 1))).unwrap();
            }
        }
        let (j, _) = m.end_journal().unwrap().unwrap();
        journals.push(j);
        let mut got = BTreeMap::new();
        m.for_each_file(|r| { got.insert(r.file_path.clone(), r); Ok(()) }).unwrap();
        prop_assert_eq!(&got, &model);
        let mut replay = Manifest::open(&dir.path().join("replay.db")).unwrap();
        for j in &journals {
            replay.apply(j).unwrap();
        }
        let mut replayed = BTreeMap::new();
        replay.for_each_file(|r| { replayed.insert(r.file_path.clone(), r); Ok(()) }).unwrap();
        prop_assert_eq!(&replayed, &model);
        for (p, r) in &model {
            let got = m.get(p).unwrap();
            prop_assert_eq!(got.as_ref(), Some(r));
        }
    }
}

#[test]
fn packed_journals_round_trip_and_a_gzip_bomb_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (db, gz, back) = (
        dir.path().join("j.db"),
        dir.path().join("j.db.gz"),
        dir.path().join("back.db"),
    );
    let mut m = Manifest::open(&db).unwrap();
    for i in 0..200u8 {
        m.upsert(&FileRecord::new(
            format!("library/{i}.jpg"),
            [i; 32],
            [i; 20],
            1,
            2,
            3,
        ))
        .unwrap();
    }
    m.commit().unwrap();
    drop(m);
    let packed = crate::pack(&db, &gz).unwrap();
    assert!(
        packed < std::fs::metadata(&db).unwrap().len() / 2,
        "{packed}"
    );
    crate::unpack(&gz, &back).unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&db).unwrap());
    // An unpacked (older) journal is taken as it is.
    crate::unpack(&db, &back).unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&db).unwrap());
    // 64 MiB of zeros compress to 64 kB: far past what a journal of that size holds.
    let zeros = dir.path().join("zeros");
    std::fs::write(&zeros, vec![0u8; 64 << 20]).unwrap();
    crate::pack(&zeros, &gz).unwrap();
    let err = crate::unpack(&gz, &back).unwrap_err();
    assert!(matches!(err, crate::Error::Untrusted { .. }), "{err}");
    assert!(!back.exists(), "nothing half-written is left");
}
