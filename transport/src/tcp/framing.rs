//! Frames on a byte stream: bounded reads (the fixed header is decoded and its lengths
//! checked against the limits before anything is allocated) and coalesced vectored writes.

use crate::fastpath::RawFrame;
use basalt_proto::{FrameHeader, Limits, ProtoError, FRAME_HEADER_LEN};
use bytes::BytesMut;
use std::io::IoSlice;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Frames written in one `writev` at most (3 slices each, under `IOV_MAX` = 1024).
pub(crate) const MAX_BATCH_FRAMES: usize = 256;
/// Bytes gathered into one batch before it is written (a single larger frame goes alone).
pub(crate) const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Why reading a frame failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The socket failed.
    Io(std::io::Error),
    /// The bytes are not a valid frame (bad magic, checksum, lengths, or cut short).
    Bad(ProtoError),
}

/// Read until `buf` is full. Returns how many bytes were read before EOF.
async fn fill<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let m = r.read(&mut buf[n..]).await?;
        if m == 0 {
            break;
        }
        n += m;
    }
    Ok(n)
}

/// Read one frame. `Ok(None)` on a clean end of stream between frames.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    limits: &Limits,
) -> Result<Option<RawFrame>, ReadError> {
    let mut fixed = [0u8; FRAME_HEADER_LEN];
    let n = fill(r, &mut fixed).await.map_err(ReadError::Io)?;
    if n == 0 {
        return Ok(None);
    }
    if n < FRAME_HEADER_LEN {
        return Err(ReadError::Bad(ProtoError::Truncated {
            have: n,
            need: FRAME_HEADER_LEN,
        }));
    }
    let header = FrameHeader::decode(&fixed, limits).map_err(ReadError::Bad)?;
    // lengths are within limits now; allocate exactly what the frame announces, once
    let head_len = header.header_len as usize;
    let mut body = read_exact_bytes(r, head_len + header.payload_len as usize).await?;
    let head = body.split_to(head_len);
    Ok(Some(RawFrame {
        header,
        head,
        payload: body,
    }))
}

async fn read_exact_bytes<R: AsyncRead + Unpin>(
    r: &mut R,
    len: usize,
) -> Result<bytes::Bytes, ReadError> {
    if len == 0 {
        return Ok(bytes::Bytes::new());
    }
    let mut buf = BytesMut::zeroed(len);
    let n = fill(r, &mut buf).await.map_err(ReadError::Io)?;
    if n < len {
        return Err(ReadError::Bad(ProtoError::Truncated { have: n, need: len }));
    }
    Ok(buf.freeze())
}

/// Write a batch of frames with vectored writes: for each frame its fixed header, its
/// encoded header and its payload as separate slices (the payload is never copied).
pub(crate) async fn write_frames<W: AsyncWrite + Unpin>(
    w: &mut W,
    frames: &[RawFrame],
) -> std::io::Result<()> {
    let fixed: Vec<[u8; FRAME_HEADER_LEN]> = frames.iter().map(|f| f.header.encode()).collect();
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(frames.len() * 3);
    for (f, h) in frames.iter().zip(&fixed) {
        slices.push(IoSlice::new(h));
        if !f.head.is_empty() {
            slices.push(IoSlice::new(&f.head));
        }
        if !f.payload.is_empty() {
            slices.push(IoSlice::new(&f.payload));
        }
    }
    let mut rest: &mut [IoSlice<'_>] = &mut slices;
    while !rest.is_empty() {
        let n = w.write_vectored(rest).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// Write one frame and flush (the hello, before the writer task exists).
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: RawFrame,
) -> std::io::Result<()> {
    write_frames(w, std::slice::from_ref(&frame)).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_proto::ids::GroupId;
    use basalt_proto::FrameKind;
    use bytes::Bytes;

    fn frame(corr: u64, head: &[u8], payload: &[u8]) -> RawFrame {
        let mut header = FrameHeader::new(FrameKind::Request, 3, corr, GroupId(7));
        header.header_len = head.len() as u32;
        header.payload_len = payload.len() as u32;
        RawFrame {
            header,
            head: Bytes::copy_from_slice(head),
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[tokio::test]
    async fn batch_round_trip_through_a_pipe() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let frames: Vec<_> = (0..20)
            .map(|i| {
                frame(
                    i,
                    &vec![i as u8; i as usize],
                    &vec![0xAB; (i * 37) as usize],
                )
            })
            .collect();
        let expect = frames.clone();
        let w = tokio::spawn(async move {
            write_frames(&mut a, &frames).await.unwrap();
        });
        for f in expect {
            let got = read_frame(&mut b, &Limits::DEFAULT).await.unwrap().unwrap();
            assert_eq!(got.header, f.header);
            assert_eq!(got.head, f.head);
            assert_eq!(got.payload, f.payload);
        }
        w.await.unwrap();
        assert!(read_frame(&mut b, &Limits::DEFAULT)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn truncated_and_oversized_frames_are_typed_errors() {
        let f = frame(1, b"abc", b"payload");
        let mut bytes = f.header.encode().to_vec();
        bytes.extend_from_slice(b"abc");
        bytes.extend_from_slice(b"pay"); // cut short
        let mut r = &bytes[..];
        assert!(matches!(
            read_frame(&mut r, &Limits::DEFAULT).await,
            Err(ReadError::Bad(ProtoError::Truncated { have: 6, need: 10 }))
        ));
        let mut r = &bytes[..10];
        assert!(matches!(
            read_frame(&mut r, &Limits::DEFAULT).await,
            Err(ReadError::Bad(ProtoError::Truncated { have: 10, need: 40 }))
        ));
        let tiny = Limits {
            max_header_len: 2,
            max_payload_len: 1 << 20,
        };
        let mut r = &bytes[..];
        assert!(matches!(
            read_frame(&mut r, &tiny).await,
            Err(ReadError::Bad(ProtoError::HeaderTooLong {
                len: 3,
                limit: 2
            }))
        ));
    }

    fn read_all(bytes: &[u8], limits: &Limits) -> Vec<RawFrame> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut r = bytes;
            let mut out = Vec::new();
            while let Ok(Some(f)) = read_frame(&mut r, limits).await {
                out.push(f);
            }
            out
        })
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = read_all(&bytes, &Limits::DEFAULT);
        }

        #[test]
        fn corrupted_or_cut_frames_are_errors_not_panics(
            flip in 0usize..200,
            bit in 0u8..8,
            cut in 0usize..200,
        ) {
            let f = frame(9, b"header-bytes", &[7u8; 100]);
            let mut bytes = f.header.encode().to_vec();
            bytes.extend_from_slice(&f.head);
            bytes.extend_from_slice(&f.payload);
            let len = bytes.len();
            // a flip in the fixed header is always caught (checksum); elsewhere it is data
            let mut flipped = bytes.clone();
            flipped[flip % len] ^= 1 << bit;
            let got = read_all(&flipped, &Limits::DEFAULT);
            if flip % len < FRAME_HEADER_LEN {
                proptest::prop_assert!(got.is_empty());
            } else {
                proptest::prop_assert_eq!(got.len(), 1);
            }
            // any cut short of the whole frame yields no frame
            let got = read_all(&bytes[..cut % len], &Limits::DEFAULT);
            proptest::prop_assert!(got.is_empty());
        }
    }
}
