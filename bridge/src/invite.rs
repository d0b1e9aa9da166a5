//! A pending invite (DESIGN §7): one at a time per device, kept beside the
//! keys (`$VELLUM_HOME/<instance>/invite.json`, 0600) so that its state
//! outlives a restart: it expires after [`INVITE_TTL_MS`], and the first
//! attempt to use it, right or wrong, consumes it.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use vellum_journal::entropy::{Entropy, OsEntropy};
use vellum_replicator::net::Multiaddr;
use vellum_replicator::pair::{Invite, SECRET_BYTES};

use crate::home;
use crate::vault::Vault;

const FILE: &str = "invite.json";
/// How long an invite can be used.
pub const INVITE_TTL_MS: u64 = 10 * 60 * 1000;

/// An invite as this device keeps it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The secret, hex.
    pub secret: String,
    pub created_ms: u64,
    pub expires_ms: u64,
    /// `--yes`: the first joiner that proves the secret is approved.
    pub preapproved: bool,
    /// A joiner has tried it (successfully or not): nobody else may.
    pub used: bool,
    /// The 8-digit code for the LAN (empty in an invite written before
    /// short codes, which then pairs by the long code only).
    #[serde(default)]
    pub short: String,
}

impl Pending {
    pub fn secret(&self) -> [u8; SECRET_BYTES] {
        vellum_journal::id::unhex(&self.secret)
            .and_then(|b| b.try_into().ok())
            .unwrap_or([0; SECRET_BYTES])
    }

    pub fn expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_ms
    }
}

/// A new invite, replacing any earlier one.
pub fn create(v: &Vault, preapproved: bool, now_ms: u64) -> Result<Pending> {
    let secret: [u8; SECRET_BYTES] = OsEntropy.array();
    let p = Pending {
        secret: vellum_journal::id::hex(&secret),
        created_ms: now_ms,
        expires_ms: now_ms + INVITE_TTL_MS,
        preapproved,
        used: false,
        short: vellum_replicator::pair::short_code(OsEntropy.array()),
    };
    save(v, &p)?;
    Ok(p)
}

pub fn load(v: &Vault) -> Result<Option<Pending>> {
    let path = home::instance_file(v.instance(), FILE)?;
    match std::fs::read(&path) {
        Ok(b) => Ok(serde_json::from_slice(&b).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn save(v: &Vault, p: &Pending) -> Result<()> {
    home::write_private(
        v.instance(),
        FILE,
        &serde_json::to_vec(p).expect("an invite serialises"),
    )
}

/// Forgets the invite (used up, declined, expired).
pub fn remove(v: &Vault) -> Result<()> {
    match std::fs::remove_file(home::instance_file(v.instance(), FILE)?) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// What `vellum invite` prints (DESIGN §8: `{code, short_code, expires_at,
/// qr_svg}`).
#[derive(Serialize, Clone, Debug, ts_rs::TS)]
pub struct InviteInfo {
    /// The long code: the inviter's id, addresses and the secret.
    pub code: String,
    /// The 8-digit code for a device on the same LAN (found by mDNS, then
    /// SPAKE2 on the digits): `vellum join 1234-5678`. One wrong try ends
    /// the invite.
    pub short_code: Option<String>,
    /// When the invite stops working (RFC 3339).
    pub expires_at: String,
    /// The long code as a QR code, an SVG document.
    pub qr_svg: String,
}

/// The codes of invite `p` of vault `v`, reachable at `addrs`.
pub fn info(v: &Vault, p: &Pending, addrs: &[Multiaddr]) -> Result<InviteInfo> {
    let code = Invite {
        vault: v.vault_id(),
        inviter: v.device(),
        secret: p.secret(),
        addrs: code_addrs(addrs),
    }
    .encode();
    Ok(InviteInfo {
        qr_svg: qr_svg(&code)?,
        code,
        short_code: (!p.short.is_empty()).then(|| p.short.clone()),
        expires_at: jiff::Timestamp::from_millisecond(p.expires_ms as i64)
            .map(|t| t.to_string())
            .unwrap_or_default(),
    })
}

/// The addresses a code carries: routable ones before loopback, without
/// the `/p2p/` suffix (the code names the inviter already), at most the
/// code's limit.
fn code_addrs(addrs: &[Multiaddr]) -> Vec<Vec<u8>> {
    use vellum_replicator::net::Protocol;
    use vellum_replicator::net::{is_loopback as loopback, is_relayed, without_peer as bare};
    // An IPv6 link-local address needs its interface named, which a
    // multiaddr cannot: no joiner could dial it.
    let link_local = |a: &Multiaddr| {
        a.iter()
            .any(|p| matches!(p, Protocol::Ip6(ip) if ip.segments()[0] & 0xffc0 == 0xfe80))
    };
    let addrs: Vec<&Multiaddr> = addrs.iter().filter(|a| !link_local(a)).collect();
    let max = vellum_replicator::pair::CODE_ADDRS_MAX;
    // Relayed addresses (the internet setting) keep up to half the room:
    // a joiner elsewhere has no other way in.
    let relayed: Vec<Multiaddr> = addrs
        .iter()
        .copied()
        .filter(|a| is_relayed(a))
        .map(bare)
        .take(max / 2)
        .collect();
    let direct = |lo: bool| {
        addrs
            .iter()
            .copied()
            .filter(move |a| !is_relayed(a) && loopback(a) == lo)
            .map(bare)
    };
    let mut out: Vec<Multiaddr> = direct(false).take(max - relayed.len()).collect();
    out.extend(relayed);
    out.extend(direct(true));
    out.dedup();
    out.into_iter().take(max).map(|a| a.to_vec()).collect()
}

/// The QR code of `code` (uppercase: the QR alphanumeric mode is denser).
fn qr(code: &str) -> Result<qrcode::QrCode> {
    Ok(qrcode::QrCode::with_error_correction_level(
        code.to_ascii_uppercase(),
        qrcode::EcLevel::M,
    )?)
}

pub fn qr_svg(code: &str) -> Result<String> {
    Ok(qr(code)?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(256, 256)
        .build())
}

/// The QR code for a terminal, two rows per line.
pub fn qr_text(code: &str) -> Result<String> {
    use qrcode::render::unicode::Dense1x2;
    Ok(qr(code)?
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<Multiaddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn a_code_keeps_room_for_relayed_addresses_and_drops_link_local_ones() {
        let relay =
            "/ip4/203.0.113.5/tcp/4101/p2p/12D3KooWLNEoA89naLqdAAJfP3iLNbsiM273TqkR6A91nkTdFo3R";
        let me = "12D3KooWRifuvhC5XWsq5RR9u8oT9SrYemAHiQ35qEQYVY3NXywS";
        let mut list: Vec<String> = (1..=8)
            .map(|i| format!("/ip4/192.168.1.{i}/tcp/4000"))
            .collect();
        list.push("/ip6/fe80::1/tcp/4000".into());
        list.push(format!("/ip4/127.0.0.1/tcp/4000/p2p/{me}"));
        list.push(format!("{relay}/p2p-circuit/p2p/{me}"));
        let refs: Vec<&str> = list.iter().map(String::as_str).collect();
        let out: Vec<Multiaddr> = code_addrs(&addrs(&refs))
            .into_iter()
            .map(|b| Multiaddr::try_from(b).unwrap())
            .collect();
        assert_eq!(out.len(), vellum_replicator::pair::CODE_ADDRS_MAX);
        // Routable direct addresses first, then the relayed one (its
        // relay's id kept, the inviter's own dropped); no link-local one.
        assert_eq!(out[0].to_string(), "/ip4/192.168.1.1/tcp/4000");
        assert_eq!(out[7].to_string(), format!("{relay}/p2p-circuit"));
        assert!(out.iter().all(|a| !a.to_string().contains("fe80")));
    }
}
