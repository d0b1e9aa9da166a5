//! vellum-bridge: everything behind the `vellum` binary, as a library so
//! tests and benchmarks drive the same code.

pub mod cli;
pub mod clone;
pub mod commands;
pub mod conflicts;
pub mod daemon;
pub mod disk;
pub mod error;
pub mod history;
pub mod home;
pub mod ignore_rules;
pub mod invite;
pub mod join;
pub mod materialise;
pub mod peers;
pub mod quarantine;
pub mod recovery;
pub mod relay;
pub mod rewrite;
pub mod scan;
pub mod service;
pub mod settings;
pub mod transfer;
pub mod vault;
pub mod vault_config;
pub mod verify;
