//! The one entry point that decides, once per process, which backend the pollers use.

use super::spdk::{self, SpdkOptions};
use super::sync::SyncBackend;
use super::uring::UringBackend;
use super::{BackendKind, IoBackend};
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// The backend asked for in the configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendChoice {
    /// SPDK if a controller is configured and it attaches, else io_uring if the kernel
    /// allows it, else sync.
    #[default]
    Auto,
    /// io_uring, or fail.
    Uring,
    /// Synchronous pread/pwrite.
    Sync,
    /// SPDK, or fail.
    Spdk,
}

/// Builds backend instances of the kind chosen by [`BackendFactory::probe`].
#[derive(Debug, Clone)]
pub struct BackendFactory {
    kind: BackendKind,
    spdk: SpdkOptions,
}

impl BackendFactory {
    /// Find out what works for `choice` (creating and dropping one test instance) and log
    /// the decision.
    pub fn probe(choice: BackendChoice, spdk_opts: &SpdkOptions) -> Result<Self> {
        let this = |kind| BackendFactory {
            kind,
            spdk: spdk_opts.clone(),
        };
        let kind = match choice {
            BackendChoice::Sync => BackendKind::Sync,
            BackendChoice::Uring => {
                UringBackend::new()?;
                BackendKind::Uring
            }
            BackendChoice::Spdk => {
                spdk::open(spdk_opts)?;
                BackendKind::Spdk
            }
            BackendChoice::Auto => {
                let spdk_res = if spdk_opts.transport_id.is_some() {
                    spdk::open(spdk_opts).map(|_| ())
                } else {
                    Err(crate::ChunkServerError::BackendUnavailable {
                        backend: "spdk",
                        reason: "no controller configured".into(),
                    })
                };
                match spdk_res {
                    Ok(()) => BackendKind::Spdk,
                    Err(spdk_err) => match UringBackend::new() {
                        Ok(_) => {
                            tracing::debug!(reason = %spdk_err, "not using SPDK");
                            BackendKind::Uring
                        }
                        Err(e) => {
                            tracing::warn!(reason = %e, "io_uring unusable, falling back to sync I/O");
                            BackendKind::Sync
                        }
                    },
                }
            }
        };
        tracing::info!(backend = kind.name(), ?choice, "I/O backend chosen");
        Ok(this(kind))
    }

    /// The chosen backend.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// A new instance (one per poller thread).
    pub fn create(&self) -> Result<Box<dyn IoBackend>> {
        Ok(match self.kind {
            BackendKind::Sync => Box::new(SyncBackend::new()),
            BackendKind::Uring => Box::new(UringBackend::new()?),
            BackendKind::Spdk => spdk::open(&self.spdk)?,
        })
    }
}
