//! [`KeyParam`] for the value types of sqlx's optional features, each behind the crate
//! feature of the same name: `uuid`, `chrono`, `time`, `rust_decimal` and `json`.
//!
//! Every value is written losslessly, under a type name of its own crate and encoding: two
//! crates' dates never share a key, even when the database would take them for one value.

#[cfg(any(feature = "uuid", feature = "rust_decimal", feature = "json"))]
use super::{KeyParam, KeySink};

#[cfg(feature = "uuid")]
impl KeyParam for uuid::Uuid {
    fn key_type(sink: &mut KeySink) {
        sink.named_type("uuid::Uuid");
    }
    fn key_value(&self, sink: &mut KeySink) {
        sink.fixed(self.as_bytes());
    }
}

#[cfg(feature = "rust_decimal")]
impl KeyParam for rust_decimal::Decimal {
    fn key_type(sink: &mut KeySink) {
        sink.named_type("rust_decimal::Decimal");
    }
    fn key_value(&self, sink: &mut KeySink) {
        // Mantissa, scale and sign: `1.0` and `1.00` are two keys for one number, which
        // costs a miss, never a wrong answer.
        sink.fixed(&self.serialize());
    }
}

#[cfg(feature = "json")]
impl KeyParam for serde_json::Value {
    fn key_type(sink: &mut KeySink) {
        sink.named_type("serde_json::Value");
    }
    fn key_value(&self, sink: &mut KeySink) {
        // Objects print their keys in one order (serde_json's map is sorted unless
        // `preserve_order` is on, and then the order is the value's own): equal values, equal
        // text.
        sink.bytes(self.to_string().as_bytes());
    }
}

#[cfg(feature = "chrono")]
mod chrono_params {
    use chrono::{
        DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike,
    };

    use crate::key::{KeyParam, KeySink};

    fn instant(sink: &mut KeySink, seconds: i64, nanos: u32) {
        sink.fixed(&seconds.to_le_bytes());
        sink.fixed(&nanos.to_le_bytes());
    }

    impl KeyParam for NaiveDate {
        fn key_type(sink: &mut KeySink) {
            sink.named_type("chrono::NaiveDate");
        }
        fn key_value(&self, sink: &mut KeySink) {
            sink.fixed(&self.num_days_from_ce().to_le_bytes());
        }
    }

    impl KeyParam for NaiveTime {
        fn key_type(sink: &mut KeySink) {
            sink.named_type("chrono::NaiveTime");
        }
        fn key_value(&self, sink: &mut KeySink) {
            // A leap second is a nanosecond count above one billion: still one value each.
            instant(
                sink,
                self.num_seconds_from_midnight().into(),
                self.nanosecond(),
            );
        }
    }

    impl KeyParam for NaiveDateTime {
        fn key_type(sink: &mut KeySink) {
            sink.named_type("chrono::NaiveDateTime");
        }
        fn key_value(&self, sink: &mut KeySink) {
            let utc = self.and_utc();
            instant(sink, utc.timestamp(), utc.timestamp_subsec_nanos());
        }
    }

    /// Any time zone: the instant and its offset (a `timestamptz` keeps only the instant, so
    /// one instant in two offsets is two keys for one value).
    impl<Tz: TimeZone> KeyParam for DateTime<Tz> {
        fn key_type(sink: &mut KeySink) {
            sink.named_type("chrono::DateTime");
        }
        fn key_value(&self, sink: &mut KeySink) {
            instant(sink, self.timestamp(), self.timestamp_subsec_nanos());
            sink.fixed(&self.offset().fix().local_minus_utc().to_le_bytes());
        }
    }
}

#[cfg(feature = "time")]
mod time_params {
    use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

    use crate::key::{KeyParam, KeySink};

    fn date(sink: &mut KeySink, date: Date) {
        sink.fixed(&date.to_julian_day().to_le_bytes());
    }

    fn time_of_day(sink: &mut KeySink, time: Time) {
        let (h, m, s, nanos) = time.as_hms_nano();
        sink.fixed(&[h, m, s]);
        sink.fixed(&nanos.to_le_bytes());
    }

    impl KeyParam for Date {
        fn key_type(sink: &mut KeySink) {
            sink.named_type("time::Date");
        }
        fn key_value(&self, sink: &mut KeySink) {
            date(sink, *self);
        }
    }

    impl KeyParam for Time {
        fn key_type(sink: &mut KeySink) {
            sink.named_type("time::Time");
        }
        fn key_value(&self, sink: &mut KeySink) {
            time_of_day(sink, *self);
        }
    }

    impl KeyParam for PrimitiveDateTime {
        fn key_type(sink: &mut KeySink) {
            sink.named_type("time::PrimitiveDateTime");
        }
        fn key_value(&self, sink: &mut KeySink) {
            date(sink, self.date());
            time_of_day(sink, self.time());
        }
    }

    impl KeyParam for OffsetDateTime {
        fn key_type(sink: &mut KeySink) {
            sink.named_type("time::OffsetDateTime");
        }
        fn key_value(&self, sink: &mut KeySink) {
            sink.fixed(&self.unix_timestamp_nanos().to_le_bytes());
            sink.fixed(&self.offset().whole_seconds().to_le_bytes());
        }
    }

    impl KeyParam for UtcOffset {
        fn key_type(sink: &mut KeySink) {
            sink.named_type("time::UtcOffset");
        }
        fn key_value(&self, sink: &mut KeySink) {
            sink.fixed(&self.whole_seconds().to_le_bytes());
        }
    }
}

#[cfg(all(
    test,
    any(
        feature = "uuid",
        feature = "chrono",
        feature = "time",
        feature = "rust_decimal",
        feature = "json"
    )
))]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::key::KeyBuilder;

    fn key<T: crate::key::KeyParam>(value: &T) -> crate::key::QueryKey {
        KeyBuilder::new("p", "db", "SELECT $1")
            .param(value)
            .finish()
    }

    #[cfg(feature = "uuid")]
    #[test]
    fn uuids_are_keys_of_their_own() {
        let a = uuid::Uuid::from_u128(1);
        let b = uuid::Uuid::from_u128(2);
        assert_eq!(key(&a), key(&a));
        assert_ne!(key(&a), key(&b));
        assert_ne!(key(&a), key(&1_u128), "a uuid is not its number");
        assert_ne!(key(&Some(a)), key(&None::<uuid::Uuid>));
    }

    #[cfg(feature = "chrono")]
    #[test]
    fn chrono_values_are_keys_of_their_own() {
        use chrono::{FixedOffset, NaiveDate, TimeZone, Utc};
        let day = NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
        let next = day.succ_opt().unwrap();
        assert_ne!(key(&day), key(&next));
        let noon = day.and_hms_opt(12, 0, 0).unwrap();
        assert_ne!(key(&noon), key(&day.and_hms_opt(12, 0, 1).unwrap()));
        let utc = Utc.from_utc_datetime(&noon);
        let paris = utc.with_timezone(&FixedOffset::east_opt(3600).unwrap());
        assert_eq!(key(&utc), key(&utc));
        assert_ne!(key(&utc), key(&paris), "the offset is part of the key");
        assert_ne!(key(&noon), key(&utc), "naive and zoned differ");
    }

    #[cfg(feature = "time")]
    #[test]
    fn time_values_are_keys_of_their_own() {
        use time::{Date, Month, OffsetDateTime};
        let day = Date::from_calendar_date(2026, Month::December, 4).unwrap();
        let next = day.next_day().unwrap();
        assert_ne!(key(&day), key(&next));
        let noon = day.midnight();
        assert_ne!(key(&noon), key(&next.midnight()));
        assert_ne!(key(&OffsetDateTime::UNIX_EPOCH), key(&noon.assume_utc()));
    }

    #[cfg(feature = "rust_decimal")]
    #[test]
    fn decimals_are_keys_of_their_own() {
        use rust_decimal::Decimal;
        let cents = Decimal::new(1999, 2);
        assert_eq!(key(&cents), key(&Decimal::new(1999, 2)));
        assert_ne!(key(&cents), key(&Decimal::new(1998, 2)));
        assert_ne!(key(&cents), key(&Decimal::new(-1999, 2)));
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_values_are_keys_of_their_own() {
        let a = serde_json::json!({"b": 1, "a": [true, null]});
        let same = serde_json::json!({"a": [true, null], "b": 1});
        assert_eq!(key(&a), key(&same), "one object, one key");
        assert_ne!(
            key(&a),
            key(&serde_json::json!({"b": 1.0, "a": [true, null]}))
        );
        assert_ne!(key(&serde_json::json!("1")), key(&"\"1\""));
    }
}
