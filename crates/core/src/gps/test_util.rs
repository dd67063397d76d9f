//! Test helpers: positions by metres, a tiny seeded PRNG, and a minimal self-describing
//! deserializer (core has no TOML/JSON dev-dependency) to test the config shapes.

use super::geo::M_PER_DEG;
use serde::de::{self, value::MapDeserializer, value::SeqDeserializer, IntoDeserializer, Visitor};

pub const HOME: (f64, f64) = (57.7089, 11.9746);
pub const T0: i64 = 1_700_000_000_000;

/// (lat, lon) moved `north_m` and `east_m` metres from `from`.
pub fn offset(from: (f64, f64), north_m: f64, east_m: f64) -> (f64, f64) {
    (
        from.0 + north_m / M_PER_DEG,
        from.1 + east_m / (M_PER_DEG * from.0.to_radians().cos()),
    )
}

/// splitmix64: deterministic, tiny, good enough for test walks.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// A point uniformly inside a disc of radius `r` (metres), as (north, east).
    pub fn in_disc(&mut self, r: f64) -> (f64, f64) {
        let rho = r * self.unit().sqrt();
        let th = self.range(0.0, std::f64::consts::TAU);
        (rho * th.cos(), rho * th.sin())
    }
}

/// A config value, as TOML or JSON would give it.
#[derive(Clone, Debug)]
pub enum V {
    B(bool),
    I(i64),
    F(f64),
    S(&'static str),
    L(Vec<V>),
    M(Vec<(&'static str, V)>),
}

/// Deserialize `T` from a map of values.
pub fn from_map<T: de::DeserializeOwned>(m: Vec<(&'static str, V)>) -> Result<T, String> {
    T::deserialize(V::M(m)).map_err(|e| e.to_string())
}

#[derive(Debug)]
pub struct E(String);
impl std::fmt::Display for E {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for E {}
impl de::Error for E {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        E(msg.to_string())
    }
}

impl<'de> IntoDeserializer<'de, E> for V {
    type Deserializer = V;
    fn into_deserializer(self) -> V {
        self
    }
}

impl<'de> de::Deserializer<'de> for V {
    type Error = E;
    fn deserialize_any<W: Visitor<'de>>(self, v: W) -> Result<W::Value, E> {
        match self {
            V::B(b) => v.visit_bool(b),
            V::I(i) => v.visit_i64(i),
            V::F(f) => v.visit_f64(f),
            V::S(s) => v.visit_str(s),
            V::L(l) => v.visit_seq(SeqDeserializer::new(l.into_iter())),
            V::M(m) => v.visit_map(MapDeserializer::new(m.into_iter())),
        }
    }
    fn deserialize_option<W: Visitor<'de>>(self, v: W) -> Result<W::Value, E> {
        v.visit_some(self)
    }
    fn deserialize_enum<W: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: W,
    ) -> Result<W::Value, E> {
        match self {
            V::S(s) => v.visit_enum(de::IntoDeserializer::<E>::into_deserializer(s)),
            other => other.deserialize_any(v),
        }
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}
