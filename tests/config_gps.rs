//! GPS configuration: filters per tenant with per-device overrides, fences, retention; every
//! error names its key.
use vaka::config::Config;
use vaka_core::gps::Zone;
use vaka_core::{DeviceKey, TenantId};

const BASE: &str = r#"
[defaults]
retention_days = 60

[gps]
retention_sweep_secs = 600
[gps.filter]
accuracy_m = 800
min_period_s = 5

[[tenants]]
id = "t"
retention_days = 10
gps_filter = { accuracy_m = 300, max_speed_kmh = false }

[[tenants]]
id = "u"

[[devices]]
tenant = "t"
id = "1"
type = "0051"
gps_filter = { min_period_s = false }
fences = [
  { id = "home", kind = "circle", lat = 57.7089, lon = 11.9746, radius_m = 500, margin_m = 50, confirm_fixes = 2, confirm_secs = 0 },
  { id = "park", kind = "polygon", points = [[57.70, 11.96], [57.71, 11.96], [57.71, 11.98]], margin_m = 30 },
]

[[devices]]
tenant = "u"
id = "2"
type = "0051"
"#;

fn errors(text: &str) -> Vec<String> {
    match Config::parse(text) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn filters_resolve_default_then_tenant_then_device() {
    let cfg = Config::parse(BASE).unwrap();
    let dir = cfg.directory();
    let d1 = DeviceKey::new("t", "1");
    let d2 = DeviceKey::new("u", "2");
    let f1 = dir.gps.filter(&d1);
    assert_eq!(f1.accuracy_m, Some(300.0), "tenant over [gps.filter]");
    assert_eq!(f1.max_speed_kmh, None, "turned off by the tenant");
    assert_eq!(f1.min_period_s, None, "turned off by the device");
    let f2 = dir.gps.filter(&d2);
    assert_eq!(f2.accuracy_m, Some(800.0));
    assert_eq!(f2.min_period_s, Some(5));
    let fences = dir.gps.fences(&d1);
    assert_eq!(fences.len(), 2);
    assert_eq!(fences[0].id, "home");
    assert_eq!(fences[0].hysteresis.confirm_fixes, 2);
    assert_eq!(
        fences[0].hysteresis.confirm_secs, None,
        "0 turns the time rule off"
    );
    assert_eq!(fences[1].hysteresis.confirm_secs, Some(60), "the default");
    assert!(dir.gps.fences(&d2).is_empty());
    assert_eq!(dir.tenants[&TenantId::new("t")].retention_days, 10);
    assert_eq!(dir.tenants[&TenantId::new("u")].retention_days, 60);
    // Periods per kind: absent in the file, positions and telemetry follow retention_days.
    let t = &dir.tenants[&TenantId::new("t")];
    let days = |k| t.retention.days(k, t.retention_days);
    use vaka_core::retention::Kind;
    assert_eq!(
        [
            Kind::Positions,
            Kind::Telemetry,
            Kind::Alarms,
            Kind::AdminAudit
        ]
        .map(days),
        [Some(10), Some(10), None, None]
    );
    let lowered = BASE
        .replace("[gps]\n", "alarm_retention_min_days = 30\n[gps]\n")
        .replace(
            "retention_days = 10\n",
            "retention_days = 10\nretention = { alarms_days = 30, positions_days = 3 }\n",
        );
    let d = Config::parse(&lowered).unwrap().directory();
    assert_eq!(d.defaults.alarm_retention_min_days, 30);
    let t = &d.tenants[&TenantId::new("t")];
    assert_eq!(t.retention.days(Kind::Positions, t.retention_days), Some(3));
    assert_eq!(t.retention.days(Kind::Alarms, t.retention_days), Some(30));
    let r = cfg.retention_config();
    assert_eq!((r.every.as_secs(), r.default_days), (600, 60));
    // A fresh tracker knows nothing yet.
    assert_eq!(
        vaka_core::gps::DeviceTrack::default().zone("home"),
        Zone::Unknown
    );
}

#[test]
fn bad_gps_settings_name_their_key() {
    let cases: &[(&str, String, &str)] = &[
        (
            "circle without radius",
            BASE.replace("radius_m = 500, ", ""),
            "devices[0].fences[0]: a circle fence needs `radius_m`",
        ),
        (
            "polygon too small",
            BASE.replace(
                "[[57.70, 11.96], [57.71, 11.96], [57.71, 11.98]]",
                "[[57.70, 11.96], [57.71, 11.96]]",
            ),
            "devices[0].fences[1]: a polygon needs at least 3 distinct points",
        ),
        (
            "duplicate fence id",
            BASE.replace("id = \"park\"", "id = \"home\""),
            "devices[0].fences[1].id: duplicate fence \"home\"",
        ),
        (
            "zero confirm fixes",
            BASE.replace("confirm_fixes = 2", "confirm_fixes = 0"),
            "devices[0].fences[0].confirm_fixes: must be at least 1",
        ),
        (
            "negative margin",
            BASE.replace("margin_m = 30", "margin_m = -1"),
            "devices[0].fences[1]: margin_m must be a finite number >= 0",
        ),
        (
            "unknown filter key",
            BASE.replace("accuracy_m = 300,", "acuracy_m = 300,"),
            "acuracy_m",
        ),
        (
            "true is not a limit",
            BASE.replace("max_speed_kmh = false", "max_speed_kmh = true"),
            "tenants[0].gps_filter.max_speed_kmh",
        ),
        (
            "zero retention",
            BASE.replace("retention_days = 10", "retention_days = 0"),
            "tenants[0].retention_days: must be at least 1",
        ),
        (
            "alarms kept less than the platform's minimum (365 days by default)",
            BASE.replace(
                "retention_days = 10\n",
                "retention_days = 10\nretention = { alarms_days = 30 }\n",
            ),
            "tenants[0].retention.alarms_days: 30 days is below the platform's minimum for alarm \
             records, 365 days",
        ),
        (
            "zero telemetry period",
            BASE.replace(
                "retention_days = 10\n",
                "retention_days = 10\nretention = { telemetry_days = 0 }\n",
            ),
            "tenants[0].retention.telemetry_days: must be at least 1",
        ),
        (
            "zero sweep period",
            BASE.replace("retention_sweep_secs = 600", "retention_sweep_secs = 0"),
            "gps.retention_sweep_secs: must be greater than 0",
        ),
    ];
    for (what, text, expect) in cases {
        let errs = errors(text);
        assert!(
            errs.iter().any(|e| e.contains(expect)),
            "{what}: expected {expect:?} in {errs:?}"
        );
    }
}

#[test]
fn demo_tracker_has_its_home_fence() {
    let path = format!(
        "{}/config/vaka.toml",
        std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR: run by cargo")
    );
    let cfg = Config::load(std::path::Path::new(&path)).unwrap();
    let dir = cfg.directory();
    let fences = dir.gps.fences(&DeviceKey::new("demo", "100002"));
    assert_eq!(fences.len(), 1);
    let spec = fences[0].fence.spec();
    assert_eq!(
        (spec.lat, spec.lon, spec.radius_m),
        (Some(57.7089), Some(11.9746), Some(500.0))
    );
}
