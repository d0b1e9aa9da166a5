//! A running `vellum serve` for tests, and polling with a bound.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Env;

/// A running `vellum serve`, killed and waited for on drop. Its stderr is
/// read as it comes (a pipe nobody reads would stall its log).
pub struct Daemon {
    pub child: Child,
    pub socket: PathBuf,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    /// A daemon that does not touch the network.
    pub fn start(env: &Env, extra: &[&str]) -> Daemon {
        Daemon::start_logging(env, extra, None)
    }

    /// With `level`, `VELLUM_LOG` overrides the vault's log settings.
    pub fn start_logging(env: &Env, extra: &[&str], level: Option<&str>) -> Daemon {
        let mut args = vec!["--offline"];
        args.extend_from_slice(extra);
        Daemon::serve(env, &args, level)
    }

    /// A daemon that syncs on loopback only (mDNS off), on a port the OS
    /// picks; `extra` adds `--peer` addresses and the like.
    pub fn start_net(env: &Env, extra: &[&str]) -> Daemon {
        let mut args = vec!["--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"];
        args.extend_from_slice(extra);
        Daemon::serve(env, &args, Some("info"))
    }

    pub fn serve(env: &Env, extra: &[&str], level: Option<&str>) -> Daemon {
        let mut args = vec!["serve"];
        args.extend_from_slice(extra);
        let mut cmd = env.cmd(&args);
        if let Some(l) = level {
            // The storage engine's recovery lines would crowd out the
            // daemon's own in a failing test's output. `VELLUM_TEST_LOG`
            // (a filter) says more when a test is being looked into.
            let filter = std::env::var("VELLUM_TEST_LOG").unwrap_or_else(|_| l.to_string());
            cmd.env("VELLUM_LOG", format!("{filter},fjall=warn,lsm_tree=warn"));
        }
        Daemon::spawn(cmd, env.vault.join(".vellum/daemon.sock"))
    }

    /// Runs `cmd`, a `vellum serve`, and waits for `socket`.
    pub fn spawn(mut cmd: Command, socket: PathBuf) -> Daemon {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vellum serve");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let d = Daemon {
            child,
            socket,
            stderr,
            reader: Some(reader),
        };
        d.wait_for_socket();
        d
    }

    pub fn wait_for_socket(&self) {
        let until = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&self.socket).is_err() {
            assert!(Instant::now() < until, "the daemon never opened its socket");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Sends SIGTERM and waits (bounded) for the exit; its status and stderr.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let st = Command::new("kill")
            .args(["-TERM", &self.pid()])
            .status()
            .unwrap();
        assert!(st.success());
        let status = wait_bounded(&mut self.child, Duration::from_secs(20));
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        let err = self.stderr.lock().unwrap().clone();
        (status, err)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what its daemons said: a timeout alone does
        // not tell which step stalled.
        if std::thread::panicking() {
            if let Some(r) = self.reader.take() {
                let _ = r.join();
            }
            let log = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("--- log of the daemon at {}:", self.socket.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

pub fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < until, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `check` every 50 ms until it holds, for at most 20 s.
pub fn eventually(what: &str, check: impl FnMut() -> bool) {
    eventually_within(what, Duration::from_secs(20), check);
}

/// Polls `check` every 50 ms until it gives `Ok`, for at most 20 s; a
/// timeout shows what the last `Err` said.
pub fn eventually_explained(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        match check() {
            Ok(()) => return,
            Err(why) => assert!(
                Instant::now() < until,
                "timed out waiting for {what}: {why}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `check` every 50 ms until it holds, for at most `limit`.
pub fn eventually_within(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
