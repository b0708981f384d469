//! `basalt-bench baseline`: what the hardware and the OS give without Basalt — raw TCP
//! on loopback, raw disk I/O, and UCX's own `ucx_perftest`. Other subcommands measure the
//! same baselines in their own run and report their figures as ratios to them.

pub mod disk;
pub mod disk_qd;
pub mod tcp;
pub mod ucx_perftest;
