//! Reads the engine's own Prometheus text (what `/metrics` answers), so the dashboard shows the
//! same figures as /metrics by construction. The format is the exporter's: `name{k="v",...} value`
//! lines (label values escaped with `\\`, `\"`, `\n`), `#` comments. Small enough to read here
//! rather than take a parser crate (the maintained ones bring a date-time library along).
use std::collections::BTreeMap;

/// One sample: its labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample by metric name (histograms as their `_bucket`, `_sum`, `_count` series).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics(pub BTreeMap<String, Vec<Sample>>);

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut out: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((name, sample)) = parse_line(line) {
                out.entry(name).or_default().push(sample);
            }
        }
        Metrics(out)
    }

    /// The samples of `name` whose labels include every pair of `with`.
    pub fn select<'a>(
        &'a self,
        name: &str,
        with: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.get(name).into_iter().flatten().filter(move |s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The sum of the samples of `name` with these labels; `None` when there is none.
    pub fn sum(&self, name: &str, with: &[(&str, &str)]) -> Option<f64> {
        let mut it = self.select(name, with).peekable();
        it.peek()?;
        Some(it.map(|s| s.value).sum())
    }

    /// The sum by the value of `label` (samples without it are left out).
    pub fn by_label(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in self.select(name, &[]) {
            if let Some(v) = s.labels.get(label) {
                *out.entry(v.clone()).or_insert(0.0) += s.value;
            }
        }
        out
    }

    /// A histogram's cumulative buckets `(le, count)` summed over the samples matching `with`
    /// (and over `tenants`, when given, by their `tenant` label), in bound order.
    pub fn buckets(
        &self,
        name: &str,
        with: &[(&str, &str)],
        tenants: Option<&[String]>,
    ) -> Vec<(f64, f64)> {
        let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for s in self.select(&format!("{name}_bucket"), with) {
            if let Some(ts) = tenants {
                if !s.labels.get("tenant").is_some_and(|t| ts.contains(t)) {
                    continue;
                }
            }
            let Some(le) = s.labels.get("le").and_then(|le| parse_value(le)) else {
                continue;
            };
            // f64 bounds ordered by their bits (all are non-negative).
            by_le.entry(le.to_bits()).or_insert((le, 0.0)).1 += s.value;
        }
        by_le.into_values().collect()
    }
}

fn parse_line(line: &str) -> Option<(String, Sample)> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        loop {
            let (_, c) = chars.next()?;
            match c {
                '}' => {
                    let used = inner.len() - chars.as_str().len();
                    rest = &inner[used..];
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        }
    }
    let value = parse_value(rest.split_whitespace().next()?)?;
    Some((name, Sample { labels, value }))
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

/// The `q` quantile of cumulative `buckets` (Prometheus's `histogram_quantile`: linear within
/// the bucket it falls in; the top finite bound when it falls in `+Inf`); `None` without data.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = count - lower.1;
            let frac = if in_bucket > 0.0 {
                (rank - lower.1) / in_bucket
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * frac);
        }
        lower = (le, count);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE vaka_udp_drops_total counter\n\
        vaka_udp_drops_total{socket=\"sip\"} 3\n\
        vaka_udp_drops_total{socket=\"quic\"} 4\n\
        vaka_centres_connected 2\n\
        odd{a=\"x\\\"y,z\",b=\"\\\\\"} 1.5\n\
        h_bucket{tenant=\"t1\",le=\"0.1\"} 1\n\
        h_bucket{tenant=\"t1\",le=\"1\"} 3\n\
        h_bucket{tenant=\"t1\",le=\"+Inf\"} 4\n\
        h_bucket{tenant=\"t2\",le=\"0.1\"} 10\n\
        h_bucket{tenant=\"t2\",le=\"1\"} 10\n\
        h_bucket{tenant=\"t2\",le=\"+Inf\"} 10\n";

    #[test]
    fn reads_samples_labels_and_escapes() {
        let m = Metrics::parse(TEXT);
        assert_eq!(m.sum("vaka_udp_drops_total", &[]), Some(7.0));
        assert_eq!(
            m.sum("vaka_udp_drops_total", &[("socket", "sip")]),
            Some(3.0)
        );
        assert_eq!(m.sum("vaka_centres_connected", &[]), Some(2.0));
        assert_eq!(m.sum("absent", &[]), None);
        let odd = m.select("odd", &[]).next().unwrap();
        assert_eq!(odd.labels["a"], "x\"y,z");
        assert_eq!(odd.labels["b"], "\\");
        assert_eq!(odd.value, 1.5);
    }

    #[test]
    fn quantiles_of_one_tenants_buckets() {
        let m = Metrics::parse(TEXT);
        let t1 = m.buckets("h", &[], Some(&["t1".to_string()]));
        assert_eq!(t1, vec![(0.1, 1.0), (1.0, 3.0), (f64::INFINITY, 4.0)]);
        // Rank 2 of 4 lies halfway through (0.1, 1].
        assert!((quantile(0.5, &t1).unwrap() - 0.55).abs() < 1e-9);
        assert_eq!(quantile(0.99, &t1), Some(1.0));
        let all = m.buckets("h", &[], None);
        assert_eq!(all[0], (0.1, 11.0));
        assert_eq!(quantile(0.5, &[]), None);
    }
}
