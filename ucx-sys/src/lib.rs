//! Raw FFI bindings to the system UCX (UCP layer), version 1.13 or newer.
//!
//! Only the part of the UCP API that Basalt uses is bound: context and configuration,
//! single-threaded workers with wakeup, endpoints from worker addresses, active messages
//! (send, receive, rendezvous data) and request handling. `src/bindings.rs` is generated
//! from the Debian 12 headers (UCX 1.13.1) by `regen-bindings.sh` and checked in, so a
//! build needs pkg-config and the UCX libraries but no libclang. UCX keeps its ABI stable
//! across 1.x through the `field_mask` members of its parameter structs.
//!
//! Everything here is `unsafe` and mirrors C; the safe layer lives in
//! `basalt-transport` (`ucx` feature). Besides the generated items this crate provides the
//! static-inline functions and macros of the headers that bindgen cannot see
//! ([`ucp_init`], [`ucp_dt_make_contig`], [`ucp_dt_make_iov`], the `UCS_PTR_*` helpers).

#[rustfmt::skip]
#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]
mod bindings;

pub use bindings::*;

/// `ucp_init` from `ucp.h` (a static inline there): initialise a UCP context against the
/// API version these bindings were generated from.
///
/// # Safety
/// Same contract as the C function: `params` must point to a valid, initialised
/// `ucp_params_t`, `config` must be null or come from `ucp_config_read`, and
/// `context_p` must be valid for a write.
pub unsafe fn ucp_init(
    params: *const ucp_params_t,
    config: *const ucp_config_t,
    context_p: *mut ucp_context_h,
) -> ucs_status_t {
    // SAFETY: forwarded under the caller's contract.
    unsafe { ucp_init_version(UCP_API_MAJOR, UCP_API_MINOR, params, config, context_p) }
}

/// `ucp_dt_make_contig(elem_size)`: a contiguous datatype of `elem_size`-byte elements.
pub const fn ucp_dt_make_contig(elem_size: usize) -> ucp_datatype_t {
    ((elem_size as ucp_datatype_t) << UCP_DATATYPE_SHIFT) | UCP_DATATYPE_CONTIG as ucp_datatype_t
}

/// `ucp_dt_make_iov()`: a scatter-gather datatype; the buffer is a `ucp_dt_iov_t` array
/// and the count is its number of entries.
pub const fn ucp_dt_make_iov() -> ucp_datatype_t {
    UCP_DATATYPE_IOV as ucp_datatype_t
}

/// `UCS_PTR_IS_ERR`: the returned status pointer encodes an error.
pub fn ucs_ptr_is_err(ptr: ucs_status_ptr_t) -> bool {
    (ptr as usize) >= (UCS_ERR_LAST as isize as usize)
}

/// `UCS_PTR_IS_PTR`: the returned status pointer is a real request handle.
pub fn ucs_ptr_is_ptr(ptr: ucs_status_ptr_t) -> bool {
    (ptr as usize).wrapping_sub(1) < (UCS_ERR_LAST as isize as usize).wrapping_sub(1)
}

/// `UCS_PTR_STATUS`: the status a returned pointer encodes (`UCS_INPROGRESS` for a request).
pub fn ucs_ptr_status(ptr: ucs_status_ptr_t) -> ucs_status_t {
    if ucs_ptr_is_ptr(ptr) {
        UCS_INPROGRESS
    } else {
        ptr as isize as ucs_status_t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_pointer_helpers_match_the_c_macros() {
        let null: ucs_status_ptr_t = core::ptr::null_mut();
        assert!(!ucs_ptr_is_err(null));
        assert!(!ucs_ptr_is_ptr(null));
        assert_eq!(ucs_ptr_status(null), UCS_OK);
        let err = UCS_ERR_CONNECTION_RESET as isize as ucs_status_ptr_t;
        assert!(ucs_ptr_is_err(err));
        assert!(!ucs_ptr_is_ptr(err));
        assert_eq!(ucs_ptr_status(err), UCS_ERR_CONNECTION_RESET);
        let mut x = 0u64;
        let req = (&mut x as *mut u64).cast::<core::ffi::c_void>();
        assert!(ucs_ptr_is_ptr(req));
        assert!(!ucs_ptr_is_err(req));
        assert_eq!(ucs_ptr_status(req), UCS_INPROGRESS);
    }

    #[test]
    fn datatypes_match_the_c_macros() {
        assert_eq!(ucp_dt_make_contig(1), 8);
        assert_eq!(ucp_dt_make_iov(), 2);
    }

    #[test]
    fn linked_library_is_at_least_1_13() {
        let (mut major, mut minor, mut release) = (0u32, 0u32, 0u32);
        // SAFETY: three valid out-pointers.
        unsafe { ucp_get_version(&mut major, &mut minor, &mut release) };
        assert!((major, minor) >= (1, 13), "UCX {major}.{minor}.{release}");
    }
}
