//! One JSON Schema (2020-12) document per file of the archive, describing one line. The
//! directory's are generated from the records' own schema (utoipa, as the OpenAPI document
//! is); the others are written here from the stored types (`vaka_core::Alarm`,
//! `AuditRecord`, `Event`, `Fix`, `vaka_store::directory::AdminAuditEntry`), and a test
//! checks every line of an export against their required and known properties.
use serde_json::{json, Value};
use utoipa::openapi::{RefOr, Schema};
use utoipa::ToSchema;
use vaka_core::directory::{CentreRecord, DeadlinePolicyRecord, DeviceRecord, TenantRecord};

use super::Kind;

const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The schema document of `kind`'s lines.
pub fn schema(kind: Kind) -> Value {
    let mut doc = match kind {
        Kind::Tenant => generated::<TenantRecord>(),
        Kind::Centres => generated::<CentreRecord>(),
        Kind::Policies => generated::<DeadlinePolicyRecord>(),
        Kind::Devices => generated::<DeviceRecord>(),
        Kind::Alarms => alarm_line(),
        Kind::Events => event_line(),
        Kind::Positions => position_line(),
        Kind::AdminAudit => admin_audit_line(),
    };
    doc["$schema"] = json!(DIALECT);
    doc["$id"] = json!(kind.schema_file());
    doc["description"] = json!(format!("One line of {}: {}.", kind.file(), kind.about()));
    doc
}

/// A record's schema from its `ToSchema`, the schemas it refers to under `$defs`.
fn generated<T: ToSchema>() -> Value {
    let mut defs = Vec::<(String, RefOr<Schema>)>::new();
    T::schemas(&mut defs);
    let mut doc = serde_json::to_value(T::schema()).expect("a schema serialises");
    let defs: serde_json::Map<String, Value> = defs
        .into_iter()
        .map(|(n, s)| (n, serde_json::to_value(s).expect("a schema serialises")))
        .collect();
    if !defs.is_empty() {
        doc["$defs"] = Value::Object(defs);
    }
    // OpenAPI's references point into its components; here they are this document's.
    let text = doc.to_string().replace("#/components/schemas/", "#/$defs/");
    let mut doc: Value = serde_json::from_str(&text).expect("re-reads");
    // Exported without it (the engine's change counter); an import ignores one given.
    if let Some(req) = doc.get_mut("required").and_then(Value::as_array_mut) {
        req.retain(|r| r != "revision");
    }
    doc
}

fn ms() -> Value {
    json!({"type": "integer", "description": "unix milliseconds"})
}

fn opt(v: Value) -> Value {
    json!({"anyOf": [v, {"type": "null"}]})
}

fn device_key() -> Value {
    json!({"type": "object", "required": ["tenant", "device"], "properties": {
        "tenant": {"type": "string"}, "device": {"type": "string"}}})
}

fn fix() -> Value {
    json!({"type": "object", "required": ["time_ms", "lat", "lon", "valid"], "properties": {
        "time_ms": ms(), "lat": {"type": "number", "description": "WGS84 degrees"},
        "lon": {"type": "number", "description": "WGS84 degrees"},
        "accuracy_m": opt(json!({"type": "number"})), "speed_mps": opt(json!({"type": "number"})),
        "course_deg": opt(json!({"type": "number"})), "valid": {"type": "boolean"}}})
}

/// An externally tagged enum: a unit variant is its name, a data variant an object of one key.
fn tagged(units: &[&str], data: &[&str]) -> Value {
    let mut any = vec![json!({"enum": units})];
    for d in data {
        any.push(
            json!({"type": "object", "required": [d], "maxProperties": 1,
            "properties": {*d: {"type": "object"}}}),
        );
    }
    json!({"anyOf": any})
}

fn audit_record() -> Value {
    json!({"type": "object", "required": ["alarm", "at_ms", "actor", "action", "reason"],
        "properties": {
            "alarm": {"type": "integer", "description": "the alarm's id"},
            "at_ms": ms(),
            "actor": {"type": "string", "description": "device, engine, centre:<id>, operator:<id>, token:<id>"},
            "action": {"type": "string", "description": "the transition, e.g. offered, receipted, accepted, escalated, closed"},
            "reason": {"type": "string"}}})
}

fn alarm_line() -> Value {
    let stages = [
        "durable_ms",
        "offered_ms",
        "receipted_ms",
        "accepted_ms",
        "attended_ms",
        "closed_ms",
    ];
    let stages: serde_json::Map<String, Value> =
        stages.iter().map(|s| (s.to_string(), opt(ms()))).collect();
    let alarm = json!({"type": "object",
        "required": ["id", "device", "reference", "kind", "code", "priority", "text", "callback",
            "state", "step", "deadline", "repeats", "created_ms", "updated_ms", "stages", "test"],
        "properties": {
            "id": {"type": "integer", "description": "also the id of the event that opened it"},
            "device": device_key(),
            "reference": {"type": "string", "description": "the device's reference (SCAIP ref) of the opening message"},
            "kind": {"enum": ["Help", "Technical", "Silent", "GeofenceExit"]},
            "code": {"type": "string"},
            "priority": {"type": "integer", "minimum": 0, "maximum": 255},
            "text": opt(json!({"type": "string"})),
            "callback": {"type": "array", "items": {"type": "string"}},
            "state": tagged(&["Pending", "Cancelled", "Unhandled", "Expired"],
                &["Offered", "Receipted", "Accepted", "Closed"]),
            "step": {"type": "integer", "description": "index of the responsible centre in the chain"},
            "deadline": opt(json!({"type": "object", "required": ["kind", "at_ms"], "properties": {
                "kind": {"enum": ["Receipt", "Accept"]}, "at_ms": ms()}})),
            "repeats": {"type": "integer"},
            "created_ms": ms(), "updated_ms": ms(),
            "stages": {"type": "object", "properties": stages},
            "test": {"type": "boolean"}}});
    json!({"title": "alarm with its audit trail", "type": "object",
        "required": ["alarm", "audit"],
        "properties": {"alarm": alarm, "audit": {"type": "array", "items": audit_record()}}})
}

fn event_line() -> Value {
    let event = json!({"type": "object",
        "required": ["device", "key", "received_ms", "kind", "fix", "raw"],
        "properties": {
            "device": device_key(),
            "key": {"type": "string", "description": "the sender's idempotency key (SCAIP ref, vaka/1 event key)"},
            "received_ms": ms(),
            "kind": tagged(&["Heartbeat", "Position", "Silent"],
                &["Alarm", "Technical", "Telemetry", "Reset", "Geofence", "Rule"]),
            "fix": opt(fix()),
            "raw": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 255},
                "description": "the message as received, byte by byte"},
            "occurred_ms": opt(ms())}});
    json!({"title": "event", "type": "object", "required": ["id", "event"],
        "properties": {"id": {"type": "integer"}, "event": event}})
}

fn position_line() -> Value {
    json!({"title": "position", "type": "object", "required": ["device", "position"],
        "properties": {
            "device": {"type": "string"},
            "position": {"type": "object", "required": ["event", "received_ms", "fix"], "properties": {
                "event": {"type": "integer", "description": "the id of the event that carried it"},
                "received_ms": ms(), "fix": fix()}}}})
}

fn admin_audit_line() -> Value {
    json!({"title": "admin audit entry", "type": "object",
        "required": ["revision", "at_ms", "actor", "action", "resource"],
        "properties": {
            "revision": {"type": "integer", "description": "the directory revision of the change (in the engine that made it)"},
            "at_ms": ms(),
            "actor": {"type": "string"},
            "tenant": opt(json!({"type": "string"})),
            "action": {"type": "string"},
            "resource": {"type": "string"},
            "before": {"description": "the record before (HA1 values redacted)"},
            "after": {"description": "the record after (HA1 values redacted)"}}})
}

/// Checks `line` against the object structure of `schema`: required properties present, no
/// property it does not name, recursively through nested object schemas (references and
/// `anyOf` are not followed). Enough to catch a schema that drifted from the stored types.
pub fn check_shape(schema: &Value, line: &Value, at: &str) -> Result<(), String> {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Ok(());
    };
    let obj = line
        .as_object()
        .ok_or_else(|| format!("{at}: not an object"))?;
    for r in schema["required"].as_array().into_iter().flatten() {
        let r = r.as_str().unwrap_or_default();
        if !obj.contains_key(r) {
            return Err(format!("{at}: required \"{r}\" missing"));
        }
    }
    for (k, v) in obj {
        let sub = props
            .get(k)
            .ok_or_else(|| format!("{at}: \"{k}\" not in the schema"))?;
        check_shape(sub, v, &format!("{at}.{k}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_schema_with_properties() {
        for k in Kind::ALL {
            let s = schema(k);
            assert_eq!(s["$schema"], DIALECT);
            assert!(
                s["properties"].as_object().is_some_and(|p| !p.is_empty()),
                "{k:?}: {s}"
            );
            assert!(
                !s.to_string().contains("#/components/"),
                "{k:?}: a reference left pointing into OpenAPI components"
            );
        }
        let t = schema(Kind::Tenant);
        assert!(t["properties"]["centres"].is_object(), "{t}");
    }
}
