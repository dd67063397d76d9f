//! Scenarios: which device sends what in each slot of the schedule. Transport-independent: the
//! QUIC, SIP and MQTT fleets encode the same planned events.
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Every device sends a position fix in turn (a fix every devices/rate seconds each),
    /// moving along a random walk; one device in twenty drifts steadily away (leaving its fence).
    GpsFleet,
    /// A region loses power: every device alarms once within the duration.
    AlarmStorm,
    /// Many idle connections, each sending a heartbeat in turn (every 60 s by default).
    HeartbeatFleet,
    /// A national mix: heartbeats, GPS fixes from the mobile devices, technical events,
    /// telemetry and a few alarms.
    Mixed,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::GpsFleet => "gps-fleet",
            Scenario::AlarmStorm => "alarm-storm",
            Scenario::HeartbeatFleet => "heartbeat-fleet",
            Scenario::Mixed => "mixed",
        }
    }

    /// The rate (events/s) when `--rate` is not given.
    pub fn default_rate(self, devices: usize, duration: Duration) -> f64 {
        let d = devices.max(1) as f64;
        match self {
            Scenario::GpsFleet => d / 10.0,
            Scenario::AlarmStorm => d / duration.as_secs_f64().max(0.001),
            Scenario::HeartbeatFleet => d / 60.0,
            Scenario::Mixed => d / 20.0,
        }
    }

    /// The slot bound implied by the scenario itself (an alarm storm alarms each device once).
    pub fn natural_count(self, devices: usize) -> Option<u64> {
        (self == Scenario::AlarmStorm).then_some(devices as u64)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// SCAIP stc code and priority 0..=9.
    Alarm {
        code: &'static str,
        priority: u32,
    },
    Technical {
        code: &'static str,
        restoral: bool,
    },
    Heartbeat,
    Position {
        time_ms: i64,
        lat: f64,
        lon: f64,
        accuracy_m: f32,
    },
    Telemetry {
        name: &'static str,
        value: f64,
    },
}

impl Kind {
    /// Alarms travel on to a centre; everything else ends at the device's ack.
    pub fn is_alarm(&self) -> bool {
        matches!(self, Kind::Alarm { .. })
    }
}

/// One event of the plan: device index into the fleet, idempotency key, body.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    pub device: usize,
    /// Unique across runs, 1..=16 ASCII alphanumerics (valid as a SCAIP `ref` too).
    pub key: String,
    pub kind: Kind,
}

/// Where a device is and where it drifts.
struct Walk {
    lat: f64,
    lon: f64,
    /// Metres per fix in a fixed direction (radians) for devices leaving their fence.
    drift: Option<(f64, f64)>,
}

const METRES_PER_DEG_LAT: f64 = 111_320.0;

impl Walk {
    fn step(&mut self, rng: &mut StdRng) {
        let (mut north, mut east) = {
            let (d, a) = (
                rng.random_range(0.0..15.0),
                rng.random_range(0.0..std::f64::consts::TAU),
            );
            (d * a.cos(), d * a.sin())
        };
        if let Some((m, a)) = self.drift {
            north += m * a.cos();
            east += m * a.sin();
        }
        self.lat += north / METRES_PER_DEG_LAT;
        self.lon += east / (METRES_PER_DEG_LAT * self.lat.to_radians().cos());
    }
}

/// Base-36 digits of `n` (lower case).
fn base36(mut n: u64) -> String {
    const D: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(D[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

/// The planned events of a run, generated slot by slot (deterministic for a seed).
pub struct Plan {
    scenario: Scenario,
    devices: usize,
    nonce: String,
    walks: Vec<Walk>,
    rng: StdRng,
}

impl Plan {
    /// `nonce` makes the keys of this run differ from earlier runs' (the server remembers keys
    /// for its idempotency window): at most 6 base-36 digits are used.
    pub fn new(scenario: Scenario, devices: usize, seed: u64, nonce: u64) -> Plan {
        assert!(devices > 0, "a plan needs at least one device");
        let mut rng = StdRng::seed_from_u64(seed);
        let walks = (0..devices)
            .map(|i| Walk {
                lat: rng.random_range(55.5..67.5),
                lon: rng.random_range(12.0..22.0),
                drift: (i % 20 == 7).then(|| (50.0, rng.random_range(0.0..std::f64::consts::TAU))),
            })
            .collect();
        let mut nonce = base36(nonce % 36u64.pow(6));
        while nonce.len() < 6 {
            nonce.insert(0, '0');
        }
        Plan {
            scenario,
            devices,
            nonce,
            walks,
            rng,
        }
    }

    pub fn devices(&self) -> usize {
        self.devices
    }

    /// The event of slot `slot`, sent at wall-clock `now_ms` (fix times).
    pub fn event(&mut self, slot: u64, now_ms: i64) -> Planned {
        let device = (slot % self.devices as u64) as usize;
        let key = format!("{}{}", self.nonce, base36(slot));
        let kind = match self.scenario {
            Scenario::GpsFleet => self.position(device, now_ms),
            Scenario::AlarmStorm => Kind::Alarm {
                code: "0010",
                priority: 5,
            },
            Scenario::HeartbeatFleet => Kind::Heartbeat,
            Scenario::Mixed => {
                // Per 1000 events: 600 heartbeats, 360 fixes, 20 technical, 10 telemetry, 10 alarms.
                match self.rng.random_range(0..1000) {
                    0..600 => Kind::Heartbeat,
                    600..960 => self.position(device, now_ms),
                    960..980 => Kind::Technical {
                        code: "BATLOW",
                        restoral: self.rng.random_bool(0.5),
                    },
                    980..990 => Kind::Telemetry {
                        name: "temp",
                        value: self.rng.random_range(15.0..25.0),
                    },
                    _ => Kind::Alarm {
                        code: "0010",
                        priority: 5,
                    },
                }
            }
        };
        Planned { device, key, kind }
    }

    fn position(&mut self, device: usize, now_ms: i64) -> Kind {
        let w = &mut self.walks[device];
        w.step(&mut self.rng);
        Kind::Position {
            time_ms: now_ms,
            lat: w.lat,
            lon: w.lon,
            accuracy_m: self.rng.random_range(5.0..25.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_short_alphanumerics() {
        let mut p = Plan::new(Scenario::Mixed, 7, 1, 36u64.pow(6) + 5);
        let mut seen = std::collections::HashSet::new();
        for slot in [0, 1, 35, 36, u32::MAX as u64, u64::MAX / 1_000_000] {
            let e = p.event(slot, 0);
            assert!(
                e.key.len() <= 16 && e.key.chars().all(|c| c.is_ascii_alphanumeric()),
                "{}",
                e.key
            );
            assert!(e.key.starts_with("000005"));
            assert!(seen.insert(e.key));
        }
    }

    #[test]
    fn devices_take_turns_and_the_storm_alarms_each_once() {
        let mut p = Plan::new(Scenario::AlarmStorm, 3, 1, 0);
        let d: Vec<usize> = (0..6).map(|s| p.event(s, 0).device).collect();
        assert_eq!(d, [0, 1, 2, 0, 1, 2]);
        assert!(p.event(0, 0).kind.is_alarm());
        assert_eq!(Scenario::AlarmStorm.natural_count(300), Some(300));
        assert_eq!(
            Scenario::AlarmStorm.default_rate(300, Duration::from_secs(3)),
            100.0
        );
        assert_eq!(
            Scenario::HeartbeatFleet.default_rate(600, Duration::from_secs(3)),
            10.0
        );
    }

    #[test]
    fn drifting_devices_leave_home_and_walkers_stay_near() {
        let mut p = Plan::new(Scenario::GpsFleet, 20, 3, 0);
        let pos = |k: &Kind| match k {
            Kind::Position { lat, lon, .. } => (*lat, *lon),
            other => panic!("{other:?}"),
        };
        let first: Vec<_> = (0..20).map(|s| pos(&p.event(s, 0).kind)).collect();
        let mut last = first.clone();
        for s in 20..20 * 40 {
            let e = p.event(s, 0);
            last[e.device] = pos(&e.kind);
        }
        let metres = |a: (f64, f64), b: (f64, f64)| {
            let n = (a.0 - b.0) * METRES_PER_DEG_LAT;
            let e = (a.1 - b.1) * METRES_PER_DEG_LAT * a.0.to_radians().cos();
            (n * n + e * e).sqrt()
        };
        assert!(metres(first[7], last[7]) > 1000.0, "device 7 drifts away");
        assert!(
            metres(first[0], last[0]) < 600.0,
            "device 0 wanders near home"
        );
    }

    #[test]
    fn same_seed_same_plan() {
        let mut a = Plan::new(Scenario::Mixed, 5, 42, 1);
        let mut b = Plan::new(Scenario::Mixed, 5, 42, 1);
        for s in 0..100 {
            assert_eq!(a.event(s, 1000), b.event(s, 1000));
        }
    }
}
