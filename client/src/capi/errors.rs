//! Error codes of the C ABI (negative Linux errno values), their descriptions, the
//! mapping from [`ClientError`], and the thread-local last-error message.

use crate::error::ClientError;
use basalt_proto::status::MdsError;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};

/// Success.
pub const BASALT_CLIENT_OK: c_int = 0;
/// No such volume (or it was deleted while open).
pub const BASALT_CLIENT_ENOENT: c_int = -2;
/// I/O error: the cluster rejected a request for a reason not listed here.
pub const BASALT_CLIENT_EIO: c_int = -5;
/// Resource shortage in this process (threads for the runtime could not be started).
pub const BASALT_CLIENT_EAGAIN: c_int = -11;
/// The MDS refused: permission denied (owner mismatch).
pub const BASALT_CLIENT_EACCES: c_int = -13;
/// Busy: the volume is open exclusively elsewhere, or a handle still has users
/// (open volumes on a client, pending I/O on a queue).
pub const BASALT_CLIENT_EBUSY: c_int = -16;
/// The volume exists already.
pub const BASALT_CLIENT_EEXIST: c_int = -17;
/// Invalid argument: a NULL pointer, a bad value, or I/O not aligned to the sector size.
pub const BASALT_CLIENT_EINVAL: c_int = -22;
/// No space left on the chunkservers (or in the pool).
pub const BASALT_CLIENT_ENOSPC: c_int = -28;
/// The I/O range goes past the end of the volume.
pub const BASALT_CLIENT_ERANGE: c_int = -34;
/// A blocking call was made from a completion callback (a library thread).
pub const BASALT_CLIENT_EDEADLK: c_int = -35;
/// The volume was closed while the I/O was pending.
pub const BASALT_CLIENT_ESHUTDOWN: c_int = -108;
/// The I/O gave up after the configured retry bound.
pub const BASALT_CLIENT_ETIMEDOUT: c_int = -110;
/// No MDS answered within the retry window.
pub const BASALT_CLIENT_EHOSTUNREACH: c_int = -113;
/// The I/O was cancelled by `basalt_client_close` before it completed.
pub const BASALT_CLIENT_ECANCELED: c_int = -125;
/// Internal error: the library caught a panic (a bug); the call did not complete.
pub const BASALT_CLIENT_EINTERNAL: c_int = -131;

/// What a failed call reports: its code and a message for the thread-local last error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) code: c_int,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: c_int, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Failure::new(BASALT_CLIENT_EINVAL, message)
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::new(code_of(&e), e.to_string())
    }
}

/// The C code for a client error.
pub(crate) fn code_of(e: &ClientError) -> c_int {
    match e {
        ClientError::Misaligned { .. } | ClientError::Config { .. } => BASALT_CLIENT_EINVAL,
        ClientError::OutOfRange { .. } => BASALT_CLIENT_ERANGE,
        ClientError::VolumeGone { .. } => BASALT_CLIENT_ENOENT,
        ClientError::Mds(m) => match m {
            MdsError::VolumeNotFound => BASALT_CLIENT_ENOENT,
            MdsError::VolumeExists => BASALT_CLIENT_EEXIST,
            MdsError::VolumeBusy { .. } => BASALT_CLIENT_EBUSY,
            MdsError::PermissionDenied
            | MdsError::VolumeAccessDenied { .. }
            | MdsError::OwnerAccessDenied { .. } => BASALT_CLIENT_EACCES,
            MdsError::InvalidName | MdsError::InvalidSize { .. } => BASALT_CLIENT_EINVAL,
            MdsError::OutOfRange { .. } => BASALT_CLIENT_ERANGE,
            MdsError::NoSpace => BASALT_CLIENT_ENOSPC,
            _ => BASALT_CLIENT_EIO,
        },
        ClientError::InvalidRequest { .. } => BASALT_CLIENT_EIO,
        ClientError::NoSpace => BASALT_CLIENT_ENOSPC,
        ClientError::GaveUp { .. } => BASALT_CLIENT_ETIMEDOUT,
        ClientError::MdsUnavailable => BASALT_CLIENT_EHOSTUNREACH,
        ClientError::Closed => BASALT_CLIENT_ESHUTDOWN,
    }
}

/// The fixed description of a code.
pub(crate) fn describe(code: c_int) -> &'static CStr {
    match code {
        BASALT_CLIENT_OK => c"success",
        BASALT_CLIENT_ENOENT => c"no such volume",
        BASALT_CLIENT_EIO => c"I/O error reported by the cluster",
        BASALT_CLIENT_EAGAIN => c"cannot start the client runtime (resources)",
        BASALT_CLIENT_EACCES => c"permission denied by the metadata server",
        BASALT_CLIENT_EBUSY => c"busy: volume open elsewhere, or handle still in use",
        BASALT_CLIENT_EEXIST => c"volume exists",
        BASALT_CLIENT_EINVAL => c"invalid argument (NULL pointer, bad value or misaligned I/O)",
        BASALT_CLIENT_ENOSPC => c"no space left in the cluster",
        BASALT_CLIENT_ERANGE => c"I/O beyond the end of the volume",
        BASALT_CLIENT_EDEADLK => c"blocking call from a completion callback",
        BASALT_CLIENT_ESHUTDOWN => c"volume closed",
        BASALT_CLIENT_ETIMEDOUT => c"I/O gave up after the retry bound",
        BASALT_CLIENT_EHOSTUNREACH => c"no metadata server answered",
        BASALT_CLIENT_ECANCELED => c"I/O cancelled by close",
        BASALT_CLIENT_EINTERNAL => c"internal error in the client library (a bug)",
        _ => c"unknown error code",
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Record `message` as this thread's last error (interior NULs become spaces).
pub(crate) fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

/// This thread's last error; the pointer stays valid until the next failing call on
/// this thread.
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_linux_errno_values() {
        for (ours, errno) in [
            (BASALT_CLIENT_ENOENT, libc::ENOENT),
            (BASALT_CLIENT_EIO, libc::EIO),
            (BASALT_CLIENT_EAGAIN, libc::EAGAIN),
            (BASALT_CLIENT_EACCES, libc::EACCES),
            (BASALT_CLIENT_EBUSY, libc::EBUSY),
            (BASALT_CLIENT_EEXIST, libc::EEXIST),
            (BASALT_CLIENT_EINVAL, libc::EINVAL),
            (BASALT_CLIENT_ENOSPC, libc::ENOSPC),
            (BASALT_CLIENT_ERANGE, libc::ERANGE),
            (BASALT_CLIENT_EDEADLK, libc::EDEADLK),
            (BASALT_CLIENT_ESHUTDOWN, libc::ESHUTDOWN),
            (BASALT_CLIENT_ETIMEDOUT, libc::ETIMEDOUT),
            (BASALT_CLIENT_EHOSTUNREACH, libc::EHOSTUNREACH),
            (BASALT_CLIENT_ECANCELED, libc::ECANCELED),
            (BASALT_CLIENT_EINTERNAL, libc::ENOTRECOVERABLE),
        ] {
            assert_eq!(ours, -errno);
            assert_ne!(describe(ours), describe(-1000), "{ours} has a description");
        }
    }

    #[test]
    fn client_errors_map_to_distinct_codes() {
        let cases = [
            (
                ClientError::Misaligned {
                    offset: 1,
                    len: 512,
                    sector: 512,
                },
                BASALT_CLIENT_EINVAL,
            ),
            (
                ClientError::OutOfRange {
                    offset: 0,
                    len: 1,
                    size: 0,
                },
                BASALT_CLIENT_ERANGE,
            ),
            (
                ClientError::Mds(MdsError::VolumeNotFound),
                BASALT_CLIENT_ENOENT,
            ),
            (
                ClientError::Mds(MdsError::VolumeExists),
                BASALT_CLIENT_EEXIST,
            ),
            (ClientError::NoSpace, BASALT_CLIENT_ENOSPC),
            (ClientError::MdsUnavailable, BASALT_CLIENT_EHOSTUNREACH),
            (ClientError::Closed, BASALT_CLIENT_ESHUTDOWN),
            (ClientError::GaveUp { attempts: 3 }, BASALT_CLIENT_ETIMEDOUT),
        ];
        for (e, code) in cases {
            let f = Failure::from(e.clone());
            assert_eq!(f.code, code, "{e:?}");
            assert_eq!(f.message, e.to_string());
        }
    }

    #[test]
    fn last_error_is_per_thread_and_nul_safe() {
        set_last_error("bad\0thing");
        // SAFETY: the pointer is this thread's live CString, read before any other call.
        let here = unsafe { CStr::from_ptr(last_error_ptr()) };
        assert_eq!(here.to_str().unwrap(), "bad thing");
        std::thread::spawn(|| {
            // SAFETY: as above, on the other thread's own (empty) message.
            let there = unsafe { CStr::from_ptr(last_error_ptr()) };
            assert!(there.to_bytes().is_empty());
        })
        .join()
        .unwrap();
    }
}
