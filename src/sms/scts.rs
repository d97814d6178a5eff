//! Service-centre time stamps and other absolute times (3GPP TS 23.040 §9.2.3.11): seven
//! semi-octet-swapped BCD octets, year to second, then the offset from UTC in quarter hours with
//! its sign in bit 3.
//!
//! Contracts: a two-digit year `yy` means 19yy when yy ≥ 90 and 20yy otherwise; non-decimal
//! digits and impossible dates or times are [`SmsError`]s, never panics.

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};

use super::SmsError;

fn bcd(octet: u8, offset: usize) -> Result<u32, SmsError> {
    let (low, high) = (octet & 0x0F, octet >> 4);
    for nibble in [low, high] {
        if nibble > 9 {
            return Err(SmsError::InvalidBcd {
                field: "timestamp",
                offset,
                nibble,
            });
        }
    }
    Ok(u32::from(low) * 10 + u32::from(high))
}

/// Decodes seven timestamp octets that start at `offset` in the PDU.
pub fn decode(raw: &[u8; 7], offset: usize) -> Result<DateTime<FixedOffset>, SmsError> {
    let invalid = |reason| SmsError::InvalidTimestamp { offset, reason };
    let mut fields = [0u32; 6];
    for (i, field) in fields.iter_mut().enumerate() {
        *field = bcd(raw[i], offset + i)?;
    }
    let [yy, month, day, hour, minute, second] = fields;
    let year = if yy >= 90 { 1900 + yy } else { 2000 + yy } as i32;
    let tz = raw[6];
    let tz_tens = tz & 0x07;
    let tz_units = tz >> 4;
    if tz_units > 9 {
        return Err(SmsError::InvalidBcd {
            field: "time zone",
            offset: offset + 6,
            nibble: tz_units,
        });
    }
    let quarters = i32::from(tz_tens) * 10 + i32::from(tz_units);
    let seconds = quarters * 15 * 60;
    let zone = if tz & 0x08 != 0 {
        FixedOffset::west_opt(seconds)
    } else {
        FixedOffset::east_opt(seconds)
    }
    .ok_or(invalid("time zone offset out of range"))?;
    let naive = NaiveDate::from_ymd_opt(year, month, day)
        .ok_or(invalid("no such date"))?
        .and_hms_opt(hour, minute, second)
        .ok_or(invalid("no such time of day"))?;
    zone.from_local_datetime(&naive)
        .single()
        .ok_or(invalid("no such local time"))
}

/// Encodes a timestamp (seconds precision, offset rounded toward zero to quarter hours).
pub fn encode(time: &DateTime<FixedOffset>) -> [u8; 7] {
    use chrono::{Datelike, Timelike};
    let swap = |v: u32| {
        let v = (v % 100) as u8;
        (v % 10) << 4 | (v / 10)
    };
    let offset = time.offset().local_minus_utc();
    let quarters = (offset.unsigned_abs() / 900).min(79);
    let mut tz = swap(quarters);
    if offset < 0 {
        tz |= 0x08;
    }
    [
        swap(time.year().rem_euclid(100) as u32),
        swap(time.month()),
        swap(time.day()),
        swap(time.hour()),
        swap(time.minute()),
        swap(time.second()),
        tz,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn octets(h: &str) -> [u8; 7] {
        crate::sms::hex::decode(h).unwrap().try_into().unwrap()
    }

    #[test]
    fn decodes_zones_and_dates() {
        let cases = [
            ("42500171151029", "2024-05-10T17:51:01-03:00"),
            ("42500171151080", "2024-05-10T17:51:01+02:00"),
            ("99211332959500", "1999-12-31T23:59:59+00:00"),
            ("20200200000021", "2002-02-20T00:00:00+03:00"),
            ("42500171151063", "2024-05-10T17:51:01+09:00"),
            ("4250017115104C", "2024-05-10T17:51:01-11:00"),
        ];
        for (h, expected) in cases {
            let t = decode(&octets(h), 0).unwrap();
            assert_eq!(t.to_rfc3339(), expected, "{h}");
            assert_eq!(decode(&encode(&t), 0).unwrap(), t, "{h}");
        }
    }

    #[test]
    fn rejects_impossible_values() {
        assert!(matches!(
            decode(&octets("42200371151029"), 3),
            Err(SmsError::InvalidTimestamp { offset: 3, .. })
        ));
        assert!(matches!(
            decode(&octets("42500171151A29"), 0),
            Err(SmsError::InvalidBcd { offset: 5, .. })
        ));
        assert!(matches!(
            decode(&octets("425001711510A0"), 0),
            Err(SmsError::InvalidBcd { offset: 6, .. })
        ));
        assert!(decode(&octets("425001714510F9"), 0).is_err());
        assert!(decode(&octets("42500142151000"), 0).is_err());
    }
}
