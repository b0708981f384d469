//! The conformance suite over the in-memory transport.
basalt_transport::conformance_suite!(basalt_transport::testing::conformance::MemBackend::plain());
