//! `vellum service install|uninstall` writes (and removes) a systemd user
//! unit that runs `vellum serve` for the vault. Here systemctl is not on
//! PATH, so the unit is written and the user told what to run.

use std::path::Path;

mod common;
use common::Env;

fn service(env: &Env, config: &Path, action: &str) -> std::process::Output {
    let empty = env.tmp.path().join("no-tools");
    std::fs::create_dir_all(&empty).unwrap();
    env.cmd(&["service", action])
        .env("XDG_CONFIG_HOME", config)
        .env("PATH", &empty)
        .output()
        .unwrap()
}

#[test]
fn install_writes_a_unit_that_serves_the_vault_and_uninstall_removes_it() {
    let env = Env::init();
    let config = env.tmp.path().join("config");
    let out = service(&env, &config, "install");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("systemctl is not installed"), "{err}");
    assert!(
        err.contains("systemctl --user enable --now vellum-"),
        "{err}"
    );
    let units: Vec<_> = std::fs::read_dir(config.join("systemd/user"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(units.len(), 1);
    let unit = &units[0];
    let name = unit.file_name().unwrap().to_string_lossy().into_owned();
    let instance = std::fs::read_to_string(env.vault.join(".vellum/instance")).unwrap();
    assert_eq!(name, format!("vellum-{}.service", &instance.trim()[..12]));
    let root = env.vault.canonicalize().unwrap();
    let exe = Path::new(env!("CARGO_BIN_EXE_vellum"))
        .canonicalize()
        .unwrap();
    let want = format!(
        "[Unit]\n\
         Description=Vellum sync for the vault at {root}\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart=\"{exe}\" serve --vault \"{root}\"\n\
         Environment=\"VELLUM_HOME={home}\"\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        root = root.display(),
        exe = exe.display(),
        home = env.home.display(),
    );
    assert_eq!(std::fs::read_to_string(unit).unwrap(), want);
    // Installing again rewrites the same unit.
    assert!(service(&env, &config, "install").status.success());
    assert_eq!(std::fs::read_to_string(unit).unwrap(), want);

    let out = service(&env, &config, "uninstall");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!unit.exists());
    let again = service(&env, &config, "uninstall");
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.starts_with("vellum: no service for this vault"),
        "{err}"
    );
}

#[test]
fn unit_paths_are_quoted_as_systemd_reads_them() {
    let text = vellum_bridge::service::unit_text(
        Path::new("/home/a/My \"Notes\" 100%"),
        Path::new("/opt/vellum $x/vellum"),
        None,
    );
    assert!(text.contains(
        "ExecStart=\"/opt/vellum $$x/vellum\" serve --vault \"/home/a/My \\\"Notes\\\" 100%%\"\n"
    ), "{text}");
    assert!(text.contains("Description=Vellum sync for the vault at /home/a/My \"Notes\" 100%%\n"));
    assert!(!text.contains("Environment="));
}
