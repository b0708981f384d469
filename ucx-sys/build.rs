//! Finds the system UCX through pkg-config and links it. The bindings themselves are
//! checked in (`src/bindings.rs`, see `regen-bindings.sh`), so no libclang is needed here.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    match pkg_config::Config::new()
        .atleast_version("1.13")
        .probe("ucx")
    {
        Ok(lib) => {
            // pkg-config already emitted -l for ucp/uct/ucs/ucm; say so for the record.
            for needed in ["ucp", "uct", "ucs"] {
                if !lib.libs.iter().any(|l| l == needed) {
                    println!("cargo:rustc-link-lib={needed}");
                }
            }
        }
        Err(e) => panic!(
            "UCX >= 1.13 not found through pkg-config (Debian: apt-get install libucx-dev \
             pkg-config): {e}"
        ),
    }
}
