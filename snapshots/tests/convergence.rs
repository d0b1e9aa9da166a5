//! Convergence with merges (DESIGN §4): three devices edit the same notes
//! concurrently and exchange ops in random causally consistent orders.
//! Once every device holds every op, all must have the same state and the
//! same bytes, incremental replay must equal replay from scratch, and no
//! line one device added may appear twice.

use std::ops::ControlFlow;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use vellum_journal::control::Control;
use vellum_journal::entropy::SeededEntropy;
use vellum_journal::keys::{EpochKey, Keyring, SigningKey, device_id, x25519_public};
use vellum_journal::payload::{Action, Body, MERGE_VERSION, Payload};
use vellum_journal::replay::{VaultState, make_patch};
use vellum_journal::store::{Durability, MemStore};
use vellum_journal::{Admission, ContentHash, FileId, Journal, VaultId};
use vellum_snapshots::TimeMachine;
use vellum_snapshots::contents::body_of;

const T0: u64 = 1_800_000_000_000;
const DEVICES: usize = 3;
const NOTES: usize = 2;

fn signer(d: usize) -> SigningKey {
    SigningKey::from_bytes(&[d as u8 + 1; 32])
}

#[derive(Clone, Debug)]
enum Step {
    /// Device appends a line to a note.
    Append { device: usize, note: usize },
    /// Device rewrites line `line` (mod the line count) of a note.
    Rewrite {
        device: usize,
        note: usize,
        line: usize,
    },
    /// Device deletes line `line` (mod the line count) of a note.
    DropLine {
        device: usize,
        note: usize,
        line: usize,
    },
    /// Device deletes a note.
    Delete { device: usize, note: usize },
    /// `to` admits every op `from` has.
    Sync { from: usize, to: usize },
}

fn step() -> impl Strategy<Value = Step> {
    let d = 0..DEVICES;
    let n = 0..NOTES;
    prop_oneof![
        3 => (d.clone(), n.clone()).prop_map(|(device, note)| Step::Append { device, note }),
        2 => (d.clone(), n.clone(), 0usize..8)
            .prop_map(|(device, note, line)| Step::Rewrite { device, note, line }),
        1 => (d.clone(), n.clone(), 0usize..8)
            .prop_map(|(device, note, line)| Step::DropLine { device, note, line }),
        1 => (d.clone(), n.clone()).prop_map(|(device, note)| Step::Delete { device, note }),
        3 => (d.clone(), d).prop_map(|(from, to)| Step::Sync { from, to }),
    ]
}

struct World {
    devices: Vec<Journal<MemStore>>,
    notes: Vec<FileId>,
    entropy: SeededEntropy,
    clock: u64,
    /// Unique tag for each line written, so duplicates are detectable.
    next_line: u64,
}

impl World {
    fn new() -> World {
        let mut entropy = SeededEntropy::new(9);
        let mut first = Journal::create(
            MemStore::new(),
            VaultId([5; 16]),
            &signer(0),
            Keyring::new(EpochKey([8; 32])),
            &mut entropy,
            T0,
            MERGE_VERSION,
        )
        .unwrap();
        for d in 1..DEVICES {
            first
                .append_control(
                    &signer(0),
                    Control::add_full_member(device_id(&signer(d)), x25519_public(&signer(d))),
                    Payload::new(Action::Member {
                        name: format!("device {d}"),
                    }),
                    &mut entropy,
                    T0 + 1,
                )
                .unwrap();
        }
        let notes = first
            .append(
                &signer(0),
                (0..NOTES)
                    .map(|i| {
                        Payload::new(Action::Create {
                            path: format!("note{i}.md"),
                            mtime_ms: 0,
                            body: Body::Text(format!("# note {i}\nbase line\n")),
                        })
                    })
                    .collect(),
                &mut entropy,
                T0 + 2,
                Durability::Durable,
            )
            .unwrap();
        TimeMachine::catch_up(&first).unwrap();
        let mut devices = vec![first];
        for _ in 1..DEVICES {
            let mut j = devices[0].empty_replica(MemStore::new()).unwrap();
            sync_into(&devices[0], &mut j);
            devices.push(j);
        }
        World {
            devices,
            notes,
            entropy,
            clock: T0 + 10,
            next_line: 0,
        }
    }

    fn text(&self, device: usize, note: usize) -> Option<String> {
        let j = &self.devices[device];
        let head = TimeMachine::load_head(j).unwrap();
        let f = head.files.get(&self.notes[note]).filter(|f| f.exists)?;
        match body_of(j, self.notes[note], f.hash, j.admitted()).unwrap() {
            Body::Text(t) => Some(t),
            Body::Blob(_) => None,
        }
    }

    fn edit(&mut self, device: usize, note: usize, change: impl Fn(&mut Vec<String>, String)) {
        let Some(old) = self.text(device, note) else {
            return;
        };
        let mut lines: Vec<String> = old.lines().map(str::to_string).collect();
        self.next_line += 1;
        change(
            &mut lines,
            format!("line {} by device {device}", self.next_line),
        );
        let new = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
        if new == old {
            return;
        }
        let action = Action::Edit {
            file: self.notes[note],
            base: ContentHash::of(old.as_bytes()),
            patch: make_patch(&old, &new).unwrap(),
            result: ContentHash::of(new.as_bytes()),
            result_size: new.len() as u64,
            mtime_ms: 0,
        };
        self.write(device, action);
    }

    /// `device` records one op and replays it.
    fn write(&mut self, device: usize, action: Action) {
        self.clock += 1;
        let j = &mut self.devices[device];
        j.append(
            &signer(device),
            vec![Payload::new(action)],
            &mut self.entropy,
            self.clock,
            Durability::Durable,
        )
        .unwrap();
        TimeMachine::catch_up(j).unwrap();
    }

    fn run(&mut self, s: &Step) {
        match *s {
            Step::Append { device, note } => self.edit(device, note, |l, new| l.push(new)),
            Step::Rewrite { device, note, line } => self.edit(device, note, |l, new| {
                let n = l.len();
                if n > 1 {
                    l[1 + line % (n - 1)] = new;
                }
            }),
            Step::DropLine { device, note, line } => self.edit(device, note, |l, _| {
                let n = l.len();
                if n > 1 {
                    l.remove(1 + line % (n - 1));
                }
            }),
            Step::Delete { device, note } => {
                let Some(old) = self.text(device, note) else {
                    return;
                };
                let action = Action::Delete {
                    file: self.notes[note],
                    base: ContentHash::of(old.as_bytes()),
                    mtime_ms: 0,
                };
                self.write(device, action);
            }
            Step::Sync { from, to } if from != to => {
                let (src, dst) = pair(&mut self.devices, from, to);
                sync_into(src, dst);
            }
            Step::Sync { .. } => {}
        }
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
fn sync_into(from: &Journal<MemStore>, to: &mut Journal<MemStore>) {
    let mut ops = Vec::new();
    from.for_each_op_in_order(None, &mut |key, seq, env| {
        if seq > to.admitted().seq(&key.author) {
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

fn comparable(s: &VaultState) -> impl PartialEq + std::fmt::Debug {
    (
        s.applied_vv(),
        s.files.clone(),
        s.paths.clone(),
        s.open_conflicts,
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_delivery_order_converges_to_the_same_bytes_and_conflicts(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        let mut w = World::new();
        for s in &steps {
            w.run(s);
        }
        // Everyone gets everything.
        for _ in 0..2 {
            for from in 0..DEVICES {
                for to in 0..DEVICES {
                    w.run(&Step::Sync { from, to });
                }
            }
        }
        let heads: Vec<VaultState> = w
            .devices
            .iter()
            .map(|j| TimeMachine::load_head(j).unwrap())
            .collect();
        for (d, h) in heads.iter().enumerate() {
            prop_assert_eq!(comparable(h), comparable(&heads[0]), "device {} differs", d);
            let scratch = TimeMachine::replay_from_scratch(&w.devices[d]).unwrap();
            prop_assert_eq!(
                comparable(&scratch),
                comparable(h),
                "device {}: incremental replay differs from replay from scratch",
                d
            );
        }
        for note in 0..NOTES {
            let texts: Vec<Option<String>> = (0..DEVICES).map(|d| w.text(d, note)).collect();
            for t in &texts {
                prop_assert_eq!(t, &texts[0], "note {} bytes differ", note);
            }
            if let Some(t) = &texts[0] {
                let mut lines: Vec<&str> = t.lines().filter(|l| l.starts_with("line ")).collect();
                let n = lines.len();
                lines.sort();
                lines.dedup();
                prop_assert_eq!(lines.len(), n, "a line appears twice in {:?}", t);
            }
        }
    }
}
