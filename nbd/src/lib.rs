//! Basalt's NBD server: exports volumes to any NBD client (qemu, nbdcopy, fio's nbd
//! engine, the kernel's nbd-client) over TCP or a UNIX socket.
//!
//! The protocol is a pure state machine — [`handshake`] (fixed-newstyle option
//! negotiation) and [`transmission`] (request validation, reply encoding) — tested without
//! sockets. The server shell drives it over tokio.

pub mod consts;
pub mod device;
pub mod error;
pub mod handshake;
pub mod list_client;
pub mod mem_device;
pub mod server;
pub mod transmission;
pub mod volume_device;

pub use error::NbdError;
