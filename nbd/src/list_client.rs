//! Just enough of an NBD client to ask a server for its export list (`basalt-nbd ls`).

use crate::consts::*;
use crate::error::NbdError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Upper bound on one LIST reply's data, so a hostile server cannot make us allocate.
const MAX_REPLY: u32 = 64 * 1024;

/// Negotiate, send NBD_OPT_LIST, collect the names, abort.
pub async fn list_exports<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
) -> Result<Vec<String>, NbdError> {
    let mut greet = [0u8; 18];
    s.read_exact(&mut greet).await?;
    let magic = u64::from_be_bytes(greet[0..8].try_into().expect("8 bytes"));
    if magic != NBDMAGIC {
        return Err(NbdError::BadMagic {
            found: magic,
            expected: NBDMAGIC,
        });
    }
    s.write_all(&(client_flags::C_FIXED_NEWSTYLE | client_flags::C_NO_ZEROES).to_be_bytes())
        .await?;
    let mut req = IHAVEOPT.to_be_bytes().to_vec();
    req.extend_from_slice(&opt::LIST.to_be_bytes());
    req.extend_from_slice(&0u32.to_be_bytes());
    s.write_all(&req).await?;
    let mut names = Vec::new();
    loop {
        let mut h = [0u8; 20];
        s.read_exact(&mut h).await?;
        let magic = u64::from_be_bytes(h[0..8].try_into().expect("8 bytes"));
        if magic != OPT_REPLY_MAGIC {
            return Err(NbdError::BadMagic {
                found: magic,
                expected: OPT_REPLY_MAGIC,
            });
        }
        let kind = u32::from_be_bytes(h[12..16].try_into().expect("4 bytes"));
        let len = u32::from_be_bytes(h[16..20].try_into().expect("4 bytes"));
        if len > MAX_REPLY {
            return Err(NbdError::OptionTooLarge { len });
        }
        let mut data = vec![0u8; len as usize];
        s.read_exact(&mut data).await?;
        match kind {
            rep::SERVER if data.len() >= 4 => {
                let n = (u32::from_be_bytes(data[0..4].try_into().expect("4 bytes")) as usize)
                    .min(data.len() - 4);
                names.push(String::from_utf8_lossy(&data[4..4 + n]).into_owned());
            }
            rep::ACK => break,
            other => {
                return Err(NbdError::Io(format!(
                    "server refused LIST (reply {other:#x})"
                )))
            }
        }
    }
    let mut abort = IHAVEOPT.to_be_bytes().to_vec();
    abort.extend_from_slice(&opt::ABORT.to_be_bytes());
    abort.extend_from_slice(&0u32.to_be_bytes());
    let _ = s.write_all(&abort).await;
    Ok(names)
}
