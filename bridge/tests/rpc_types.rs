//! The daemon's JSON-RPC types are defined once, in Rust, and exported to
//! TypeScript with ts-rs into plugin/src/rpc/. This test fails when a
//! generated file differs from what is committed, byte for byte, or when a
//! file there no longer matches a type. Regenerate with
//! `VELLUM_WRITE_RPC_TYPES=1 cargo test -p vellum-bridge --test rpc_types`.

use std::path::{Path, PathBuf};

use ts_rs::{Config, TS};
use vellum_bridge::commands::Status;
use vellum_bridge::conflicts::{ConflictEntry, ConflictSides, SideText};
use vellum_bridge::daemon::events::{Event, OpEvent, PairStage, Provenance};
use vellum_bridge::daemon::rpc::{
    ApproveParams, CliParams, CliResult, DiffParams, DiffResult, Hello, InviteParams,
    KeyExportParams, LogParams, QuarantineParams, ResolveParams, RestoreParams, RollbackParams,
    RpcError, ShowParams, SidesParams, TreeParams, VaultSet,
};
use vellum_bridge::history::{DiffEntry, FileInfo, LogEntry, ShowInfo, Tree};
use vellum_bridge::invite::InviteInfo;
use vellum_bridge::peers::{NetStatus, PeerEntry};
use vellum_bridge::quarantine::{Change, Held, HeldFile, Source};
use vellum_bridge::recovery::Exported;
use vellum_bridge::rewrite::{Preview, PreviewEntry, WriteReport};
use vellum_bridge::settings::{LogSettings, Settings};
use vellum_bridge::vault::Stale;
use vellum_bridge::vault_config::VaultInfo;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin/src/rpc")
}

/// The file name and text of `T`'s declaration.
fn generated<T: TS + 'static>(cfg: &Config) -> (String, String) {
    (
        format!("{}.ts", T::name(cfg)),
        T::export_to_string(cfg).expect("ts-rs exports the type"),
    )
}

#[test]
fn generated_typescript_matches_the_committed_files() {
    // Every 64-bit value in these types is a count, a seq or a lamport,
    // bounded by the number of ops: numbers, as in the CLI's JSON (hlc
    // values, which pass 2^53, are strings in Rust already).
    let cfg = Config::default().with_large_int("number");
    let files = [
        generated::<Status>(&cfg),
        generated::<Stale>(&cfg),
        generated::<LogParams>(&cfg),
        generated::<LogEntry>(&cfg),
        generated::<ConflictEntry>(&cfg),
        generated::<Settings>(&cfg),
        generated::<LogSettings>(&cfg),
        generated::<CliParams>(&cfg),
        generated::<CliResult>(&cfg),
        generated::<RpcError>(&cfg),
        generated::<QuarantineParams>(&cfg),
        generated::<Held>(&cfg),
        generated::<HeldFile>(&cfg),
        generated::<Source>(&cfg),
        generated::<Change>(&cfg),
        generated::<WriteReport>(&cfg),
        generated::<ShowParams>(&cfg),
        generated::<ShowInfo>(&cfg),
        generated::<DiffParams>(&cfg),
        generated::<DiffResult>(&cfg),
        generated::<DiffEntry>(&cfg),
        generated::<TreeParams>(&cfg),
        generated::<Tree>(&cfg),
        generated::<FileInfo>(&cfg),
        generated::<RestoreParams>(&cfg),
        generated::<RollbackParams>(&cfg),
        generated::<Preview>(&cfg),
        generated::<PreviewEntry>(&cfg),
        generated::<SidesParams>(&cfg),
        generated::<ConflictSides>(&cfg),
        generated::<SideText>(&cfg),
        generated::<ResolveParams>(&cfg),
        generated::<Event>(&cfg),
        generated::<OpEvent>(&cfg),
        generated::<Provenance>(&cfg),
        generated::<PairStage>(&cfg),
        generated::<NetStatus>(&cfg),
        generated::<PeerEntry>(&cfg),
        generated::<InviteInfo>(&cfg),
        generated::<InviteParams>(&cfg),
        generated::<ApproveParams>(&cfg),
        generated::<KeyExportParams>(&cfg),
        generated::<Exported>(&cfg),
        generated::<Hello>(&cfg),
        generated::<VaultInfo>(&cfg),
        generated::<VaultSet>(&cfg),
    ];
    let dir = dir();
    if std::env::var_os("VELLUM_WRITE_RPC_TYPES").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in &files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
    for (name, text) in &files {
        let committed = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| {
            panic!("plugin/src/rpc/{name} is missing ({e}); regenerate it (see this file's header)")
        });
        assert_eq!(
            &committed, text,
            "plugin/src/rpc/{name} differs from the Rust type; regenerate it (see this file's header)"
        );
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            files.iter().any(|(n, _)| *n == name),
            "plugin/src/rpc/{name} matches no RPC type: remove it"
        );
    }
}
