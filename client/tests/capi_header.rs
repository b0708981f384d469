//! The checked-in C header (`include/basalt_client.h`) is exactly what cbindgen makes of
//! `src/capi/` today, so it cannot drift from the library. `gen-header.sh` rewrites it
//! (this test with `BASALT_WRITE_HEADER=1`).

use std::path::PathBuf;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generate() -> String {
    let dir = manifest_dir();
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/capi/mod.rs"))
        .generate()
        .expect("cbindgen parses src/capi");
    let mut out = Vec::new();
    bindings.write(&mut out);
    let text = String::from_utf8(out).expect("UTF-8 header");
    parenthesize_negative_defines(&text)
}

/// `#define X -5` → `#define X (-5)`, so `a-X` cannot become `a--5` (cbindgen has no
/// option for it).
fn parenthesize_negative_defines(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("#define"), Some(name), Some(value)) if value.starts_with('-') => {
                out.push_str(&format!("#define {name} ({value})"));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[test]
fn checked_in_header_matches_a_fresh_generation() {
    let fresh = generate();
    let path = manifest_dir().join("include/basalt_client.h");
    let write = std::env::var_os("BASALT_WRITE_HEADER").is_some();
    if write {
        std::fs::write(&path, &fresh).expect("write the header");
    }
    // the whole surface is there (guards against cbindgen silently skipping a module)
    for needle in [
        "basalt_client_init(",
        "basalt_client_shutdown(",
        "basalt_client_open(",
        "basalt_client_close(",
        "basalt_client_aio_read(",
        "basalt_client_aio_write(",
        "basalt_client_aio_write_zeroes(",
        "basalt_client_aio_discard(",
        "basalt_client_aio_flush(",
        "basalt_client_cq_create(",
        "basalt_client_poll(",
        "basalt_client_strerror(",
        "basalt_client_last_error(",
        "basalt_client_version(",
        "#define BASALT_CLIENT_EINVAL (-22)",
        "typedef struct basalt_client_event_t",
    ] {
        assert!(fresh.contains(needle), "generated header lacks {needle:?}");
    }
    if write {
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "{} is stale: run client/gen-header.sh and commit the result",
        path.display()
    );
}
