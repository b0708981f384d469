//! `basalt_client_init` / `basalt_client_shutdown`: a client handle owns a tokio runtime
//! and a [`Cluster`] on the TCP transport (UCX when built in and chosen).

use super::errors::{Failure, BASALT_CLIENT_EAGAIN, BASALT_CLIENT_EBUSY};
use super::guard::{self, c_str};
use crate::config_file::{parse_addrs, ClientFile};
use crate::volume::Cluster;
use basalt_proto::hello::Role;
use basalt_transport::{FastPathMode, TcpTransport};
use std::ffi::{c_char, c_int};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Transport: as the client configuration file says (`[transport] fast-path`).
pub const BASALT_CLIENT_TRANSPORT_DEFAULT: u32 = 0;
/// Transport: TCP only.
pub const BASALT_CLIENT_TRANSPORT_TCP: u32 = 1;
/// Transport: UCX when both sides support it and it beats TCP here, TCP otherwise.
pub const BASALT_CLIENT_TRANSPORT_AUTO: u32 = 2;
/// Transport: UCX whenever both sides support it (TCP when they do not).
pub const BASALT_CLIENT_TRANSPORT_UCX: u32 = 3;

/// Runtime threads when the configuration says 0.
const DEFAULT_RUNTIME_THREADS: usize = 2;
/// Upper bound on runtime threads (a typo guard, not a tuning limit).
const MAX_RUNTIME_THREADS: u32 = 256;
/// How long to wait for runtime threads to stop at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How to reach the cluster. Every field has a "use the default" value (NULL or 0), so a
/// zero-initialised struct — or passing NULL for the whole struct — means "the client
/// configuration file, as is".
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct basalt_client_config_t {
    /// Comma-separated MDS addresses (`"10.0.0.1:6700,10.0.0.2:6700"`), or NULL to take
    /// them from `$BASALT_MDS` or the client configuration file.
    pub mds: *const c_char,
    /// Path of the client configuration file, or NULL for the default
    /// (`$BASALT_CLIENT_CONF`, else `~/.config/basalt/client.toml`; a missing default
    /// file is fine when `mds` or `$BASALT_MDS` names the MDS).
    pub config_file: *const c_char,
    /// One of `BASALT_CLIENT_TRANSPORT_*`.
    pub transport: u32,
    /// Chunk requests in flight per volume before submissions queue inside the library
    /// (0: the file's `max-inflight`, default 256).
    pub max_inflight: u32,
    /// Threads of the client's runtime (0: 2).
    pub runtime_threads: u32,
    /// How long administrative MDS calls (open, close) retry before failing with
    /// `BASALT_CLIENT_EHOSTUNREACH`, in milliseconds (0: 10 000).
    pub mds_retry_ms: u32,
}

/// A connected client: the runtime the I/O runs on and the cluster handle.
#[allow(non_camel_case_types)]
pub struct basalt_client_t {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) inner: Arc<ClientShared>,
}

/// What volumes need of their client.
pub(crate) struct ClientShared {
    pub(crate) handle: tokio::runtime::Handle,
    pub(crate) cluster: Cluster<TcpTransport>,
    pub(crate) sector: u64,
    pub(crate) open_volumes: AtomicUsize,
}

/// The validated configuration.
struct Settings {
    file: ClientFile,
    threads: usize,
    mds_retry: Option<Duration>,
}

/// # Safety
/// `cfg`'s string fields, when not NULL, are NUL-terminated strings.
unsafe fn settings(cfg: Option<&basalt_client_config_t>) -> Result<Settings, Failure> {
    let path = match cfg {
        Some(c) if !c.config_file.is_null() => {
            // SAFETY: non-NULL; the caller guarantees a NUL-terminated string.
            Some(unsafe { c_str(c.config_file, "config->config_file") }?)
        }
        _ => None,
    };
    let mut file = ClientFile::load(path.map(Path::new))?;
    let Some(c) = cfg else {
        return Ok(Settings {
            file,
            threads: DEFAULT_RUNTIME_THREADS,
            mds_retry: None,
        });
    };
    if !c.mds.is_null() {
        // SAFETY: non-NULL; the caller guarantees a NUL-terminated string.
        file.mds = parse_addrs(unsafe { c_str(c.mds, "config->mds") }?)?;
    }
    match c.transport {
        BASALT_CLIENT_TRANSPORT_DEFAULT => {}
        BASALT_CLIENT_TRANSPORT_TCP => {
            file.transport.fast_path = FastPathMode::Off;
            file.ucx = None;
        }
        BASALT_CLIENT_TRANSPORT_AUTO => file.transport.fast_path = FastPathMode::Auto,
        BASALT_CLIENT_TRANSPORT_UCX => file.transport.fast_path = FastPathMode::Force,
        other => {
            return Err(Failure::invalid(format!(
                "config->transport {other} is not a BASALT_CLIENT_TRANSPORT_* value"
            )))
        }
    }
    if c.max_inflight != 0 {
        file.max_inflight = c.max_inflight as usize;
    }
    if c.runtime_threads > MAX_RUNTIME_THREADS {
        return Err(Failure::invalid(format!(
            "config->runtime_threads {} is above {MAX_RUNTIME_THREADS}",
            c.runtime_threads
        )));
    }
    let threads = match c.runtime_threads {
        0 => DEFAULT_RUNTIME_THREADS,
        n => n as usize,
    };
    let mds_retry = (c.mds_retry_ms != 0).then(|| Duration::from_millis(c.mds_retry_ms.into()));
    Ok(Settings {
        file,
        threads,
        mds_retry,
    })
}

fn start(s: Settings) -> Result<basalt_client_t, Failure> {
    s.file.validate()?;
    let mut cfg = s.file.client_config()?;
    if let Some(d) = s.mds_retry {
        cfg.mds_retry_for = d;
    }
    let sector = cfg.sector;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(s.threads)
        .thread_name("basalt-client")
        .enable_all()
        .build()
        .map_err(|e| Failure::new(BASALT_CLIENT_EAGAIN, format!("client runtime: {e}")))?;
    let cluster = {
        let _ctx = rt.enter();
        let name = format!("capi-client-{}", std::process::id());
        Cluster::new(s.file.transport(Role::Client, &name)?, cfg)
    };
    let handle = rt.handle().clone();
    Ok(basalt_client_t {
        rt,
        inner: Arc::new(ClientShared {
            handle,
            cluster,
            sector,
            open_volumes: AtomicUsize::new(0),
        }),
    })
}

/// Create a client. `config` may be NULL (everything from the client configuration
/// file). Nothing is dialled yet: the first `basalt_client_open` talks to the MDS.
/// On success `*out` holds a handle to release with `basalt_client_shutdown`.
///
/// Create clients after `fork()`, never before: a client does not survive a fork.
///
/// # Safety
/// `config`, when not NULL, points to a valid `basalt_client_config_t` whose strings are
/// NUL-terminated; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn basalt_client_init(
    config: *const basalt_client_config_t,
    out: *mut *mut basalt_client_t,
) -> c_int {
    guard::status(|| {
        guard::out(out, "out")?;
        guard::not_on_library_thread("basalt_client_init")?;
        // SAFETY: NULL is allowed; otherwise the caller guarantees a valid struct.
        let cfg = unsafe { config.as_ref() };
        // SAFETY: the caller guarantees the strings in `cfg` are NUL-terminated.
        let client = start(unsafe { settings(cfg) }?)?;
        // SAFETY: `out` is non-NULL and writable (checked above / caller contract).
        unsafe { out.write(Box::into_raw(Box::new(client))) };
        Ok(())
    })
}

/// Release a client. Fails with `BASALT_CLIENT_EBUSY` (and releases nothing) while
/// volumes opened through it are still open. NULL is a no-op returning 0.
///
/// # Safety
/// `client` is NULL or a handle from `basalt_client_init` not yet released, and no other
/// thread uses it during the call.
#[no_mangle]
pub unsafe extern "C" fn basalt_client_shutdown(client: *mut basalt_client_t) -> c_int {
    guard::status(|| {
        if client.is_null() {
            return Ok(());
        }
        guard::not_on_library_thread("basalt_client_shutdown")?;
        // SAFETY: non-NULL handle from basalt_client_init (caller contract).
        let open = unsafe { &*client }
            .inner
            .open_volumes
            .load(Ordering::SeqCst);
        if open != 0 {
            return Err(Failure::new(
                BASALT_CLIENT_EBUSY,
                format!("{open} volume(s) still open: close them first"),
            ));
        }
        // SAFETY: the handle came from Box::into_raw in basalt_client_init and is
        // released exactly once (caller contract).
        let client = unsafe { Box::from_raw(client) };
        let basalt_client_t { rt, inner } = *client;
        {
            // connections may need the runtime's context to wind down
            let _ctx = rt.enter();
            drop(inner);
        }
        rt.shutdown_timeout(SHUTDOWN_GRACE);
        Ok(())
    })
}

/// The sector size I/O must be aligned to (offsets and lengths), from the configuration.
///
/// # Safety
/// `client` is NULL or a live handle; `sector` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn basalt_client_sector_size(
    client: *const basalt_client_t,
    sector: *mut u32,
) -> c_int {
    guard::status(|| {
        // SAFETY: NULL is refused; otherwise a live handle (caller contract).
        let c = unsafe { guard::arg(client, "client") }?;
        guard::out(sector, "sector")?;
        // SAFETY: non-NULL and writable (caller contract).
        unsafe { sector.write(c.inner.sector as u32) };
        Ok(())
    })
}
