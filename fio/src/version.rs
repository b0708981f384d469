//! The version guard: the engine only runs inside the fio whose headers it was built with.

/// Why the engine refuses to load, or `None` when `runtime` (fio's `fio_version_string`,
/// `None` outside fio) equals `headers` (the version of the fio source compiled against).
pub fn mismatch(runtime: Option<&str>, headers: &str) -> Option<String> {
    match runtime {
        Some(r) if r == headers => None,
        Some(r) => Some(format!(
            "basalt-fio was built against {headers} headers but is loaded by {r}; \
             struct layouts differ between fio releases, so the engine refuses to load. \
             Rebuild basalt-fio on this machine (cargo build -p basalt-fio)."
        )),
        None => Some(format!(
            "basalt-fio (built against {headers}) is not loaded by fio: fio_version_string is missing"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_version_passes() {
        assert_eq!(mismatch(Some("fio-3.33"), "fio-3.33"), None);
        let m = mismatch(Some("fio-3.35"), "fio-3.33").unwrap();
        assert!(m.contains("fio-3.35") && m.contains("fio-3.33"), "{m}");
        assert!(mismatch(Some("fio-3.33-dirty"), "fio-3.33").is_some());
        assert!(mismatch(None, "fio-3.33").is_some());
    }
}
