//! Devices of one vault in memory, for tests of concurrent histories: each
//! has its own journal and key, writes ops with a shared logical clock, and
//! syncs with another by admitting the ops it lacks.

#![allow(dead_code)]

use std::ops::ControlFlow;

use vellum_journal::entropy::SeededEntropy;
use vellum_journal::keys::{EpochKey, Keyring, SigningKey, device_id};
use vellum_journal::payload::{Action, Body, MERGE_VERSION, Payload};
use vellum_journal::replay::{FileState, VaultState, make_patch};
use vellum_journal::store::{Durability, MemStore};
use vellum_journal::{Admission, ContentHash, DeviceId, FileId, Journal, OpId, VaultId};
use vellum_snapshots::TimeMachine;
use vellum_snapshots::contents::body_of;

pub const T0: u64 = 1_800_000_000_000;

pub fn signer(d: usize) -> SigningKey {
    SigningKey::from_bytes(&[d as u8 + 1; 32])
}

pub fn device(d: usize) -> DeviceId {
    device_id(&signer(d))
}

/// Device `d`'s keys: the vault's first key, and its identity to open
/// keys sealed to it.
pub fn keyring(d: usize) -> Keyring {
    Keyring::new(EpochKey([8; 32])).with_identity(&signer(d))
}

pub struct Devices {
    pub journals: Vec<Journal<MemStore>>,
    /// The key each journal's device signs with (by `signer` index).
    pub signers: Vec<usize>,
    pub entropy: SeededEntropy,
    pub clock: u64,
}

impl Devices {
    /// `n` devices of a new vault: device 0 creates it and adds the others
    /// as full members, then each of them holds everything device 0 has.
    pub fn new(n: usize, seed: u64) -> Devices {
        let mut entropy = SeededEntropy::new(seed);
        let mut first = Journal::create(
            MemStore::new(),
            VaultId([5; 16]),
            &signer(0),
            keyring(0),
            &mut entropy,
            T0,
            MERGE_VERSION,
        )
        .unwrap();
        for d in 1..n {
            first
                .write(
                    &signer(0),
                    vec![vellum_journal::Write::Add {
                        device: device_id(&signer(d)),
                        role: vellum_journal::control::Role::Full,
                        name: format!("device {d}"),
                    }],
                    &mut entropy,
                    T0 + 1,
                )
                .map(|ids| ids[0])
                .unwrap();
        }
        TimeMachine::catch_up(&first).unwrap();
        let mut journals = vec![first];
        for d in 1..n {
            let mut j = journals[0]
                .empty_replica_keyed(MemStore::new(), keyring(d))
                .unwrap();
            sync_into(&journals[0], &mut j);
            journals.push(j);
        }
        Devices {
            signers: (0..n).collect(),
            journals,
            entropy,
            clock: T0 + 10,
        }
    }

    pub fn head(&self, device: usize) -> VaultState {
        TimeMachine::load_head(&self.journals[device]).unwrap()
    }

    /// The live file at `path` on `device`.
    pub fn file_at(&self, device: usize, path: &str) -> Option<(FileId, FileState)> {
        let head = self.head(device);
        head.file_at(path).map(|(id, f)| (id, f.clone()))
    }

    /// A live file's text on `device` (`None` if gone or binary).
    pub fn text(&self, device: usize, file: FileId) -> Option<String> {
        let j = &self.journals[device];
        let head = TimeMachine::load_head(j).unwrap();
        let f = head.files.get(&file).filter(|f| f.exists)?;
        match body_of(j, file, f.hash, j.admitted()).unwrap() {
            Body::Text(t) => Some(t),
            Body::Blob(_) => None,
        }
    }

    pub fn text_at(&self, device: usize, path: &str) -> Option<String> {
        let (id, _) = self.file_at(device, path)?;
        self.text(device, id)
    }

    /// `device` records one op and replays it; its id.
    pub fn write(&mut self, device: usize, action: Action) -> OpId {
        self.clock += 1;
        let j = &mut self.journals[device];
        let ids = j
            .append(
                &signer(self.signers[device]),
                vec![Payload::new(action)],
                &mut self.entropy,
                self.clock,
                Durability::Durable,
            )
            .unwrap();
        TimeMachine::catch_up(j).unwrap();
        ids[0]
    }

    pub fn create(&mut self, device: usize, path: &str, text: &str) -> FileId {
        self.write(
            device,
            Action::Create {
                path: path.into(),
                mtime_ms: 0,
                body: Body::Text(text.into()),
            },
        )
    }

    /// `device` changes `file`'s text from what it has to `new`, as an Edit.
    pub fn edit(&mut self, device: usize, file: FileId, new: &str) -> Option<OpId> {
        let old = self.text(device, file)?;
        if old == new {
            return None;
        }
        Some(self.write(device, edit(file, &old, new)))
    }

    /// A copy of device `of` as it is now, signing with the same key: a
    /// device restored later from this backup. Its index.
    pub fn backup(&mut self, of: usize) -> usize {
        let mut j = self.journals[of].empty_replica(MemStore::new()).unwrap();
        sync_into(&self.journals[of], &mut j);
        self.journals.push(j);
        self.signers.push(self.signers[of]);
        self.journals.len() - 1
    }

    /// Device `device` comes back from backup `from` (an index from
    /// [`Devices::backup`], which stays as it is for another restore).
    pub fn restore(&mut self, device: usize, from: usize) {
        let mut j = self.journals[from].empty_replica(MemStore::new()).unwrap();
        sync_into(&self.journals[from], &mut j);
        self.journals[device] = j;
    }

    /// Device `by` adds the key `signer(key)` as a full member; a new
    /// device using that key. Its index.
    pub fn add_device(&mut self, by: usize, key: usize) -> usize {
        self.clock += 1;
        let j = &mut self.journals[by];
        j.write(
            &signer(self.signers[by]),
            vec![vellum_journal::Write::Add {
                device: device(key),
                role: vellum_journal::control::Role::Full,
                name: format!("device {key}"),
            }],
            &mut self.entropy,
            self.clock,
        )
        .map(|ids| ids[0])
        .unwrap();
        TimeMachine::catch_up(j).unwrap();
        // It holds no key of its own: it opens the one sealed to it.
        let mut fresh = j
            .empty_replica_keyed(
                MemStore::new(),
                Keyring::empty().with_identity(&signer(key)),
            )
            .unwrap();
        sync_into(&self.journals[by], &mut fresh);
        self.journals.push(fresh);
        self.signers.push(key);
        self.journals.len() - 1
    }

    /// `to` admits every op `from` has, and replays.
    pub fn sync(&mut self, from: usize, to: usize) {
        if from != to {
            let (src, dst) = pair(&mut self.journals, from, to);
            sync_into(src, dst);
        }
    }

    /// Every device gets every op.
    pub fn sync_all(&mut self) {
        let n = self.journals.len();
        for _ in 0..2 {
            for from in 0..n {
                for to in 0..n {
                    self.sync(from, to);
                }
            }
        }
    }
}

/// The Edit that turns `old` into `new`.
pub fn edit(file: FileId, old: &str, new: &str) -> Action {
    Action::Edit {
        file,
        base: ContentHash::of(old.as_bytes()),
        patch: make_patch(old, new).unwrap(),
        result: ContentHash::of(new.as_bytes()),
        result_size: new.len() as u64,
        mtime_ms: 0,
    }
}

fn pair<T>(v: &mut [T], a: usize, b: usize) -> (&T, &mut T) {
    assert_ne!(a, b);
    if a < b {
        let (x, y) = v.split_at_mut(b);
        (&x[a], &mut y[0])
    } else {
        let (x, y) = v.split_at_mut(a);
        (&y[0], &mut x[b])
    }
}

/// `to` admits, in total order, every op of `from` it lacks, and replays.
pub fn sync_into(from: &Journal<MemStore>, to: &mut Journal<MemStore>) {
    let mut ops = Vec::new();
    from.for_each_op_in_order(None, &mut |key, seq, env| {
        // By id: a replica without a fork cannot tell by seq.
        let _ = seq;
        if !to.holds(&key.id)? {
            ops.push(env.into_bytes());
        }
        Ok(ControlFlow::Continue(()))
    })
    .unwrap();
    for v in to.admit_batch(ops, T0 + 1_000_000).unwrap() {
        assert!(
            matches!(v, Ok(Admission::Admitted(_) | Admission::Duplicate(_))),
            "{v:?}"
        );
    }
    TimeMachine::catch_up(to).unwrap();
}

/// What must be equal between devices that hold the same ops.
pub fn comparable(s: &VaultState) -> impl PartialEq + std::fmt::Debug {
    (
        s.applied_vv(),
        s.files.clone(),
        s.paths.clone(),
        s.open_conflicts,
        s.aliases.clone(),
    )
}
