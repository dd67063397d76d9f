//! The words people read: the SMS body from its template, the e-mail's subject and body. Pure.
use crate::payload::AlarmJson;

pub const DEFAULT_SMS_TEMPLATE: &str = "Larm: {what} från {device} {when}. Öppna: {link}";

/// What happened, in a few words.
pub fn what(a: &AlarmJson) -> String {
    let base = match a.kind {
        "help" => "Hjälplarm",
        "technical" => "Tekniskt larm",
        "silent" => "Enheten tyst",
        "geofence_exit" => "Lämnat område",
        _ => "Larm",
    };
    match &a.text {
        Some(t) if !t.trim().is_empty() => format!("{base} ({})", t.trim()),
        _ => base.to_owned(),
    }
}

/// "HH:MM UTC" of unix milliseconds (the page shows local time; a message stays short).
pub fn clock(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let day = secs.rem_euclid(86_400);
    format!("{:02}:{:02} UTC", day / 3600, (day % 3600) / 60)
}

/// The template with `{what}`, `{device}`, `{tenant}`, `{when}` and `{link}` filled in.
pub fn render(template: &str, a: &AlarmJson, link: &str) -> String {
    template
        .replace("{what}", &what(a))
        .replace("{device}", &a.device)
        .replace("{tenant}", &a.tenant)
        .replace("{when}", &clock(a.created_ms))
        .replace("{link}", link)
}

pub fn email_subject(a: &AlarmJson) -> String {
    format!("{} – {}", what(a), a.device)
}

pub fn email_body(a: &AlarmJson, member: &str, link: &str) -> String {
    let mut s = format!(
        "Hej {member},\n\n{} från {} ({}), {}.\n",
        what(a),
        a.device,
        a.tenant,
        clock(a.created_ms)
    );
    if let Some(p) = &a.position {
        s.push_str(&format!("Position: {:.5}, {:.5}", p.lat, p.lon));
        if let Some(acc) = p.accuracy_m {
            s.push_str(&format!(" (±{acc:.0} m)"));
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "\nÖppna länken för att se larmet och ta emot det:\n{link}\n"
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm() -> AlarmJson {
        AlarmJson {
            id: 7,
            tenant: "t".into(),
            device: "tracker".into(),
            device_type: "0051".into(),
            kind: "geofence_exit",
            code: "geofence-exit:home".into(),
            priority: 1,
            text: None,
            state: "offered".into(),
            holder: None,
            operator: None,
            position: None,
            created_ms: 3_600_000 + 5 * 60_000,
            updated_ms: 0,
            test: false,
        }
    }

    #[test]
    fn the_template_is_filled_in() {
        let s = render(DEFAULT_SMS_TEMPLATE, &alarm(), "https://x/r/abc");
        assert_eq!(
            s,
            "Larm: Lämnat område från tracker 01:05 UTC. Öppna: https://x/r/abc"
        );
    }
}
