//! The engine under the real fio (/usr/bin/fio, the version its headers came from), with
//! the in-memory backend (`volume=mem:SIZE`).

mod common;

use common::{fio, job, num, terse};

const SIZE_KB: f64 = 8192.0;

/// Random 4k writes over 8 MiB, then fio's crc32c verify pass reads them all back.
fn randwrite_verify(iodepth: u32) {
    let depth = format!("--iodepth={iodepth}");
    let run = fio(&job(
        "rwv",
        &[
            "--volume=mem:64m",
            "--rw=randwrite",
            "--bs=4k",
            "--size=8m",
            &depth,
            "--verify=crc32c",
            "--do_verify=1",
            "--minimal",
        ],
    ));
    assert_eq!(run.code, Some(0), "{run:?}");
    let jobs = run.terse_jobs();
    assert_eq!(jobs.len(), 1, "{run:?}");
    let j = &jobs[0];
    assert_eq!(num(j, terse::ERROR), 0.0, "{j:?}");
    assert_eq!(num(j, terse::WRITE + terse::KB), SIZE_KB, "{j:?}");
    // the verify pass read every block back and found every checksum good (err=0)
    assert_eq!(num(j, terse::READ + terse::KB), SIZE_KB, "{j:?}");
    eprintln!(
        "iodepth {iodepth}: write {} IOPS, verify read {} IOPS (mem backend, debug build)",
        num(j, terse::WRITE + terse::IOPS),
        num(j, terse::READ + terse::IOPS)
    );
}

#[test]
fn randwrite_verify_crc32c_at_iodepth_1() {
    randwrite_verify(1);
}

#[test]
fn randwrite_verify_crc32c_at_iodepth_32() {
    randwrite_verify(32);
}

#[test]
fn verify_catches_data_that_was_never_written() {
    // The negative control of the verify tests: verifying a fresh (all-zero) volume must
    // fail with fio's EILSEQ, so the passing runs above really checked what was read.
    let run = fio(&job(
        "neg",
        &[
            "--volume=mem:8m",
            "--rw=write",
            "--bs=4k",
            "--size=1m",
            "--verify=crc32c",
            "--verify_only",
            "--minimal",
        ],
    ));
    assert_ne!(run.code, Some(0), "{run:?}");
    let jobs = run.terse_jobs();
    assert_eq!(jobs.len(), 1, "{run:?}");
    assert_eq!(
        num(&jobs[0], terse::ERROR),
        84.0,
        "EILSEQ expected: {run:?}"
    );
    assert!(run.stderr.contains("verify: bad magic header"), "{run:?}");
}

#[test]
fn randread_of_a_fresh_volume_reads_everything() {
    let run = fio(&job(
        "rr",
        &[
            "--volume=mem:16m",
            "--rw=randread",
            "--bs=16k",
            "--iodepth=8",
            "--minimal",
        ],
    ));
    assert_eq!(run.code, Some(0), "{run:?}");
    let jobs = run.terse_jobs();
    assert_eq!(jobs.len(), 1, "{run:?}");
    // no size given: fio reads the whole volume, whose size the engine reported in setup
    assert_eq!(num(&jobs[0], terse::ERROR), 0.0);
    assert_eq!(
        num(&jobs[0], terse::READ + terse::KB),
        16384.0,
        "{:?}",
        jobs[0]
    );
}

#[test]
fn trim_job_completes() {
    let run = fio(&job(
        "trim",
        &[
            "--volume=mem:16m",
            "--rw=randtrim",
            "--bs=64k",
            "--iodepth=4",
            "--size=8m",
            "--terse-version=4",
            "--minimal",
        ],
    ));
    assert_eq!(run.code, Some(0), "{run:?}");
    let jobs = run.terse_jobs();
    assert_eq!(jobs.len(), 1, "{run:?}");
    assert_eq!(num(&jobs[0], terse::ERROR), 0.0);
    assert_eq!(
        num(&jobs[0], terse::TRIM + terse::KB),
        SIZE_KB,
        "{:?}",
        jobs[0]
    );
}

#[test]
fn threads_and_busy_poll_run_two_jobs() {
    // --thread: jobs share the process (no fork); each gets its own engine from init.
    // --fsync=8 adds DDIR_SYNC ops (the backend's flush) between the writes.
    let run = fio(&job(
        "thr",
        &[
            "--volume=mem:8m",
            "--busy_poll=1",
            "--runtime_threads=2",
            "--thread",
            "--numjobs=2",
            "--rw=randwrite",
            "--bs=4k",
            "--iodepth=16",
            "--fsync=8",
            "--verify=crc32c",
            "--minimal",
        ],
    ));
    assert_eq!(run.code, Some(0), "{run:?}");
    let jobs = run.terse_jobs();
    assert_eq!(jobs.len(), 2, "{run:?}");
    for j in &jobs {
        assert_eq!(num(j, terse::ERROR), 0.0, "{j:?}");
        assert_eq!(num(j, terse::WRITE + terse::KB), SIZE_KB, "{j:?}");
        assert_eq!(num(j, terse::READ + terse::KB), SIZE_KB, "{j:?}");
    }
}

#[test]
fn bad_option_values_are_clean_fio_errors() {
    let cases: [(&str, &str); 4] = [
        // refused by the engine in setup (fio's parser does not check a stored
        // string against its listed values), with the engine's message
        ("--transport=bogus", "fio: basalt: bad transport \"bogus\""),
        (
            "--volume=mem:lots",
            "fio: basalt: bad size in volume=mem:lots",
        ),
        (
            "--volume=vol1",
            "volume vol1: client configuration: no MDS addresses",
        ),
        // refused by fio's option parser (minval)
        ("--runtime_threads=0", "failed parsing runtime_threads=0"),
    ];
    for (bad, expect) in cases {
        let mut rest = vec!["--rw=read", "--size=1m", "--minimal"];
        if !bad.starts_with("--volume") {
            rest.insert(0, "--volume=mem:1m");
        }
        rest.insert(0, bad);
        let run = fio(&job("bad", &rest));
        assert_ne!(run.code, Some(0), "{bad}: {run:?}");
        assert!(run.code.is_some(), "{bad}: fio died from a signal: {run:?}");
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(all.contains(expect), "{bad}: no {expect:?} in {all}");
        // fio may still print an (empty) terse line for a job whose setup failed: no I/O
        for j in run.terse_jobs() {
            assert_eq!(num(&j, terse::READ + terse::KB), 0.0, "{bad}: {j:?}");
            assert_eq!(num(&j, terse::WRITE + terse::KB), 0.0, "{bad}: {j:?}");
        }
    }
}

#[test]
fn named_volume_without_a_reachable_mds_is_refused() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let run = fio(&job(
        "named",
        &[
            "--mds=127.0.0.1:1",
            "--volume=vol1",
            "--rw=read",
            "--minimal",
        ],
    ));
    assert_ne!(run.code, Some(0), "{run:?}");
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("volume vol1: no MDS answered"), "{all}");
}

#[test]
fn enghelp_lists_the_engine_options() {
    let so = common::engine_so();
    let run = fio(&[format!("--enghelp={}", so.display())]);
    assert_eq!(run.code, Some(0), "{run:?}");
    for opt in ["mds", "volume", "transport", "busy_poll", "runtime_threads"] {
        assert!(
            run.stdout.lines().any(|l| l.trim_start().starts_with(opt)),
            "{opt} missing in {}",
            run.stdout
        );
    }
}
