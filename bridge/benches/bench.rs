//! Benchmarks for DESIGN §11, run by `scripts/bench` (release build).
//! Prints one JSON document of figures; timings are wall-clock medians.
//!
//! Usage: bench --vellum PATH --src VAULT_DIR --ops N --work DIR
//!        bench --replay VAULT   (replay from scratch only, for profiling)
//!        bench --merge          (the three-way merge figure only)
//!        bench --patch          (recording edits of a large note only)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use vellum_bridge::scan;
use vellum_bridge::vault::{Vault, now_ms};
use vellum_journal::ContentHash;
use vellum_journal::FileId;
use vellum_journal::limits::PATCH_DIFF_TIMEOUT_MS;
use vellum_journal::payload::{Action, Payload};
use vellum_journal::replay::{make_patch, make_patch_within};
use vellum_journal::store::{Batch, Durability};
use vellum_snapshots::TimeMachine;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn copy_tree(from: &Path, to: &Path) {
    for e in walk(from) {
        let rel = e.strip_prefix(from).unwrap();
        let dst = to.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&e, &dst).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn cli(vellum: &str, home: &Path, args: &[&str]) -> (Duration, Vec<u8>) {
    let t = Instant::now();
    let out = Command::new(vellum)
        .args(args)
        .env("VELLUM_HOME", home)
        .output()
        .unwrap();
    let d = t.elapsed();
    assert!(
        out.status.success(),
        "vellum {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (d, out.stdout)
}

fn dir_bytes(dir: &Path) -> u64 {
    walk(dir)
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

/// A deterministic xorshift stream, so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn edit(file: FileId, old: &str, new: &str) -> Payload {
    Payload::new(Action::Edit {
        file,
        base: ContentHash::of(old.as_bytes()),
        patch: make_patch(old, new).expect("patch reproduces"),
        result: ContentHash::of(new.as_bytes()),
        result_size: new.len() as u64,
        mtime_ms: now_ms() as i64,
    })
}

/// `--replay VAULT`: only replays an existing vault's journal from scratch,
/// three times, for profiling (`perf record bench --replay VAULT`).
fn replay_only(vault: &Path) {
    let v = Vault::open(Some(vault)).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let s = TimeMachine::replay_from_scratch(&v.journal).unwrap();
        println!(
            "replayed {} ops in {:.3} s",
            s.ops,
            t.elapsed().as_secs_f64()
        );
    }
}

fn main() {
    if let Some(vault) = arg("--replay") {
        return replay_only(Path::new(&vault));
    }
    if std::env::args().any(|a| a == "--merge") {
        let mut fig = BTreeMap::new();
        merge_bench(&mut fig);
        return println!("{}", serde_json::to_string_pretty(&fig).unwrap());
    }
    if std::env::args().any(|a| a == "--patch") {
        let mut fig = BTreeMap::new();
        patch_bench(&mut fig);
        return println!("{}", serde_json::to_string_pretty(&fig).unwrap());
    }
    let vellum = arg("--vellum").expect("--vellum PATH");
    let src = PathBuf::from(arg("--src").expect("--src VAULT"));
    let ops_target: u64 = arg("--ops").map_or(100_000, |s| s.parse().unwrap());
    let work = PathBuf::from(arg("--work").expect("--work DIR"));
    // Keys go where VELLUM_HOME says; scripts/bench points it into --work.
    let home = PathBuf::from(std::env::var_os("VELLUM_HOME").expect("set VELLUM_HOME"));
    let mut fig = BTreeMap::new();
    merge_bench(&mut fig);
    patch_bench(&mut fig);
    let vault_dir = work.join("vault");
    std::fs::create_dir_all(&vault_dir).unwrap();
    copy_tree(&src, &vault_dir);
    let vault_bytes = dir_bytes(&vault_dir);
    let files = walk(&vault_dir).len();

    // Initial recording of the whole vault: one scan.
    let t = Instant::now();
    let mut v = Vault::init(&vault_dir, "bench").unwrap();
    let report = scan::scan(&mut v).unwrap();
    fig.insert("init_scan_s", json!(t.elapsed().as_secs_f64()));
    fig.insert("vault_files", json!(files));
    fig.insert("vault_bytes", json!(vault_bytes));
    assert_eq!(report.created as usize, files);

    // A no-change rescan (size + mtime compare of every file).
    let t = Instant::now();
    scan::scan(&mut v).unwrap();
    fig.insert("rescan_unchanged_ms", json!(ms(t.elapsed())));

    // Save → durable op: a 10 KB note edited 200 times, one op each.
    let mut note: String = (0..200)
        .map(|i| format!("- line {i} of a ten kilobyte note, with words\n"))
        .collect();
    note.truncate(10_000);
    std::fs::write(vault_dir.join("bench-10k.md"), &note).unwrap();
    scan::scan(&mut v).unwrap();
    let file = v.head().unwrap().file_at("bench-10k.md").unwrap().0;
    let (mut append_ms, mut apply_ms) = (Vec::new(), Vec::new());
    for i in 0..200 {
        let new = format!("{note}- saved edit {i}\n");
        let p = edit(file, &note, &new);
        let t = Instant::now();
        v.journal
            .append(
                &v.keys.signing,
                vec![p],
                &mut vellum_journal::entropy::OsEntropy,
                now_ms(),
                Durability::Durable,
            )
            .unwrap();
        append_ms.push(ms(t.elapsed()));
        let t = Instant::now();
        v.catch_up().unwrap();
        apply_ms.push(ms(t.elapsed()));
        note = new;
    }
    fig.insert(
        "save_durable_op_ms_p50",
        json!(percentile(&mut append_ms, 0.5)),
    );
    fig.insert(
        "save_durable_op_ms_p95",
        json!(percentile(&mut append_ms, 0.95)),
    );
    fig.insert(
        "incremental_apply_ms_p50",
        json!(percentile(&mut apply_ms, 0.5)),
    );

    // Grow the journal to `ops_target` ops: edits to random notes, group
    // committed 1,000 at a time.
    let head = v.head().unwrap();
    let mut notes: Vec<(String, FileId, String)> = head
        .live_files()
        // bench-10k.md was edited above through the journal only, so its
        // bytes on disk are stale: edits made from them would be merges.
        .filter(|(p, _, _)| p.ends_with(".md") && p.as_str() != "bench-10k.md")
        .map(|(p, id, _)| {
            (
                p.clone(),
                *id,
                std::fs::read_to_string(vault_dir.join(p)).unwrap_or_default(),
            )
        })
        .filter(|(_, _, t)| !t.is_empty())
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t_grow = Instant::now();
    while v.journal.op_count() < ops_target {
        let n = (ops_target - v.journal.op_count()).min(1000);
        let mut batch = Vec::new();
        let mut touched = std::collections::HashSet::new();
        while (batch.len() as u64) < n {
            let i = (rng.next() % notes.len() as u64) as usize;
            if !touched.insert(i) {
                continue;
            }
            let (_, id, text) = &notes[i];
            let new = format!("{text}- added {}\n", rng.next() % 100_000);
            batch.push(edit(*id, text, &new));
            notes[i].2 = new;
        }
        v.append(batch, Batch::new()).unwrap();
    }
    let ops = v.journal.op_count();
    fig.insert(
        "grow_ops_per_s",
        json!(ops as f64 / t_grow.elapsed().as_secs_f64()),
    );
    fig.insert("ops", json!(ops));

    // Replay from scratch (patches re-checked, signatures not: they were
    // checked at admission).
    let mut replay_s = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let s = TimeMachine::replay_from_scratch(&v.journal).unwrap();
        replay_s.push(t.elapsed().as_secs_f64());
        assert_eq!(s.ops, ops);
    }
    fig.insert(
        "replay_from_scratch_s_p50",
        json!(percentile(&mut replay_s, 0.5)),
    );

    // Points to travel to: op ids spread over the history.
    let mut ids = Vec::new();
    v.journal
        .for_each_in_order(None, &mut |k, _| {
            ids.push(k.id);
            Ok(std::ops::ControlFlow::Continue(()))
        })
        .unwrap();
    let journal_bytes = v.journal_bytes().unwrap();
    fig.insert("journal_bytes", json!(journal_bytes));
    fig.insert(
        "vellum_dir_bytes",
        json!(dir_bytes(&vault_dir.join(".vellum"))),
    );
    let vd = vault_dir.to_str().unwrap().to_string();
    drop(v);

    // CLI start at 10k files: open journal, answer status.
    let mut status_ms: Vec<f64> = (0..20)
        .map(|_| ms(cli(&vellum, &home, &["status", "--json", "--vault", &vd]).0))
        .collect();
    fig.insert("cli_status_ms_p50", json!(percentile(&mut status_ms, 0.5)));

    // show --at: the 10 KB note at 30 points after its creation.
    let first = ids
        .iter()
        .position(|id| *id == file)
        .expect("the note's create op")
        + 1;
    let mut show_ms: Vec<f64> = (0..30)
        .map(|i| {
            let id = ids[first + (ids.len() - first - 1) * i / 29];
            ms(cli(
                &vellum,
                &home,
                &["show", "bench-10k.md", "--at", &id.short(), "--vault", &vd],
            )
            .0)
        })
        .collect();
    fig.insert("cli_show_at_ms_p50", json!(percentile(&mut show_ms, 0.5)));
    fig.insert("cli_show_at_ms_p95", json!(percentile(&mut show_ms, 0.95)));

    // History pages (the plugin's timeline, 200 rows): the newest, and one
    // near the oldest end reached by cursor (`--before`), against reaching
    // it by listing everything newer (what paging by offset costs).
    let page = |extra: &[&str]| {
        let mut args = vec!["log", "--json", "--vault", &vd];
        args.extend_from_slice(extra);
        ms(cli(&vellum, &home, &args).0)
    };
    fig.insert("cli_log_newest_page_ms", json!(page(&["--limit", "200"])));
    let deep = ids[ids.len() / 100].short();
    fig.insert(
        "cli_log_deep_page_by_cursor_ms",
        json!(page(&["--limit", "200", "--before", &deep])),
    );
    let newer = (ids.len() - ids.len() / 100 + 200).to_string();
    fig.insert(
        "cli_log_deep_page_by_skipping_ms",
        json!(page(&["--limit", &newer])),
    );

    // checkout of the whole vault, at head and at a point mid-history.
    for (name, at) in [
        ("head", "head".to_string()),
        ("mid", ids[ids.len() / 2].short()),
    ] {
        let dest = work.join(format!("checkout-{name}"));
        let (d, _) = cli(
            &vellum,
            &home,
            &[
                "checkout",
                "--at",
                &at,
                dest.to_str().unwrap(),
                "--vault",
                &vd,
            ],
        );
        fig.insert(
            if name == "head" {
                "cli_checkout_head_s"
            } else {
                "cli_checkout_mid_s"
            },
            json!(d.as_secs_f64()),
        );
        std::fs::remove_dir_all(&dest).unwrap();
    }

    // CLI start again with fjall's active write-ahead journal near full:
    // opening replays it, and fjall rotates it only at 64 MB, so this is
    // close to the worst case. Grow by more edits until it holds 48 MiB.
    let mut v = Vault::open(Some(&vault_dir)).unwrap();
    let mut extra = 0;
    while active_journal_bytes(&vault_dir) < 48 << 20 && extra < 200_000 {
        let mut batch = Vec::new();
        let mut touched = std::collections::HashSet::new();
        while batch.len() < 500 {
            let i = (rng.next() % notes.len() as u64) as usize;
            if touched.insert(i) {
                let (_, id, text) = &notes[i];
                let new = format!("{text}- added {}\n", rng.next() % 100_000);
                batch.push(edit(*id, text, &new));
                notes[i].2 = new;
            }
        }
        v.append(batch, Batch::new()).unwrap();
        extra += 500;
    }
    drop(v);
    fig.insert(
        "full_journal_active_bytes",
        json!(active_journal_bytes(&vault_dir)),
    );
    let mut status_ms: Vec<f64> = (0..10)
        .map(|_| ms(cli(&vellum, &home, &["status", "--json", "--vault", &vd]).0))
        .collect();
    fig.insert(
        "full_journal_cli_status_ms_p50",
        json!(percentile(&mut status_ms, 0.5)),
    );
    println!("{}", serde_json::to_string_pretty(&fig).unwrap());
}

/// Three-way merge of a 100 KB note with 50 scattered edits on each side
/// (DESIGN §4): word changes on lines of their own, none overlapping.
fn merge_bench(fig: &mut BTreeMap<&str, serde_json::Value>) {
    let mut rng = Rng(0x5eed);
    let base: Vec<String> = (0..2000)
        .map(|i| format!("- line {i:04} of a long note, with a few more words\n"))
        .collect();
    let text = base.concat();
    assert!(text.len() >= 100_000);
    let mut lines: Vec<usize> = (0..2000).collect();
    let mut side = |tag: &str| {
        let mut v = base.clone();
        for _ in 0..50 {
            let i = lines.swap_remove((rng.next() % lines.len() as u64) as usize);
            v[i] = v[i].replace("few more", &format!("{tag} edited"));
        }
        v.concat()
    };
    let (current, theirs) = (side("current"), side("theirs"));
    let mut times: Vec<f64> = (0..20)
        .map(|_| {
            let t = Instant::now();
            let m = vellum_journal::merge::merge(&text, &current, &theirs);
            let d = ms(t.elapsed());
            assert!(m.is_clean());
            d
        })
        .collect();
    fig.insert(
        "merge_100kb_50_edits_ms_p50",
        json!(percentile(&mut times, 0.5)),
    );
}

/// Recording edits of a 20,000-line (282 KiB) note as the scanner does
/// (`make_patch_within` with its timeout): a rewrite of every line (71 s
/// before session 11), one changed line, and a save that ticks every fifth
/// task of a list. Then replay's side of the rewrite, which has no time
/// bound: merging it into a concurrent one-line edit.
fn patch_bench(fig: &mut BTreeMap<&str, serde_json::Value>) {
    let note = |line: &dyn Fn(usize) -> String| -> String {
        (0..20_000).map(|i| format!("{}\n", line(i))).collect()
    };
    let old = note(&|i| format!("old line {i}"));
    let rewrite = note(&|i| format!("new line {i}"));
    let one_line = note(&|i| {
        if i == 12_345 {
            "a line the user rewrote".into()
        } else {
            format!("old line {i}")
        }
    });
    let tasks = note(&|i| format!("- [ ] task number {i}"));
    let ticked = note(&|i| {
        let mark = if i % 5 == 0 { 'x' } else { ' ' };
        format!("- [{mark}] task number {i}")
    });
    let median = |runs: usize, f: &dyn Fn()| {
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                ms(t.elapsed())
            })
            .collect();
        percentile(&mut times, 0.5)
    };
    let record = |old: &str, new: &str| make_patch_within(old, new, Some(PATCH_DIFF_TIMEOUT_MS));
    assert!(record(&old, &rewrite).is_none());
    assert!(record(&old, &one_line).is_some_and(|p| p.len() < 200));
    fig.insert(
        "record_rewrite_20k_lines_ms_p50",
        json!(median(10, &|| drop(record(&old, &rewrite)))),
    );
    fig.insert(
        "record_one_line_of_20k_lines_ms_p50",
        json!(median(10, &|| drop(record(&old, &one_line)))),
    );
    fig.insert(
        "record_4k_ticks_of_20k_lines_ms_p50",
        json!(median(3, &|| drop(record(&tasks, &ticked)))),
    );
    let mut concurrent = old.clone();
    concurrent.replace_range(0..3, "OLD");
    fig.insert(
        "merge_rewrite_20k_lines_ms_p50",
        json!(median(3, &|| drop(vellum_journal::merge::merge(
            &old,
            &concurrent,
            &rewrite
        )))),
    );
}

/// The size of fjall's active write-ahead journal (its newest `.jnl`).
fn active_journal_bytes(vault: &Path) -> u64 {
    let dir = vault.join(".vellum/journal");
    std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().to_string_lossy().into_owned();
            let n: u64 = name.strip_suffix(".jnl")?.parse().ok()?;
            Some((n, e.metadata().ok()?.len()))
        })
        .max()
        .map_or(0, |(_, len)| len)
}
