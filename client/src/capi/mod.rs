//! The C ABI of the client (`basalt_client_*`), for the fio engine and other languages.
//!
//! Built into `libbasalt_client.so` / `libbasalt_client.a`; the header
//! `include/basalt_client.h` is generated from this module by cbindgen (see
//! `gen-header.sh`; a test fails when the checked-in header drifts). Usage, ownership and
//! threading rules: `docs/client-c-api.md`.
//!
//! Every entry point checks its pointers (NULL → `BASALT_CLIENT_EINVAL`), catches panics
//! (→ `BASALT_CLIENT_EINTERNAL`) and records a message readable with
//! `basalt_client_last_error` on failure.

pub mod aio;
pub mod client;
pub mod cq;
pub mod errors;
mod guard;
pub mod volume;

use std::ffi::{c_char, c_int};

/// Version of this ABI; bumped on any incompatible change to the header.
pub const BASALT_CLIENT_ABI_VERSION: u32 = 1;

/// The ABI version of the loaded library (compare with `BASALT_CLIENT_ABI_VERSION` from
/// the header the caller was built with).
#[no_mangle]
pub extern "C" fn basalt_client_abi_version() -> u32 {
    BASALT_CLIENT_ABI_VERSION
}

/// The library's version, e.g. `"0.1.0"` (a static string).
#[no_mangle]
pub extern "C" fn basalt_client_version() -> *const c_char {
    const V: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
    ) {
        Ok(v) => v,
        Err(_) => panic!("the package version has no interior NUL"),
    };
    V.as_ptr()
}

/// A fixed description of an error code (a static string; unknown codes get
/// `"unknown error code"`).
#[no_mangle]
pub extern "C" fn basalt_client_strerror(code: c_int) -> *const c_char {
    errors::describe(code).as_ptr()
}

/// The message of the last failure on the calling thread (empty if none): more precise
/// than `basalt_client_strerror`, e.g. which argument was NULL. Inside a completion
/// callback reporting an error, it describes that error. The pointer stays valid until
/// the next failing call on this thread; copy it to keep it.
#[no_mangle]
pub extern "C" fn basalt_client_last_error() -> *const c_char {
    errors::last_error_ptr()
}
