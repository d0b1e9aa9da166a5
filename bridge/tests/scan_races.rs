//! DESIGN §12: a file deleted or replaced while the scanner reads it gets a
//! warning and is read again at the next scan; the scan never fails for it
//! and records nothing half-read. Real processes racing on a real folder.

mod common;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Env;

#[test]
fn files_deleted_or_replaced_while_being_read_never_fail_a_scan() {
    let env = Env::init();
    env.write("steady.md", "steady\n");
    env.scan();
    let stop = Arc::new(AtomicBool::new(false));
    let flapper = {
        let (vault, stop) = (env.vault.clone(), stop.clone());
        std::thread::spawn(move || {
            // A 2 MiB binary is hashed, then streamed into chunks: two reads
            // with room between them for the file to go or change.
            let mut round = 0u32;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let bytes: Vec<u8> = (0..2u32 << 20)
                    .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(round) >> 11) as u8)
                    .collect();
                std::fs::write(vault.join("flap.bin"), &bytes).unwrap();
                std::fs::write(vault.join("flap.md"), format!("round {round}\n")).unwrap();
                std::thread::sleep(Duration::from_millis(3));
                let _ = std::fs::remove_file(vault.join("flap.bin"));
                let _ = std::fs::remove_file(vault.join("flap.md"));
                std::thread::sleep(Duration::from_millis(2));
            }
            round
        })
    };
    let until = Instant::now() + Duration::from_secs(4);
    let mut scans = 0;
    let mut warned = 0;
    while Instant::now() < until {
        let out = env.run(&["scan"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "a scan failed: {err}");
        assert!(!err.contains("panicked"), "{err}");
        warned += usize::from(err.contains("read again at the next scan"));
        scans += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = flapper.join().unwrap();
    assert!(rounds > 10 && scans > 3, "{rounds} rounds, {scans} scans");
    println!("{scans} scans over {rounds} rounds; {warned} saw a file change mid-read");

    // Settled: one last version of each stays; the head matches the disk.
    let last = b"the last version\n".repeat(70_000);
    env.write("flap.bin", &last);
    env.scan();
    assert_eq!(env.ok(&["show", "flap.bin"]), last);
    assert_eq!(env.ok(&["show", "steady.md"]), b"steady\n");
    assert!(env.run(&["show", "flap.md"]).status.code() == Some(1));
    env.ok(&["verify"]);
}
