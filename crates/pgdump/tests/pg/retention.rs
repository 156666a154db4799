//! Retention over real dumps in a real directory store.

use imb_pgdump::{DumpName, Error, dump, prune};
use imb_storage::{Key, LocalDir, ObjectCreate, Payload, PutOptions};

use crate::support::{days, immich_cluster, keys, options, t0};

/// Four dumps on four days, plus objects retention must never touch: library
/// objects (even one whose name looks like a dump) and files in `database/` that
/// are not our dumps. Keeping 2 deletes exactly the two oldest dumps.
#[tokio::test]
async fn retention_keeps_the_newest_dumps_and_touches_nothing_else() {
    let cluster = immich_cluster(10);
    let dir = tempfile::tempdir().unwrap();
    let store = LocalDir::new(dir.path()).unwrap();
    let conn = cluster.connection("immich");
    let opts = options(&cluster);
    let mut made = Vec::new();
    // Out of order, so the result cannot come from creation order.
    for d in [2, 0, 3, 1] {
        made.push((
            d,
            dump(&store, &conn, &opts, t0() + days(d))
                .await
                .unwrap()
                .key,
        ));
    }
    made.sort();
    let others = [
        "library/upload/a.jpg",
        "library/database/2024-01-10T03-00-00-immich-v2.3.1.sql.gz",
        "database/README.txt",
        "database/old/2024-01-10T03-00-00-immich-v2.3.1.sql.gz",
        "database/2024-01-10T03-00-00-immich-v2.3.1.sql",
    ];
    for k in others {
        store
            .put_opts(
                &Key::parse(k).unwrap(),
                Payload::from_static(b"x"),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }

    let report = prune(&store, &store, 2).await.unwrap();

    assert_eq!(report.kept, vec![made[3].1.clone(), made[2].1.clone()]);
    assert_eq!(report.deleted, vec![made[1].1.clone(), made[0].1.clone()]);
    assert!(report.refused.is_empty());
    let mut left = keys(&store, "").await;
    left.sort();
    let mut want: Vec<String> = others.iter().map(|s| (*s).to_owned()).collect();
    want.extend([made[2].1.clone(), made[3].1.clone()]);
    want.sort();
    assert_eq!(left, want);
    assert_eq!(
        DumpName::parse(&report.kept[0]).unwrap().ts,
        "2024-01-18T03-00-00"
    );

    // Again: nothing more to do.
    let again = prune(&store, &store, 2).await.unwrap();
    assert_eq!(again.kept.len(), 2);
    assert!(again.deleted.is_empty());

    let err = prune(&store, &store, 0).await.unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
    assert!(err.to_string().contains("db_backup_retention"), "{err}");
}
