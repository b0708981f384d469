//! The conformance suite over plain TCP.
basalt_transport::conformance_suite!(basalt_transport::testing::conformance::TcpBackend::plain());
