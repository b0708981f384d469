//! The version guard, end to end: this test binary plays the fio that loads the engine. It
//! exports its own `fio_version_string` (build.rs links tests with
//! `--export-dynamic-symbol=fio_version_string`), `dlopen`s libbasalt_fio.so and calls
//! `get_ioengine` as fio's loader does.

mod common;

use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};

/// fio's `fio_version_string`, rewritable by the test.
#[repr(transparent)]
pub struct VersionString(UnsafeCell<[u8; 64]>);

// SAFETY: written only by the single test below, before each call that reads it.
unsafe impl Sync for VersionString {}

#[no_mangle]
pub static fio_version_string: VersionString = VersionString(UnsafeCell::new([0; 64]));

fn set_version(v: &str) {
    assert!(v.len() < 64);
    let p = fio_version_string.0.get();
    // SAFETY: the buffer is 64 bytes, v plus its NUL fits; only this thread touches it.
    let buf = unsafe { &mut *p };
    buf.fill(0);
    buf[..v.len()].copy_from_slice(v.as_bytes());
}

extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlerror() -> *const c_char;
}
const RTLD_LAZY: c_int = 1;

type GetIoengine = unsafe extern "C" fn(*mut *mut c_void);

/// The version the engine's headers came from: the one /usr/bin/fio reports (the build
/// fetched that fio's source).
fn installed_fio_version() -> String {
    let out = std::process::Command::new("/usr/bin/fio")
        .arg("--version")
        .output()
        .expect("run fio --version");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

#[test]
fn get_ioengine_refuses_a_fio_of_another_version() {
    let so = CString::new(common::engine_so().to_str().expect("utf-8 path")).unwrap();
    // SAFETY: a valid C string; the library's constructors are Rust/C runtime only.
    let handle = unsafe { dlopen(so.as_ptr(), RTLD_LAZY) };
    if handle.is_null() {
        // SAFETY: dlerror returns a valid C string after a failed dlopen.
        panic!("dlopen: {:?}", unsafe { CStr::from_ptr(dlerror()) });
    }
    // SAFETY: a live handle and a valid symbol name.
    let sym = unsafe { dlsym(handle, c"get_ioengine".as_ptr()) };
    assert!(!sym.is_null(), "get_ioengine is not exported");
    // SAFETY: get_ioengine has fio's get_ioengine_t signature (src/ffi.rs).
    let get: GetIoengine = unsafe { std::mem::transmute::<*mut c_void, GetIoengine>(sym) };
    let call = || {
        let mut ops: *mut c_void = std::ptr::null_mut();
        // SAFETY: a valid out-pointer.
        unsafe { get(&mut ops) };
        ops
    };

    // The fio the engine was built for: the ops come back.
    set_version(&installed_fio_version());
    let ops = call();
    assert!(!ops.is_null(), "refused its own fio version");
    // SAFETY: struct ioengine_ops (fio 3.33): name at 16, version at 24.
    let (name, version) = unsafe {
        let name = *(ops.cast::<u8>().add(16) as *const *const c_char);
        let version = *(ops.cast::<u8>().add(24) as *const c_int);
        (CStr::from_ptr(name).to_str().unwrap().to_string(), version)
    };
    assert_eq!((name.as_str(), version), ("basalt", 31));

    // Any other version (even a suffix): NULL, which fio reports as not loadable.
    for other in ["fio-3.35", "fio-3.33-dirty", "fio-2.0", ""] {
        set_version(other);
        assert!(call().is_null(), "accepted {other:?}");
    }
}
