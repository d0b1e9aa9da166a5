//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "vellum",
    version,
    about = "Peer-to-peer sync and time travel for Obsidian vaults"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// The vault folder (default: the nearest folder upward holding .vellum/)
    #[arg(long, global = true, env = "VELLUM_VAULT")]
    pub vault: Option<PathBuf>,
    /// Print one JSON document on stdout
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the deterministic sync simulator (the same as `vellum-sim`)
    Sim(vellum_simulations::cli::SimArgs),
    /// Make a folder a vault and record the files already in it
    Init {
        /// This device's name, shown to other devices
        #[arg(long)]
        name: Option<String>,
    },
    /// Make a new device of a vault in a new or empty folder (offline)
    Clone {
        /// The vault to clone
        src: PathBuf,
        /// The new device's folder
        dest: PathBuf,
        /// The new device's name, shown to other devices
        #[arg(long)]
        name: Option<String>,
    },
    /// Write ops (all, or those after a point) and their chunks to a file
    Export {
        /// Only ops after this point
        #[arg(long)]
        since: Option<String>,
        file: PathBuf,
    },
    /// Admit the ops of an export file and update the files on disk
    Import { file: PathBuf },
    /// Record every change on disk since the last scan
    Scan,
    /// Show the head, counts and journal size
    Status,
    /// List ops, newest first
    Log {
        /// Only ops on this path (or under this folder)
        #[arg(long)]
        path: Option<String>,
        /// Only ops by this device (id prefix)
        #[arg(long)]
        author: Option<String>,
        /// At most this many ops
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only ops older than this one (an op id from the log): the next
        /// page after it
        #[arg(long)]
        before: Option<String>,
    },
    /// Write a file's bytes as of a point to stdout
    Show {
        path: String,
        /// head, an op id, a time (2026-11-25, 15m, RFC 3339) or a vv: string
        #[arg(long, default_value = "head")]
        at: String,
        /// One side of the file's open conflict instead: base, current or incoming
        #[arg(long, conflicts_with = "at")]
        side: Option<String>,
        /// With --side: the conflict of this op (id prefix); default the newest
        #[arg(long, requires = "side")]
        op: Option<String>,
    },
    /// List open conflicts
    Conflicts,
    /// Close a file's conflicts with a chosen content (recorded as a Resolve op)
    Resolve {
        path: String,
        /// current, incoming, or a point (op id, time) whose version to keep
        #[arg(long, required_unless_present = "with", conflicts_with = "with")]
        take: Option<String>,
        /// Keep the bytes of this file (e.g. merged by hand)
        #[arg(long)]
        with: Option<PathBuf>,
    },
    /// Write the whole vault as of a point into a new or empty folder
    Checkout {
        #[arg(long)]
        at: String,
        dest: PathBuf,
    },
    /// Show what changed between two points
    Diff {
        #[arg(long)]
        from: String,
        #[arg(long, default_value = "head")]
        to: String,
        path: Option<String>,
    },
    /// Make one file as it was at a point (recorded as new ops)
    Restore {
        path: String,
        #[arg(long)]
        at: String,
    },
    /// Make the vault (or a folder) as it was at a point (recorded as new ops)
    Rollback {
        #[arg(long)]
        to: String,
        /// Only files under this folder
        #[arg(long)]
        path: Option<String>,
        /// Show what would change, and change nothing
        #[arg(long)]
        dry_run: bool,
        /// Go ahead even if many files would be deleted or emptied
        #[arg(long)]
        yes: bool,
    },
    /// Check signatures, chains, admission rules and replay
    Verify,
    /// Manage the vault's devices
    Member {
        #[command(subcommand)]
        action: MemberAction,
    },
    /// Write the vault's keys to a passphrase-protected file, or make a vault
    /// folder whose keys were lost a device again with such a file
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Review batches held back from the disk: mass deletes from another
    /// device, or a scan that found many files reverted or re-created
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
    },
    /// Keep the vault's journal and its files in step: record every save as
    /// it happens, and answer JSON-RPC on .vellum/daemon.sock (one daemon
    /// per vault; other vellum commands go through it while it runs)
    Serve {
        /// Also answer JSON-RPC on stdin/stdout, and stop at end of input
        #[arg(long)]
        stdio: bool,
        /// Wait this long after the last change on disk before recording
        #[arg(long, default_value_t = 100)]
        debounce_ms: u64,
        #[command(flatten)]
        net: NetArgs,
    },
    /// List the vault's other devices: connected now, last seen, and how
    /// many ops each lacks
    Peers,
    /// Invite a new device: print a one-time 8-digit code, a long code and
    /// its QR code (valid 10 minutes) for `vellum join`, then approve the
    /// device that uses it
    Invite {
        /// Approve the first device that proves the code, without asking
        /// (for scripts)
        #[arg(long)]
        yes: bool,
    },
    /// Make the folder given by --vault a new device of the vault whose
    /// invite code this is: pair, fetch the vault, write its files
    Join {
        /// The code `vellum invite` printed on the inviting device: its
        /// 8 digits (same network: found by mDNS), or the long code
        code: String,
        /// The folder already holds a copy of the vault: keep its files
        /// (identical ones collapse, different ones become conflicts)
        #[arg(long)]
        merge: bool,
        /// Do not ask to confirm the digits both devices show
        #[arg(long)]
        yes: bool,
        /// This device's name, shown to other devices
        #[arg(long)]
        name: Option<String>,
    },
    /// Run a relay for devices that cannot reach each other directly
    /// (on a host both can reach). It prints the addresses to put in each
    /// device's `relays`; it holds no vault and sees only encrypted bytes
    Relay {
        /// Listen on this libp2p address (repeatable); default: every
        /// interface, TCP and QUIC, port 4101
        #[arg(long, value_name = "ADDR")]
        listen: Vec<String>,
        /// The address devices reach this relay at, when it is not one of
        /// its interfaces' (a port forward, say) (repeatable)
        #[arg(long, value_name = "ADDR")]
        external: Vec<String>,
        /// Cut a relayed connection after this many minutes (the devices
        /// then connect again)
        #[arg(long, default_value_t = 60)]
        circuit_minutes: u64,
        /// Cut a relayed connection after it carried this many MiB each way
        #[arg(long, default_value_t = 1024)]
        circuit_mib: u64,
    },
    /// Run `vellum serve` for this vault in the background, at login, as a
    /// systemd user service (install), or stop doing so (uninstall)
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
}

/// How `vellum serve` uses the network (each overrides config.toml).
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct NetArgs {
    /// Do not sync over the network at all (the vault is still watched and
    /// served over RPC)
    #[arg(long)]
    pub offline: bool,
    /// Do not look for this vault's devices on the LAN by mDNS
    #[arg(long)]
    pub no_mdns: bool,
    /// Listen on this libp2p address instead of OS-assigned ports on
    /// every interface (repeatable), e.g. /ip4/0.0.0.0/tcp/4101
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<String>,
    /// Dial a device at this address, ending in /p2p/<peer id>
    /// (repeatable), as well as those in config.toml
    #[arg(long, value_name = "ADDR")]
    pub peer: Vec<String>,
    /// Reach devices beyond the LAN (relays, hole punching, DHT), as
    /// `internet = true` in config.toml does
    #[arg(long)]
    pub internet: bool,
    /// Use this relay (repeatable), ending in /p2p/<peer id>, as well as
    /// those in config.toml; implies --internet
    #[arg(long, value_name = "ADDR")]
    pub relay: Vec<String>,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum MemberAction {
    /// Remove a device from the vault: it can no longer connect, and a new
    /// key is made that it never gets, so it cannot read what is written
    /// from now on (what it could read before, it keeps)
    Remove {
        /// The device: its name, or its id or a prefix of it (`vellum peers`)
        device: String,
    },
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum KeyAction {
    /// Write the vault key and a new recovery identity to FILE, sealed
    /// under a passphrase (asked for, or the first line of stdin). Keep
    /// it apart from the vault: with the passphrase, it reads every note
    Export {
        /// The file to create, outside the vault
        file: PathBuf,
    },
    /// Make this vault folder (restored from a backup, say) a device again
    /// when its device keys are lost: a new identity, added by the recovery
    /// identity in FILE
    Import {
        /// A file written by `vellum key export`
        file: PathBuf,
        /// This device's name, shown to other devices
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum QuarantineAction {
    /// List the held batches and their files
    List,
    /// Let a batch reach the disk (a scan's changes are recorded)
    Accept {
        /// The batch id, or a prefix of it
        id: String,
    },
    /// Undo a batch: files come back (recorded as new ops); nothing the
    /// user wrote is dropped
    Reject {
        /// The batch id, or a prefix of it
        id: String,
    },
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceAction {
    /// Write and enable a systemd user unit for the vault
    Install,
    /// Stop, disable and remove the vault's unit
    Uninstall,
}

impl Cli {
    /// Makes every path argument absolute against `cwd`: for a command
    /// typed in one directory and run by the daemon in another.
    pub fn absolutize(&mut self, cwd: &std::path::Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = cwd.join(&*p);
            }
        };
        if let Some(v) = &mut self.global.vault {
            abs(v);
        }
        match &mut self.command {
            Command::Clone { src, dest, .. } => {
                abs(src);
                abs(dest);
            }
            Command::Export { file, .. } | Command::Import { file } => abs(file),
            Command::Resolve { with: Some(f), .. } => abs(f),
            Command::Checkout { dest, .. } => abs(dest),
            _ => {}
        }
    }
}

/// Prints a line on stdout for the commands that run on their own (`invite`,
/// `join`, `key`): a reader that went away (`vellum invite | head -3`) ends
/// the output quietly, and the command goes on.
pub fn print_line(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}
