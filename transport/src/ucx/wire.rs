//! How a frame travels as one UCX active message (pure functions, no UCX).
//!
//! Active-message header: the receiver's connection token (u64 LE, from its
//! [`UcxOffer::conn`](basalt_proto::hello::UcxOffer)), the 40-byte fixed frame header, then
//! the encoded message header when it fits the worker's AM header limit. Active-message
//! data: the encoded header when it did not fit, followed by the payload (sent as an
//! iov, so the payload is never copied into a staging buffer).
//!
//! The receiver tells the two placements apart by sizes alone: the AM header is either
//! exactly `48 + header_len` bytes (header inline) or exactly 48 bytes with
//! `header_len + payload_len` bytes of data. With `header_len == 0` both agree.
//!
//! A second message id carries a close notice: an AM header holding only the token.
//!
//! The worker address in a [`UcxOffer`](basalt_proto::hello::UcxOffer) travels in a small
//! envelope (magic, packing UCX version, length, checksum) checked before UCX sees it.

use crate::error::TransportError;
use basalt_proto::{FrameHeader, Limits, FRAME_HEADER_LEN};

/// Active-message id of frames.
pub const AM_FRAME: u32 = 0xb5;
/// Active-message id of the close notice.
pub const AM_CLOSE: u32 = 0xb6;
/// Bytes of token in front of the fixed frame header.
pub const TOKEN_LEN: usize = 8;
/// Token plus fixed frame header.
pub const PREFIX_LEN: usize = TOKEN_LEN + FRAME_HEADER_LEN;

/// Where the encoded message header travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadPlacement {
    /// In the AM header, after the fixed frame header.
    Header,
    /// In the AM data, before the payload.
    Data,
}

/// Choose the placement for an encoded header of `head_len` bytes given the worker's
/// largest AM header.
pub fn placement(head_len: usize, max_am_header: usize) -> HeadPlacement {
    if PREFIX_LEN + head_len <= max_am_header {
        HeadPlacement::Header
    } else {
        HeadPlacement::Data
    }
}

/// Build the AM header of a frame. `inline_head` is the encoded header when it travels
/// in the AM header (see [`placement`]).
pub fn encode_am_header(token: u64, header: &FrameHeader, inline_head: Option<&[u8]>) -> Vec<u8> {
    let extra = inline_head.map_or(0, <[u8]>::len);
    let mut out = Vec::with_capacity(PREFIX_LEN + extra);
    out.extend_from_slice(&token.to_le_bytes());
    out.extend_from_slice(&header.encode());
    if let Some(head) = inline_head {
        out.extend_from_slice(head);
    }
    out
}

/// The token at the front of an AM header, if there are enough bytes for one.
pub fn token_of(am_header: &[u8]) -> Option<u64> {
    let bytes: [u8; TOKEN_LEN] = am_header.get(..TOKEN_LEN)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// A decoded inbound frame message, before its data is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundFrame {
    /// The receiving connection's token.
    pub token: u64,
    /// The validated fixed frame header.
    pub header: FrameHeader,
    /// Where the encoded header is.
    pub head: HeadPlacement,
}

/// Decode and check the AM header of a frame against the announced data length.
pub fn decode_am_header(
    am_header: &[u8],
    data_len: usize,
    limits: &Limits,
) -> Result<InboundFrame, TransportError> {
    let token = token_of(am_header).ok_or(TransportError::UcxAmHeaderTruncated {
        len: am_header.len(),
    })?;
    if am_header.len() < PREFIX_LEN {
        return Err(TransportError::UcxAmHeaderTruncated {
            len: am_header.len(),
        });
    }
    let header = FrameHeader::decode(&am_header[TOKEN_LEN..PREFIX_LEN], limits)
        .map_err(|source| TransportError::UcxBadFrameHeader { token, source })?;
    let head_len = header.header_len as usize;
    let payload_len = header.payload_len as usize;
    let head = if am_header.len() == PREFIX_LEN + head_len && data_len == payload_len {
        HeadPlacement::Header
    } else if am_header.len() == PREFIX_LEN && data_len == head_len + payload_len {
        HeadPlacement::Data
    } else {
        return Err(TransportError::UcxLengthMismatch {
            token,
            am_header_len: am_header.len(),
            data_len,
            header_len: header.header_len,
            payload_len: header.payload_len,
        });
    };
    Ok(InboundFrame {
        token,
        header,
        head,
    })
}

/// The AM header of a close notice for the peer connection `token`.
pub fn encode_close(token: u64) -> Vec<u8> {
    token.to_le_bytes().to_vec()
}

/// Magic of the worker-address envelope.
const ADDRESS_MAGIC: [u8; 4] = *b"BUX1";
/// Bytes of envelope in front of the UCX worker address.
pub const ADDRESS_ENVELOPE_LEN: usize = 20;

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Wrap a UCX worker address for the hello: magic, the UCX version that packed it, its
/// length and a checksum. UCX parses worker addresses without any validation (a
/// truncated or garbled one crashes `ucp_ep_create`), so the receiver checks this
/// envelope before handing the bytes to UCX.
pub fn encode_worker_address(address: &[u8], ucx_version: (u32, u32)) -> Vec<u8> {
    let mut out = Vec::with_capacity(ADDRESS_ENVELOPE_LEN + address.len());
    out.extend_from_slice(&ADDRESS_MAGIC);
    out.push(ucx_version.0.min(255) as u8);
    out.push(ucx_version.1.min(255) as u8);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(address.len() as u32).to_le_bytes());
    out.extend_from_slice(&fnv1a64(address).to_le_bytes());
    out.extend_from_slice(address);
    out
}

/// Check a peer's worker-address envelope and return the UCX address inside. The
/// packing UCX version must equal ours (major and minor): the address format is not
/// promised to be stable across releases.
pub fn decode_worker_address(
    offer: &[u8],
    ucx_version: (u32, u32),
) -> Result<&[u8], TransportError> {
    let bad = |problem: &'static str| TransportError::UcxBadWorkerAddress {
        len: offer.len(),
        problem,
    };
    if offer.len() < ADDRESS_ENVELOPE_LEN {
        return Err(bad("shorter than its envelope"));
    }
    if offer[0..4] != ADDRESS_MAGIC {
        return Err(bad("bad magic"));
    }
    let theirs = (u32::from(offer[4]), u32::from(offer[5]));
    let ours = (ucx_version.0.min(255), ucx_version.1.min(255));
    if theirs != ours {
        return Err(TransportError::UcxAddressVersion {
            ours_major: ours.0,
            ours_minor: ours.1,
            theirs_major: theirs.0,
            theirs_minor: theirs.1,
        });
    }
    let len = u32::from_le_bytes(offer[8..12].try_into().expect("4 bytes")) as usize;
    let address = &offer[ADDRESS_ENVELOPE_LEN..];
    if address.len() != len || len == 0 {
        return Err(bad("length does not match"));
    }
    let sum = u64::from_le_bytes(offer[12..20].try_into().expect("8 bytes"));
    if sum != fnv1a64(address) {
        return Err(bad("checksum mismatch"));
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_proto::ids::GroupId;
    use basalt_proto::FrameKind;

    fn header(head: u32, payload: u32) -> FrameHeader {
        let mut h = FrameHeader::new(FrameKind::Request, 7, 42, GroupId(3));
        h.header_len = head;
        h.payload_len = payload;
        h
    }

    #[test]
    fn inline_head_round_trips() {
        let h = header(5, 4096);
        assert_eq!(placement(5, 1024), HeadPlacement::Header);
        let am = encode_am_header(0xdead_beef, &h, Some(b"hello"));
        assert_eq!(am.len(), PREFIX_LEN + 5);
        let d = decode_am_header(&am, 4096, &Limits::DEFAULT).unwrap();
        assert_eq!(d.token, 0xdead_beef);
        assert_eq!(d.header, h);
        assert_eq!(d.head, HeadPlacement::Header);
        assert_eq!(&am[PREFIX_LEN..], b"hello");
    }

    #[test]
    fn large_head_goes_to_data() {
        let h = header(2000, 10);
        assert_eq!(placement(2000, 1024), HeadPlacement::Data);
        let am = encode_am_header(9, &h, None);
        let d = decode_am_header(&am, 2010, &Limits::DEFAULT).unwrap();
        assert_eq!(d.head, HeadPlacement::Data);
    }

    #[test]
    fn empty_frame_is_unambiguous() {
        let h = header(0, 0);
        let am = encode_am_header(1, &h, Some(b""));
        let d = decode_am_header(&am, 0, &Limits::DEFAULT).unwrap();
        assert_eq!(d.header, h);
    }

    #[test]
    fn size_mismatches_are_typed_errors_with_the_token() {
        let h = header(5, 100);
        let am = encode_am_header(77, &h, Some(b"hello"));
        assert!(matches!(
            decode_am_header(&am, 99, &Limits::DEFAULT),
            Err(TransportError::UcxLengthMismatch { token: 77, .. })
        ));
        let am = encode_am_header(77, &h, None);
        assert!(matches!(
            decode_am_header(&am, 100, &Limits::DEFAULT),
            Err(TransportError::UcxLengthMismatch { token: 77, .. })
        ));
    }

    #[test]
    fn garbage_never_panics() {
        assert!(matches!(
            decode_am_header(&[1, 2, 3], 0, &Limits::DEFAULT),
            Err(TransportError::UcxAmHeaderTruncated { len: 3 })
        ));
        assert!(matches!(
            decode_am_header(&[0; 20], 0, &Limits::DEFAULT),
            Err(TransportError::UcxAmHeaderTruncated { len: 20 })
        ));
        let mut am = encode_am_header(5, &header(0, 0), None);
        am[TOKEN_LEN] ^= 0xff;
        assert!(matches!(
            decode_am_header(&am, 0, &Limits::DEFAULT),
            Err(TransportError::UcxBadFrameHeader { token: 5, .. })
        ));
        // Every prefix of a valid header is refused without panicking.
        let am = encode_am_header(5, &header(3, 0), Some(b"abc"));
        for n in 0..am.len() {
            assert!(decode_am_header(&am[..n], 0, &Limits::DEFAULT).is_err());
        }
    }

    #[test]
    fn limits_are_enforced_before_data_is_read() {
        let h = header(0, 1000);
        let am = encode_am_header(5, &h, None);
        let small = Limits {
            max_header_len: 1024,
            max_payload_len: 999,
        };
        assert!(matches!(
            decode_am_header(&am, 1000, &small),
            Err(TransportError::UcxBadFrameHeader { token: 5, .. })
        ));
    }

    #[test]
    fn worker_address_envelope_round_trips_and_refuses_damage() {
        let v = (1, 13);
        let addr: Vec<u8> = (0..150u8).collect();
        let offer = encode_worker_address(&addr, v);
        assert_eq!(decode_worker_address(&offer, v).unwrap(), &addr[..]);
        // every truncation and every single-byte corruption is refused
        for n in 0..offer.len() {
            assert!(decode_worker_address(&offer[..n], v).is_err(), "prefix {n}");
        }
        for i in 0..offer.len() {
            if (6..8).contains(&i) {
                continue; // reserved bytes are not checked
            }
            let mut o = offer.clone();
            o[i] ^= 0x01;
            assert!(decode_worker_address(&o, v).is_err(), "flip at {i}");
        }
        assert!(matches!(
            decode_worker_address(&offer, (1, 14)),
            Err(TransportError::UcxAddressVersion {
                theirs_minor: 13,
                ours_minor: 14,
                ..
            })
        ));
        assert!(decode_worker_address(&encode_worker_address(&[], v), v).is_err());
    }

    #[test]
    fn close_notice_carries_the_token() {
        assert_eq!(token_of(&encode_close(0x1234)), Some(0x1234));
        assert_eq!(token_of(&[1, 2]), None);
    }
}
