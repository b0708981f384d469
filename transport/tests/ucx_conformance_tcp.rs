//! The conformance suite over TCP upgraded to UCX (forced) with `UCX_TLS=tcp`.
#![cfg(feature = "ucx")]

basalt_transport::conformance_suite!(
    basalt_transport::testing::conformance::TcpBackend::with_fast_path(
        std::sync::Arc::new(
            basalt_transport::ucx::UcxProvider::new(basalt_transport::ucx::UcxConfig::loopback(
                "tcp"
            ))
            .expect("UCX provider")
        ),
        basalt_transport::PathKind::FastPath("ucx"),
    )
);
