//! A Basalt volume as an NBD export.

use crate::device::BlockDevice;
use basalt_client::addr::FromSocketAddr;
use basalt_client::{ClientError, Volume};
use basalt_transport::Transport;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::io;

/// The errno an NBD client should see for a client error. Transient faults never get
/// here (the client retries them); these are permanent.
pub fn io_error(e: ClientError) -> io::Error {
    let errno = match &e {
        ClientError::Misaligned { .. }
        | ClientError::OutOfRange { .. }
        | ClientError::InvalidRequest { .. } => libc_errno::EINVAL,
        ClientError::NoSpace => libc_errno::ENOSPC,
        ClientError::Closed => libc_errno::ESHUTDOWN,
        ClientError::Mds(
            basalt_proto::status::MdsError::PermissionDenied
            | basalt_proto::status::MdsError::VolumeAccessDenied { .. },
        ) => libc_errno::EPERM,
        _ => libc_errno::EIO,
    };
    io::Error::from_raw_os_error(errno)
}

/// Linux errno values used above (the NBD protocol fixes them to Linux's numbers).
mod libc_errno {
    pub const EPERM: i32 = 1;
    pub const EIO: i32 = 5;
    pub const EINVAL: i32 = 22;
    pub const ENOSPC: i32 = 28;
    pub const ESHUTDOWN: i32 = 108;
}

/// An open volume served as a block device.
pub struct VolumeDevice<T: Transport> {
    volume: Volume<T>,
}

impl<T: Transport> VolumeDevice<T> {
    /// Serve `volume`.
    pub fn new(volume: Volume<T>) -> Self {
        VolumeDevice { volume }
    }
}

impl<T: Transport> BlockDevice for VolumeDevice<T>
where
    T::Addr: FromSocketAddr,
{
    fn size(&self) -> u64 {
        self.volume.size()
    }

    fn read(&self, offset: u64, len: u32) -> BoxFuture<'_, io::Result<Bytes>> {
        Box::pin(async move { self.volume.read(offset, len as u64).await.map_err(io_error) })
    }

    fn write(&self, offset: u64, data: Bytes, _fua: bool) -> BoxFuture<'_, io::Result<()>> {
        // Every acknowledged write is durable on a majority: FUA needs nothing more.
        Box::pin(async move { self.volume.write(offset, data).await.map_err(io_error) })
    }

    fn flush(&self) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async move { self.volume.flush().await.map_err(io_error) })
    }

    fn trim(&self, offset: u64, len: u32) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async move {
            self.volume
                .discard(offset, len as u64)
                .await
                .map_err(io_error)
        })
    }

    fn write_zeroes(&self, offset: u64, len: u32, _no_hole: bool) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async move {
            self.volume
                .write_zeroes(offset, len as u64)
                .await
                .map_err(io_error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::errno;
    use crate::device::errno_of;

    #[test]
    fn client_errors_map_to_nbd_errnos() {
        assert_eq!(errno_of(&io_error(ClientError::NoSpace)), errno::ENOSPC);
        assert_eq!(errno_of(&io_error(ClientError::Closed)), errno::ESHUTDOWN);
        assert_eq!(
            errno_of(&io_error(ClientError::OutOfRange {
                offset: 0,
                len: 1,
                size: 0
            })),
            errno::EINVAL
        );
        assert_eq!(errno_of(&io_error(ClientError::MdsUnavailable)), errno::EIO);
    }
}
