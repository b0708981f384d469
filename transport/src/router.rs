//! Server-side dispatch: a typed table from method to handler.
//!
//! A handler gets the decoded request, the request payload, the frame's group id and a
//! [`RequestContext`]; it answers `(reply, reply payload)`. Every request runs as its own
//! task, so replies complete in any order.

use crate::path::PathKind;
use basalt_proto::codec;
use basalt_proto::hello::{Echo, EchoReply, Identity};
use basalt_proto::ids::GroupId;
use basalt_proto::method::RemoteError;
use basalt_proto::{Method, Rpc};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

/// Longest delay an [`Echo`] request may ask of [`Router::echo`].
pub const MAX_ECHO_DELAY: Duration = Duration::from_secs(10);

/// A message sent without expecting an answer.
pub trait OneWay: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Its method number.
    const METHOD: Method;
}

impl OneWay for basalt_proto::hello::UcxFallback {
    const METHOD: Method = Method::UcxFallback;
}

/// What a handler knows about the request besides its message.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The peer's identity from its hello.
    pub peer: Arc<Identity>,
    /// The peer's address as the transport sees it (`ip:port`, or an in-memory name).
    pub peer_addr: Arc<str>,
    /// The path the request arrived on.
    pub path: PathKind,
    /// The connection's process-local id (for logs).
    pub conn_id: u64,
}

pub(crate) type HandlerResult = Result<(Vec<u8>, Bytes), RemoteError>;
type ErasedRpc = Arc<
    dyn Fn(Bytes, Bytes, GroupId, RequestContext) -> BoxFuture<'static, HandlerResult>
        + Send
        + Sync,
>;
type ErasedOneWay =
    Arc<dyn Fn(Bytes, Bytes, GroupId, RequestContext) -> BoxFuture<'static, ()> + Send + Sync>;

#[derive(Clone)]
pub(crate) enum Route {
    Rpc(ErasedRpc),
    OneWay(ErasedOneWay),
}

/// Method table of a server (or of a dialler that also answers requests).
#[derive(Clone, Default)]
pub struct Router {
    routes: HashMap<u16, Route>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut methods: Vec<_> = self.routes.keys().collect();
        methods.sort();
        f.debug_struct("Router").field("methods", &methods).finish()
    }
}

impl Router {
    /// An empty table (every request answered with `RemoteError::NoHandler`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Handle requests of type `R`. A later route for the same method replaces an earlier one.
    pub fn route<R, F, Fut>(mut self, handler: F) -> Self
    where
        R: Rpc,
        F: Fn(R, Bytes, GroupId, RequestContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = (R::Reply, Bytes)> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let method = R::METHOD as u16;
        let erased: ErasedRpc = Arc::new(move |head, payload, group, cx| {
            let handler = handler.clone();
            async move {
                let req: R = codec::decode(&head).map_err(|e| RemoteError::BadRequest {
                    method,
                    reason: e.to_string(),
                })?;
                let (reply, payload) = AssertUnwindSafe(handler(req, payload, group, cx))
                    .catch_unwind()
                    .await
                    .map_err(|_| RemoteError::Internal {
                        reason: format!("handler of method {method} panicked"),
                    })?;
                let head = codec::encode(&reply).map_err(|e| RemoteError::Internal {
                    reason: e.to_string(),
                })?;
                Ok((head, payload))
            }
            .boxed()
        });
        self.routes.insert(method, Route::Rpc(erased));
        self
    }

    /// Handle one-way messages of type `M`. Undecodable messages are logged and dropped.
    pub fn oneway<M, F, Fut>(mut self, handler: F) -> Self
    where
        M: OneWay,
        F: Fn(M, Bytes, GroupId, RequestContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: ErasedOneWay = Arc::new(move |head, payload, group, cx| {
            let handler = handler.clone();
            async move {
                match codec::decode::<M>(&head) {
                    Ok(msg) => {
                        if AssertUnwindSafe(handler(msg, payload, group, cx))
                            .catch_unwind()
                            .await
                            .is_err()
                        {
                            tracing::error!(method = M::METHOD.name(), "one-way handler panicked");
                        }
                    }
                    Err(e) => tracing::warn!(
                        method = M::METHOD.name(),
                        error = %e,
                        "undecodable one-way message dropped"
                    ),
                }
            }
            .boxed()
        });
        self.routes.insert(M::METHOD as u16, Route::OneWay(erased));
        self
    }

    /// Answer [`Echo`] (tag and payload back, after the requested delay, capped at
    /// [`MAX_ECHO_DELAY`]). Diagnostics, benchmarks and the conformance suite use it.
    pub fn echo(self) -> Self {
        self.route::<Echo, _, _>(|req, payload, _group, _cx| async move {
            if req.delay_us > 0 {
                let d = Duration::from_micros(req.delay_us as u64).min(MAX_ECHO_DELAY);
                tokio::time::sleep(d).await;
            }
            (EchoReply { tag: req.tag }, payload)
        })
    }

    pub(crate) fn get(&self, method: u16) -> Option<&Route> {
        self.routes.get(&method)
    }
}
