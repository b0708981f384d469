//! The conformance suite over TCP with cluster authentication on every endpoint (the
//! killed-peer case's child process builds its server from the same fixed secret).
basalt_transport::conformance_suite!(
    basalt_transport::testing::conformance::TcpBackend::with_auth(
        basalt_transport::ClusterSecret::from_bytes(vec![0x5a; 32]).expect("valid secret")
    )
);
