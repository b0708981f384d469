//! The NBD server's connection handler (`NbdServer::handle`, the same code that serves
//! TCP and UNIX sockets) fed a client byte stream: fixed-newstyle negotiation, then
//! transmission requests against a small in-memory export. The server's replies are
//! dropped. Nothing may panic, and the handler must end when the input ends.
#![no_main]

use basalt_nbd::handshake::ExportInfo;
use basalt_nbd::mem_device::MemDevice;
use basalt_nbd::server::{Export, NbdServer, ServerConfig};
use libfuzzer_sys::fuzz_target;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client: reads come from the fuzz input, writes vanish.
struct Client {
    input: Vec<u8>,
    at: usize,
}

impl AsyncRead for Client {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = buf.remaining().min(self.input.len() - self.at);
        let at = self.at;
        buf.put_slice(&self.input[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Client {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    })
}

fn server() -> &'static Arc<NbdServer> {
    static SERVER: OnceLock<Arc<NbdServer>> = OnceLock::new();
    SERVER.get_or_init(|| {
        let export = |name: &str, size: u64, read_only: bool| Export {
            info: ExportInfo {
                name: name.into(),
                size,
                read_only,
                description: format!("fuzz export {name}"),
            },
            device: Arc::new(MemDevice::new(size)),
        };
        NbdServer::new(
            vec![export("vol", 1 << 20, false), export("ro", 64 << 10, true)],
            ServerConfig::default(),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let client = Client {
        input: data.to_vec(),
        at: 0,
    };
    let _ = runtime().block_on(server().handle(client));
});
