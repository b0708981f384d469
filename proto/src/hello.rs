//! The connection hello: the first request on every connection, always over TCP.
//!
//! The dialler sends [`Hello`]; the acceptor answers [`HelloReply`]. When both offer
//! [`Features::UCX`] and carry worker addresses, each side creates a UCX endpoint to the
//! other's worker and confirms it with a [`crate::Method::Ping`] before moving traffic.

use crate::ids::ChunkServerId;
use crate::method::{Method, Rpc};
use serde::{Deserialize, Serialize};

bitflags::bitflags! {
    /// Optional capabilities a side offers.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct Features: u32 {
        /// UCX active messages: the hello carries a worker address.
        const UCX = 1 << 0;
        /// Raft heartbeats for many groups may be coalesced into one frame.
        const COALESCED_HEARTBEATS = 1 << 1;
        /// The hello carries an authentication challenge/response.
        const AUTH = 1 << 2;
    }
}

/// What kind of process a peer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// A volume client (library user: NBD, fio engine, bench).
    Client,
    /// A chunkserver.
    ChunkServer,
    /// A metadata server.
    Mds,
    /// The operator CLI.
    Cli,
    /// Tests and benchmarks of the transport itself.
    Tool,
}

/// Who a peer says it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Kind of process.
    pub role: Role,
    /// Chunkserver id when the peer is a registered chunkserver.
    pub chunkserver: Option<ChunkServerId>,
    /// Free-form instance name for logs (host:pid, mds name).
    pub name: String,
    /// Cluster the peer belongs to (empty before registration).
    pub cluster: String,
}

/// The dialler's hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version of the dialler (also in the frame header; repeated so the
    /// acceptor can answer a mismatch in a reply the dialler understands).
    pub version: u16,
    /// Features the dialler offers.
    pub features: Features,
    /// The dialler's identity.
    pub identity: Identity,
    /// The dialler's UCX offer, when it offers UCX.
    pub ucx: Option<UcxOffer>,
}

/// What a side needs to send to the other over UCX: its worker address, and the token
/// that tags every active message meant for this connection (AM handlers are per worker,
/// so the receiver demultiplexes inbound messages to connections by this token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UcxOffer {
    /// `ucp_worker_get_address` blob.
    pub worker: Vec<u8>,
    /// Connection token chosen by the offering side.
    pub conn: u64,
}

/// The acceptor's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// Connection accepted.
    Accepted {
        /// Features both sides will use (intersection).
        features: Features,
        /// The acceptor's identity.
        identity: Identity,
        /// The acceptor's UCX offer, when it accepts UCX.
        ucx: Option<UcxOffer>,
    },
    /// Connection refused; the acceptor closes after sending this.
    Refused(HelloRefusal),
}

/// Why a hello was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum HelloRefusal {
    /// Protocol versions differ.
    #[error("protocol version mismatch: acceptor {ours}, dialler {theirs}")]
    VersionMismatch {
        /// The acceptor's version.
        ours: u16,
        /// The dialler's version.
        theirs: u16,
    },
    /// The dialler belongs to another cluster.
    #[error("wrong cluster: acceptor is {ours:?}, dialler says {theirs:?}")]
    WrongCluster {
        /// The acceptor's cluster.
        ours: String,
        /// The dialler's cluster.
        theirs: String,
    },
    /// The acceptor does not accept this role on this port.
    #[error("role {role:?} not accepted here")]
    RoleNotAccepted {
        /// The dialler's role.
        role: Role,
    },
    /// Authentication failed.
    #[error("authentication failed")]
    AuthFailed,
}

impl Rpc for Hello {
    const METHOD: Method = Method::Hello;
    type Reply = HelloReply;
}

/// Length of an authentication nonce and of an HMAC-SHA256 proof.
pub const AUTH_LEN: usize = 32;

/// Cluster authentication, first step: carried as the *payload* of the dialler's
/// [`Hello`] frame when it sets [`Features::AUTH`] (the payload keeps [`Hello`]'s
/// encoding unchanged for peers without a secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthChallenge {
    /// The dialler's fresh random nonce.
    pub nonce: [u8; AUTH_LEN],
}

/// Cluster authentication, second step: the payload of the acceptor's
/// [`HelloReply::Accepted`] frame when it authenticates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthAnswer {
    /// The acceptor's fresh random nonce.
    pub nonce: [u8; AUTH_LEN],
    /// The acceptor's HMAC over the hello transcript and both nonces.
    pub proof: [u8; AUTH_LEN],
}

/// Cluster authentication, third step: the dialler's proof over the same transcript,
/// sent only after it verified the acceptor's. No request is served before the acceptor
/// answers it with [`HelloVerdict::Accepted`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloProof {
    /// The dialler's HMAC over the hello transcript and both nonces.
    pub proof: [u8; AUTH_LEN],
}

/// The acceptor's answer to [`HelloProof`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloVerdict {
    /// The dialler is authenticated; the connection is open.
    Accepted,
    /// The proof did not verify; the acceptor closes after sending this.
    Refused(HelloRefusal),
}

impl Rpc for HelloProof {
    const METHOD: Method = Method::HelloProof;
    type Reply = HelloVerdict;
}

/// Liveness probe; also the confirmation that a fresh UCX endpoint works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Echoed back.
    pub nonce: u64,
}

/// Answer to [`Ping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// The request's nonce.
    pub nonce: u64,
}

impl Rpc for Ping {
    const METHOD: Method = Method::Ping;
    type Reply = Pong;
}

/// Echo: the reply carries `tag` and the request's payload back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    /// Echoed back.
    pub tag: u64,
    /// Ask the receiver to wait this long before answering (to force out-of-order
    /// completion in tests). Bounded by the receiver.
    pub delay_us: u32,
}

/// Answer to [`Echo`]; the payload is the request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoReply {
    /// The request's tag.
    pub tag: u64,
}

impl Rpc for Echo {
    const METHOD: Method = Method::Echo;
    type Reply = EchoReply;
}

/// One-way notice: the sender stops using UCX on this connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UcxFallback {
    /// Why (logged by the receiver).
    pub reason: String,
}
