//! Which path a connection's traffic takes.

use std::fmt;

/// The path frames travel on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// Plain TCP (the control path of every network connection, and its fallback).
    Tcp,
    /// The in-process transport ([`crate::mem`]).
    Mem,
    /// A fast path negotiated in the hello; the provider's name (`"ucx"`).
    FastPath(&'static str),
}

impl fmt::Display for PathKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathKind::Tcp => f.write_str("tcp"),
            PathKind::Mem => f.write_str("mem"),
            PathKind::FastPath(name) => f.write_str(name),
        }
    }
}
