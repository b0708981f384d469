//! The conformance suite over TCP upgraded to UCX (forced) with `UCX_TLS=sm,tcp` and
//! shared memory allowed under peer error handling.
#![cfg(feature = "ucx")]

basalt_transport::conformance_suite!(
    basalt_transport::testing::conformance::TcpBackend::with_fast_path(
        std::sync::Arc::new(
            basalt_transport::ucx::UcxProvider::new(basalt_transport::ucx::UcxConfig {
                mm_error_handling: true,
                ..basalt_transport::ucx::UcxConfig::loopback("sm,tcp")
            })
            .expect("UCX provider")
        ),
        basalt_transport::PathKind::FastPath("ucx"),
    )
);
