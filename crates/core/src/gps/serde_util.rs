//! Config helpers: TOML has no null, so a filter that is on by default is turned off with `false`.
//! `accuracy_m = 500` sets a limit, `accuracy_m = false` turns the filter off (JSON `null` too).

use serde::de::{self, Deserializer, Visitor};
use serde::{Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;

/// Numbers a limit can be written as.
pub(crate) trait LimitNum: Sized {
    fn from_u64(v: u64) -> Option<Self>;
    fn from_f64(v: f64) -> Option<Self>;
}

impl LimitNum for u32 {
    fn from_u64(v: u64) -> Option<Self> {
        u32::try_from(v).ok()
    }
    fn from_f64(v: f64) -> Option<Self> {
        // Only whole numbers: "60.5 seconds" is more likely a typo than a wish.
        (v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v)).then_some(v as u32)
    }
}

impl LimitNum for f32 {
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f32)
    }
    fn from_f64(v: f64) -> Option<Self> {
        (v.is_finite() && v >= 0.0).then_some(v as f32)
    }
}

struct LimitVisitor<T>(PhantomData<T>);

impl<'de, T: LimitNum> Visitor<'de> for LimitVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-negative number, or false to turn this off")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        if v {
            Err(E::invalid_value(de::Unexpected::Bool(true), &self))
        } else {
            Ok(None)
        }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        T::from_u64(v)
            .map(Some)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        u64::try_from(v)
            .ok()
            .and_then(T::from_u64)
            .map(Some)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(v), &self))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        T::from_f64(v)
            .map(Some)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Float(v), &self))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// `Option<T>` limit: a number, or `false`/null for off.
pub(crate) fn limit<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: LimitNum + de::Deserialize<'de>,
{
    if d.is_human_readable() {
        d.deserialize_any(LimitVisitor(PhantomData))
    } else {
        // Binary formats (postcard) cannot `deserialize_any`; they carry a plain Option.
        <Option<T> as de::Deserialize>::deserialize(d)
    }
}

/// Override of a limit: field absent = inherit (via `#[serde(default)]`), number = set,
/// `false` = turn off.
pub(crate) fn override_limit<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: LimitNum + de::Deserialize<'de>,
{
    if d.is_human_readable() {
        d.deserialize_any(LimitVisitor(PhantomData)).map(Some)
    } else {
        <Option<Option<T>> as de::Deserialize>::deserialize(d)
    }
}

/// The other way round (JSON records): a set limit as its number, a limit turned off as `false`.
/// Absent (inherit) is left out by `skip_serializing_if` and never reaches here.
pub(crate) fn ser_override_limit<S, T>(v: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    T: Serialize,
{
    match v {
        Some(Some(x)) => x.serialize(s),
        _ => s.serialize_bool(false),
    }
}
