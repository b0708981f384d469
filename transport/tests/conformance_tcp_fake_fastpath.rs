//! The conformance suite over TCP upgraded to the fake fast path.
basalt_transport::conformance_suite!(
    basalt_transport::testing::conformance::TcpBackend::with_fast_path(
        basalt_transport::testing::FakeFastPath::new(),
        basalt_transport::PathKind::FastPath("fake"),
    )
);
