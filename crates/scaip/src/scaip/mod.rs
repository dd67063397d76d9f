//! SCAIP (SS 91100) application layer: `<mrq>` requests, `<mrs>` responses, location values
//! and status classification.

mod location;
mod mrq;
mod mrs;
mod status;
mod xml;

pub use location::{
    civil_from_days, days_from_civil, format_time, parse_geo, parse_gga, parse_time, GeoPos, Gga,
    LocationError,
};
pub use mrq::{is_valid_cid, is_valid_reference, Lge, Mrq, MrqError, MrqErrorKind};
pub use mrs::{Callback, MediaReply, Mrs, MrsError, Snu};
pub use status::{classify, stc_name, EventClass, Mty};

#[cfg(test)]
mod tests;
