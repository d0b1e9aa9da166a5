//! History points: `head`, an op id prefix, a time, or an exact `vv:`.
//! Every point resolves to a version vector: the set of ops it names.

use crate::error::{Error, Result};
use crate::hlc;
use crate::journal::Journal;
use crate::store::Store;
use crate::vv::VersionVector;

/// Shortest op id prefix accepted, in hex digits.
pub const OP_PREFIX_HEX_MIN: usize = 8;
/// Most candidates listed for an ambiguous prefix.
pub(crate) const AMBIGUOUS_SHOWN_MAX: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Point {
    Head,
    /// Lowercase hex, at least `OP_PREFIX_HEX_MIN` digits.
    Op(String),
    /// Every op with wall time at or before this, in Unix ms.
    Time(u64),
    Vv(VersionVector),
}

impl Point {
    /// Parses a point. `now_ms` anchors relative times (`15m` = 15 minutes
    /// ago); `tz` interprets bare dates, which mean the end of that day.
    pub fn parse(s: &str, now_ms: u64, tz: &jiff::tz::TimeZone) -> Result<Point> {
        let s = s.trim();
        let unknown = || {
            Error::BadPoint(format!(
                "unknown point '{s}': use head, an op id (8+ hex digits), a time \
                 (2026-11-25, 2026-11-25T10:00:00Z, 15m, 2h, 3d), or a vv: string"
            ))
        };
        if s == "head" {
            return Ok(Point::Head);
        }
        if s.starts_with("vv:") {
            return Ok(Point::Vv(VersionVector::parse_point(s)?));
        }
        if let Some(ms) = parse_relative(s) {
            let ago = ms.ok_or_else(unknown)?;
            return Ok(Point::Time(now_ms.saturating_sub(ago)));
        }
        if s.len() >= OP_PREFIX_HEX_MIN && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Point::Op(s.to_ascii_lowercase()));
        }
        if let Ok(ts) = s.parse::<jiff::Timestamp>() {
            return ms_of(ts).map(Point::Time).ok_or_else(unknown);
        }
        if let Ok(date) = s.parse::<jiff::civil::Date>() {
            let end = date
                .tomorrow()
                .ok()
                .and_then(|d| d.to_zoned(tz.clone()).ok())
                .ok_or_else(unknown)?;
            let ms = ms_of(end.timestamp()).ok_or_else(unknown)?;
            return Ok(Point::Time(ms.saturating_sub(1)));
        }
        Err(unknown())
    }

    /// The set of ops the point names. A point before the first op, or one
    /// naming ops this device lacks, is an error.
    pub fn resolve<S: Store>(&self, journal: &Journal<S>) -> Result<VersionVector> {
        let vv = match self {
            Point::Head => journal.admitted().clone(),
            Point::Op(prefix) => journal.causal_vv(&journal.op_with_prefix(prefix)?)?,
            Point::Time(ms) => journal.vv_at_hlc(hlc::ceiling_of_ms(*ms))?,
            Point::Vv(vv) => {
                journal.check_vv(vv)?;
                vv.clone()
            }
        };
        if vv.is_empty() {
            return Err(Error::BadPoint(
                "the point is before the vault's first op".into(),
            ));
        }
        Ok(vv)
    }
}

fn ms_of(ts: jiff::Timestamp) -> Option<u64> {
    u64::try_from(ts.as_millisecond()).ok()
}

/// `Some(Some(ms))` for a relative time, `Some(None)` for one that
/// overflows, `None` if `s` is not of that form.
fn parse_relative(s: &str) -> Option<Option<u64>> {
    let unit = s.chars().last()?;
    let ms_per = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 604_800_000,
        _ => return None,
    };
    let digits = &s[..s.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(ms_per)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn parse(s: &str) -> Result<Point> {
        Point::parse(s, NOW, &jiff::tz::TimeZone::UTC)
    }

    #[test]
    fn forms() {
        assert_eq!(parse("head").unwrap(), Point::Head);
        assert_eq!(parse("90s").unwrap(), Point::Time(NOW - 90_000));
        assert_eq!(parse("15m").unwrap(), Point::Time(NOW - 900_000));
        assert_eq!(parse("2h").unwrap(), Point::Time(NOW - 7_200_000));
        assert_eq!(parse("3d").unwrap(), Point::Time(NOW - 3 * 86_400_000));
        assert_eq!(parse("1w").unwrap(), Point::Time(NOW - 604_800_000));
        assert_eq!(parse("DEADBEEF").unwrap(), Point::Op("deadbeef".into()));
        assert_eq!(
            parse("2026-11-25T10:00:00Z").unwrap(),
            Point::Time(1_795_600_800_000)
        );
        // A bare date is the end of that day.
        assert_eq!(parse("2026-11-25").unwrap(), Point::Time(1_795_651_199_999));
    }

    #[test]
    fn errors_are_user_errors() {
        for bad in [
            "",
            "yesterday",
            "abc",
            "1234567",
            "12x",
            "vv:!!",
            "99999999999999999999w",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.is_user_error(), "{bad}: {e}");
        }
    }
}
