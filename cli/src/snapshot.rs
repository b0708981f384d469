//! Golden-file assertions for unit tests (files under `cli/tests/snapshots/`; run with
//! `BASALT_UPDATE_SNAPSHOTS=1` to rewrite them after an intended change).

use std::path::PathBuf;

/// Compare `actual` with the snapshot `name`.
pub fn assert_snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("BASALT_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (BASALT_UPDATE_SNAPSHOTS=1 creates it)",
            path.display()
        )
    });
    assert_eq!(actual, want, "snapshot {name} differs");
}
