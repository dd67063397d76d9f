//! Who the simulated devices are: read from the server's own configuration file (the devices of
//! one tenant, their SIP passwords; the centre token; the listen ports), so the load hits devices
//! the server knows. `write_fleet_config` makes such a configuration with many devices.
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use toml::Value;

#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    pub id: String,
    pub device_type: String,
    /// SIP digest password, if the device has one.
    pub password: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fleet {
    pub tenant: String,
    pub devices: Vec<Device>,
    /// Bearer token of the first centre serving the tenant.
    pub centre_token: Option<String>,
    /// The server's listen addresses, with unspecified hosts (0.0.0.0) made loopback.
    pub quic: Option<SocketAddr>,
    pub grpc: Option<SocketAddr>,
    /// The centre API speaks TLS (`grpc.tls_cert` is set): the simulator trusts the server CA
    /// `vaka certs` wrote (`<certs>/server-ca.pem`).
    pub grpc_tls: bool,
    pub sip_udp: Option<SocketAddr>,
    pub sip_tcp: Option<SocketAddr>,
}

fn local(addr: Option<&Value>) -> Option<SocketAddr> {
    let mut a: SocketAddr = addr?.as_str()?.parse().ok()?;
    if a.ip().is_unspecified() {
        a.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    Some(a)
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key)?.as_str().map(str::to_string)
}

impl Fleet {
    /// The devices of `tenant` (default: the tenant with the most devices) in a vaka.toml.
    pub fn from_config(path: &Path, tenant: Option<&str>) -> Result<Fleet, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let v = Value::Table(
            toml::from_str::<toml::Table>(&text).map_err(|e| format!("{}: {e}", path.display()))?,
        );
        let devices = v
            .get("devices")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let tenant = match tenant {
            Some(t) => t.to_string(),
            None => {
                let mut counts = std::collections::BTreeMap::<String, usize>::new();
                for d in &devices {
                    if let Some(t) = str_of(d, "tenant") {
                        *counts.entry(t).or_default() += 1;
                    }
                }
                counts
                    .into_iter()
                    .max_by_key(|(_, n)| *n)
                    .map(|(t, _)| t)
                    .ok_or_else(|| format!("{}: no [[devices]]", path.display()))?
            }
        };
        let devices: Vec<Device> = devices
            .iter()
            .filter(|d| str_of(d, "tenant").as_deref() == Some(&tenant))
            .filter_map(|d| {
                Some(Device {
                    id: str_of(d, "id")?,
                    device_type: str_of(d, "type").unwrap_or_default(),
                    password: str_of(d, "password"),
                })
            })
            .collect();
        if devices.is_empty() {
            return Err(format!(
                "{}: no devices of tenant {tenant:?}",
                path.display()
            ));
        }
        let centre_token = v
            .get("centres")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| {
                c.get("tenants")
                    .and_then(Value::as_array)
                    .is_some_and(|ts| ts.iter().any(|t| t.as_str() == Some(&tenant)))
            })
            .and_then(|c| str_of(c, "token"));
        let listen = v.get("listen");
        let at = |k: &str| local(listen.and_then(|l| l.get(k)));
        Ok(Fleet {
            tenant,
            devices,
            centre_token,
            quic: at("quic"),
            grpc: at("grpc"),
            grpc_tls: v.get("grpc").is_some_and(|g| g.get("tls_cert").is_some()),
            sip_udp: at("sip_udp"),
            sip_tcp: at("sip_tcp"),
        })
    }

    /// A device's certificate and key under `certs` (as `vaka certs` writes them).
    pub fn cert_paths(&self, certs: &Path, device: &str) -> (PathBuf, PathBuf) {
        let dir = certs.join(&self.tenant);
        (
            dir.join(format!("{device}.pem")),
            dir.join(format!("{device}-key.pem")),
        )
    }
}

/// Refuses targets off this machine unless allowed: a load tool pointed at a production server
/// by mistake would be an attack.
pub fn check_loopback(addr: SocketAddr, allow_remote: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || allow_remote {
        Ok(())
    } else {
        Err(format!(
            "{addr} is not a loopback address; pass --allow-remote to load another machine"
        ))
    }
}

/// `base` (a vaka.toml) with `n` more devices of `tenant` appended: ids `90000000`.. (digits, so
/// that they are SCAIP controller ids too), types in turn personal trigger, GPS tracker, fall
/// detector, SIP password `password`, no heartbeat supervision (idle load devices must not raise
/// "device silent" alarms).
pub fn write_fleet_config(base: &str, tenant: &str, n: usize, password: &str) -> String {
    let mut out = base.trim_end().to_string();
    let _ = writeln!(
        out,
        "\n\n# {n} load-test devices written by `vaka-load fleet-config`."
    );
    for i in 0..n {
        let ty = ["0003", "0051", "0005"][i % 3];
        let _ = write!(
            out,
            "\n[[devices]]\ntenant = \"{tenant}\"\nid = \"9{i:07}\"\ntype = \"{ty}\"\npassword = \"{password}\"\n"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO: &str = include_str!("../../config/vaka.toml");

    #[test]
    fn reads_the_demo_config() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.toml");
        std::fs::write(&p, DEMO).unwrap();
        let f = Fleet::from_config(&p, None).unwrap();
        assert_eq!(f.tenant, "demo");
        let ids: Vec<&str> = f.devices.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["100001", "100002", "100003"]);
        assert_eq!(f.devices[0].password.as_deref(), Some("demo-pass"));
        assert_eq!(f.centre_token.as_deref(), Some("demo-centre-token"));
        assert_eq!(f.quic, Some("127.0.0.1:4433".parse().unwrap()));
        assert_eq!(f.grpc, Some("127.0.0.1:50051".parse().unwrap()));
        assert!(Fleet::from_config(&p, Some("nobody")).is_err());
        assert_eq!(
            f.cert_paths(Path::new("certs"), "100001").0,
            Path::new("certs/demo/100001.pem")
        );
    }

    #[test]
    fn fleet_config_adds_devices_the_reader_finds() {
        let text = write_fleet_config(DEMO, "demo", 5, "pw");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.toml");
        std::fs::write(&p, &text).unwrap();
        let f = Fleet::from_config(&p, Some("demo")).unwrap();
        assert_eq!(f.devices.len(), 8);
        assert_eq!(f.devices[3].id, "90000000");
        assert_eq!(f.devices[7].id, "90000004");
        crate::sip::check_devices(&f, f.devices.len()).expect("the fleet can speak SCAIP");
        assert_eq!(f.devices[4].device_type, "0051");
    }

    #[test]
    fn only_loopback_unless_allowed() {
        assert!(check_loopback("127.0.0.1:4433".parse().unwrap(), false).is_ok());
        assert!(check_loopback("[::1]:4433".parse().unwrap(), false).is_ok());
        let remote = "10.0.0.1:4433".parse().unwrap();
        assert!(check_loopback(remote, false)
            .unwrap_err()
            .contains("--allow-remote"));
        assert!(check_loopback(remote, true).is_ok());
    }
}
