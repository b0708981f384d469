//! Build script: fetch the source of the installed fio (its headers are the engine ABI),
//! configure it once, and compile `src/engine.c` against it.
//!
//! The source tree lives in a per-machine cache: `$BASALT_FIO_SRC` if set, else
//! `$HOME/.cache/basalt/fio-src`. `fetch-fio-source.sh` needs fio and dpkg-dev installed
//! (scripts/setup.sh installs both).

use std::path::{Path, PathBuf};
use std::process::Command;

fn fail(msg: &str) -> ! {
    eprintln!("error: basalt-fio: {msg}");
    eprintln!("error: basalt-fio needs fio and dpkg-dev installed: run scripts/setup.sh");
    std::process::exit(1);
}

fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BASALT_FIO_SRC") {
        return PathBuf::from(dir);
    }
    match std::env::var_os("HOME") {
        Some(home) => Path::new(&home).join(".cache/basalt/fio-src"),
        None => fail("neither BASALT_FIO_SRC nor HOME is set; cannot place the fio source cache"),
    }
}

/// The version string fio's build puts in `fio_version_string` (FIO-VERSION-GEN: the
/// `version` file of a release tarball, else `DEF_VER`).
fn headers_version(tree: &Path) -> String {
    if let Ok(v) = std::fs::read_to_string(tree.join("version")) {
        return v.trim().trim_start_matches('v').to_string();
    }
    let gen = std::fs::read_to_string(tree.join("FIO-VERSION-GEN")).unwrap_or_else(|e| {
        fail(&format!(
            "cannot read {}/FIO-VERSION-GEN: {e}",
            tree.display()
        ))
    });
    gen.lines()
        .find_map(|l| l.strip_prefix("DEF_VER="))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| fail("no DEF_VER in FIO-VERSION-GEN"))
}

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let script = manifest.join("fetch-fio-source.sh");
    println!("cargo:rerun-if-changed=src/engine.c");
    println!("cargo:rerun-if-changed=fetch-fio-source.sh");
    println!("cargo:rerun-if-env-changed=BASALT_FIO_SRC");
    let cache = cache_dir();
    if let Err(e) = std::fs::create_dir_all(&cache) {
        fail(&format!("cannot create {}: {e}", cache.display()));
    }
    let out = Command::new("bash")
        .arg(&script)
        .arg(&cache)
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", script.display())));
    if !out.status.success() {
        fail(&format!(
            "{} failed ({}):\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let tree = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    if !tree.join("fio.h").is_file() {
        fail(&format!(
            "{} holds no fio source (no fio.h)",
            tree.display()
        ));
    }
    let config = tree.join("config-host.h");
    if !config.is_file() {
        // fio's own configure, with Debian's portable flags; ~10 s, once per machine.
        let st = Command::new("./configure")
            .args(["--disable-native", "--prefix=/usr"])
            .current_dir(&tree)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| fail(&format!("cannot run fio's configure: {e}")));
        if !st.success() || !config.is_file() {
            fail(&format!(
                "fio's configure failed in {} ({st})",
                tree.display()
            ));
        }
    }
    // tests/version_guard.rs plays fio: it exports its own fio_version_string for the
    // engine's dlsym to find.
    println!("cargo:rustc-link-arg-tests=-Wl,--export-dynamic-symbol=fio_version_string");
    let version = headers_version(&tree);
    cc::Build::new()
        .file("src/engine.c")
        .include(&tree)
        .define("_GNU_SOURCE", None)
        .define(
            "BASALT_FIO_HEADERS_VERSION",
            format!("\"{version}\"").as_str(),
        )
        .flag("-include")
        .flag(
            config
                .to_str()
                .unwrap_or_else(|| fail("non-UTF-8 fio source path")),
        )
        .flag("-std=gnu11")
        // fio's headers are not warning-clean under -Wextra; ours is checked with -Wall.
        .warnings(false)
        .flag("-Wall")
        .flag("-Wno-unused-function")
        .compile("basalt_fio_engine");
}
