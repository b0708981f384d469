//! The boundary every C entry point goes through: panics become `BASALT_CLIENT_EINTERNAL`,
//! failures set the thread-local last error; plus argument helpers (NULL checks, C
//! strings, "not on a library thread").

use super::errors::{set_last_error, Failure, BASALT_CLIENT_EDEADLK, BASALT_CLIENT_EINTERNAL};
use std::any::Any;
use std::ffi::{c_char, c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

fn panic_message(p: &(dyn Any + Send)) -> String {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error (panic in the client library): {what}")
}

/// Run `f` as a C entry point returning a status code: 0 on success, the failure's
/// negative code otherwise. Never unwinds.
pub(crate) fn status(f: impl FnOnce() -> Result<(), Failure>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => 0,
        Ok(Err(fail)) => {
            set_last_error(&fail.message);
            fail.code
        }
        Err(p) => {
            set_last_error(&panic_message(&*p));
            BASALT_CLIENT_EINTERNAL
        }
    }
}

/// Turn a caught panic (from a spawned I/O) into a failure.
pub(crate) fn panic_failure(p: &(dyn Any + Send)) -> Failure {
    Failure::new(BASALT_CLIENT_EINTERNAL, panic_message(p))
}

/// `p` as a reference, or `EINVAL` naming the argument when it is NULL.
///
/// # Safety
/// A non-NULL `p` must point to a live, properly aligned `T` for `'a`.
pub(crate) unsafe fn arg<'a, T>(p: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller guarantees a non-NULL `p` is valid for 'a; NULL gives None.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::invalid(format!("{name} is NULL")))
}

/// Check an out-pointer is not NULL.
pub(crate) fn out<T>(p: *mut T, name: &str) -> Result<(), Failure> {
    if p.is_null() {
        return Err(Failure::invalid(format!("{name} is NULL")));
    }
    Ok(())
}

/// A NUL-terminated UTF-8 C string argument.
///
/// # Safety
/// A non-NULL `p` must point to a NUL-terminated string that stays valid for `'a`.
pub(crate) unsafe fn c_str<'a>(p: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::invalid(format!("{name} is NULL")));
    }
    // SAFETY: non-NULL, and the caller guarantees NUL termination and lifetime.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Failure::invalid(format!("{name} is not UTF-8")))
}

/// Refuse blocking calls on a library thread (a completion callback): blocking there
/// would wait on the very threads that must make progress.
pub(crate) fn not_on_library_thread(call: &str) -> Result<(), Failure> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Failure::new(
            BASALT_CLIENT_EDEADLK,
            format!("{call} blocks and cannot be called from a completion callback"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capi::errors::{last_error_ptr, BASALT_CLIENT_EINVAL};

    fn last() -> String {
        // SAFETY: this thread's live last-error string.
        unsafe { CStr::from_ptr(last_error_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn panics_become_internal_errors_with_a_message() {
        let code = status(|| panic!("boom {}", 7));
        assert_eq!(code, BASALT_CLIENT_EINTERNAL);
        assert!(last().contains("boom 7"), "{}", last());
    }

    #[test]
    fn failures_set_the_last_error_and_success_leaves_it() {
        assert_eq!(
            status(|| Err(Failure::invalid("x is NULL"))),
            BASALT_CLIENT_EINVAL
        );
        assert_eq!(status(|| Ok(())), 0);
        assert_eq!(last(), "x is NULL");
    }

    #[test]
    fn null_and_non_utf8_arguments_are_refused() {
        // SAFETY: NULL is allowed and refused.
        let e = unsafe { arg::<u32>(std::ptr::null(), "thing") }.unwrap_err();
        assert_eq!(e.code, BASALT_CLIENT_EINVAL);
        assert!(e.message.contains("thing"));
        // SAFETY: NULL is allowed and refused.
        assert!(unsafe { c_str(std::ptr::null(), "name") }.is_err());
        let bad = [0xffu8 as c_char, 0];
        // SAFETY: a NUL-terminated local array.
        assert!(unsafe { c_str(bad.as_ptr(), "name") }.is_err());
        let good = c"vol";
        // SAFETY: a static C string.
        assert_eq!(unsafe { c_str(good.as_ptr(), "name") }.unwrap(), "vol");
        assert!(out(std::ptr::null_mut::<u8>(), "out").is_err());
    }

    #[test]
    fn blocking_calls_are_refused_inside_the_runtime() {
        assert!(not_on_library_thread("x").is_ok());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let e = rt
            .block_on(async { not_on_library_thread("x") })
            .unwrap_err();
        assert_eq!(e.code, BASALT_CLIENT_EDEADLK);
    }
}
