//! What reading a backup costs before it is read: Cloud Storage bills every
//! request and, for the cold classes, every byte retrieved, and a library kept in
//! Archive is cheap to store and dear to touch. [`Prices`] is data only (Google's
//! list prices of late 2026 for us-central1 by default, overridable from a config
//! file); [`Usage`] counts what a command will do; [`Prices::estimate`] prices it.
//!
//! ```
//! use imb_cost::{Prices, Usage};
//! let mut u = Usage::default();
//! u.read(Some("ARCHIVE"), 10 << 30); // 10 GiB out of Archive, one GET
//! let e = Prices::default().estimate(&u);
//! assert_eq!(e.bytes_retrieved, 10 << 30);
//! assert!((e.estimated_usd - (10.0 * 0.05 + 10.0 * 0.12 + 0.00005)).abs() < 1e-9);
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// When the default prices were Google's list prices.
pub const PRICES_AS_OF: &str = "list prices of late 2026 (us-central1); check yours";

/// One storage class's prices, in US dollars.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassPrices {
    /// Storing a GiB for a month.
    pub storage_per_gib_month: f64,
    /// Reading a GiB back (the cold classes' retrieval fee).
    pub retrieval_per_gib: f64,
    /// 10,000 Class A operations (creates, copies, listings).
    pub class_a_per_10k: f64,
    /// 10,000 Class B operations (reads, metadata reads).
    pub class_b_per_10k: f64,
    /// Days an object is billed for however early it is deleted or replaced.
    pub min_days: u32,
}

/// The price table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// Internet egress per GiB (0 when the reader runs in the bucket's region).
    pub egress_per_gib: f64,
    /// Prices by storage class name, as Cloud Storage spells it.
    pub classes: BTreeMap<String, ClassPrices>,
}

impl Default for Prices {
    fn default() -> Self {
        let c = |storage, retrieval, a, b, min_days| ClassPrices {
            storage_per_gib_month: storage,
            retrieval_per_gib: retrieval,
            class_a_per_10k: a,
            class_b_per_10k: b,
            min_days,
        };
        Prices {
            egress_per_gib: 0.12,
            classes: BTreeMap::from([
                ("STANDARD".into(), c(0.020, 0.0, 0.05, 0.004, 0)),
                ("NEARLINE".into(), c(0.010, 0.01, 0.10, 0.01, 30)),
                ("COLDLINE".into(), c(0.004, 0.02, 0.20, 0.10, 90)),
                ("ARCHIVE".into(), c(0.0012, 0.05, 0.50, 0.50, 365)),
            ]),
        }
    }
}

/// Overrides of the table from a config file: any field left out keeps its
/// default; a class not in the table starts from Archive's prices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriceOverrides {
    /// Internet egress per GiB.
    pub egress_per_gib: Option<f64>,
    /// Per class.
    pub classes: BTreeMap<String, ClassOverrides>,
}

/// Overrides of one class's prices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct ClassOverrides {
    pub storage_per_gib_month: Option<f64>,
    pub retrieval_per_gib: Option<f64>,
    pub class_a_per_10k: Option<f64>,
    pub class_b_per_10k: Option<f64>,
    pub min_days: Option<u32>,
}

impl Prices {
    /// The table with `o` laid over it.
    pub fn with(mut self, o: &PriceOverrides) -> Self {
        if let Some(e) = o.egress_per_gib {
            self.egress_per_gib = e;
        }
        for (name, c) in &o.classes {
            let base = self.class(name);
            let p = self
                .classes
                .entry(name.to_ascii_uppercase())
                .or_insert(base);
            let set = |v: &mut f64, o: Option<f64>| *v = o.unwrap_or(*v);
            set(&mut p.storage_per_gib_month, c.storage_per_gib_month);
            set(&mut p.retrieval_per_gib, c.retrieval_per_gib);
            set(&mut p.class_a_per_10k, c.class_a_per_10k);
            set(&mut p.class_b_per_10k, c.class_b_per_10k);
            p.min_days = c.min_days.unwrap_or(p.min_days);
        }
        self
    }

    /// A class's prices. The legacy names (`MULTI_REGIONAL`, `REGIONAL`,
    /// `DURABLE_REDUCED_AVAILABILITY`) are priced as Standard; a name the table
    /// does not know as Archive, the dearest to read, so an estimate errs high.
    pub fn class(&self, name: &str) -> ClassPrices {
        let upper = name.to_ascii_uppercase();
        let key = match upper.as_str() {
            "MULTI_REGIONAL" | "REGIONAL" | "DURABLE_REDUCED_AVAILABILITY" => "STANDARD",
            other => other,
        };
        self.classes
            .get(key)
            .or_else(|| self.classes.get("ARCHIVE"))
            .copied()
            .unwrap_or(ClassPrices {
                storage_per_gib_month: 0.0,
                retrieval_per_gib: 0.0,
                class_a_per_10k: 0.0,
                class_b_per_10k: 0.0,
                min_days: 0,
            })
    }

    /// What `u` costs.
    pub fn estimate(&self, u: &Usage) -> Estimate {
        const GIB: f64 = (1u64 << 30) as f64;
        let mut usd = 0.0;
        for (class, n) in &u.class_a {
            usd += *n as f64 * self.class(class).class_a_per_10k / 10_000.0;
        }
        for (class, n) in &u.class_b {
            usd += *n as f64 * self.class(class).class_b_per_10k / 10_000.0;
        }
        let mut retrieved = 0;
        for (class, bytes) in &u.read_bytes {
            retrieved += bytes;
            usd +=
                *bytes as f64 / GIB * (self.class(class).retrieval_per_gib + self.egress_per_gib);
        }
        Estimate {
            operations: u.class_a.values().sum::<u64>() + u.class_b.values().sum::<u64>(),
            bytes_retrieved: retrieved,
            estimated_usd: usd,
            prices: PRICES_AS_OF,
        }
    }
}

/// What a command does to a priced store, by storage class. Calls with no class
/// (a local directory) are free and not counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Class A operations (creates, copies, listings).
    pub class_a: BTreeMap<String, u64>,
    /// Class B operations (reads, metadata reads).
    pub class_b: BTreeMap<String, u64>,
    /// Object bytes read back.
    pub read_bytes: BTreeMap<String, u64>,
    /// Object bytes written (free to send; what the class then stores).
    pub written_bytes: BTreeMap<String, u64>,
}

impl Usage {
    /// One object of `class` written: a Class A operation and its bytes.
    pub fn write(&mut self, class: Option<&str>, bytes: u64) {
        self.class_a(class, 1);
        if let Some(c) = class {
            *self.written_bytes.entry(c.to_owned()).or_default() += bytes;
        }
    }

    /// `n` Class A operations on objects of `class`.
    pub fn class_a(&mut self, class: Option<&str>, n: u64) {
        if let Some(c) = class.filter(|_| n > 0) {
            *self.class_a.entry(c.to_owned()).or_default() += n;
        }
    }

    /// `n` Class B operations on objects of `class`.
    pub fn class_b(&mut self, class: Option<&str>, n: u64) {
        if let Some(c) = class.filter(|_| n > 0) {
            *self.class_b.entry(c.to_owned()).or_default() += n;
        }
    }

    /// One object of `class` read whole: a Class B operation and its bytes.
    pub fn read(&mut self, class: Option<&str>, bytes: u64) {
        self.class_b(class, 1);
        if let Some(c) = class {
            *self.read_bytes.entry(c.to_owned()).or_default() += bytes;
        }
    }

    /// Adds `other`.
    pub fn add(&mut self, other: &Usage) {
        for (m, o) in [
            (&mut self.class_a, &other.class_a),
            (&mut self.class_b, &other.class_b),
            (&mut self.read_bytes, &other.read_bytes),
            (&mut self.written_bytes, &other.written_bytes),
        ] {
            for (k, v) in o {
                *m.entry(k.clone()).or_default() += v;
            }
        }
    }
}

/// A priced [`Usage`]: the `cost` object of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    /// Requests to the store.
    pub operations: u64,
    /// Object bytes read back.
    pub bytes_retrieved: u64,
    /// What that costs at the table's prices, retrieval and egress included.
    pub estimated_usd: f64,
    /// Which prices.
    pub prices: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_by_class_and_overrides() {
        let p = Prices::default();
        let mut u = Usage::default();
        u.class_a(Some("STANDARD"), 10_000);
        u.class_b(Some("ARCHIVE"), 20_000);
        u.class_b(None, 1_000_000); // a local directory: free
        let e = p.estimate(&u);
        assert_eq!(e.operations, 30_000);
        assert!(
            (e.estimated_usd - (0.05 + 2.0 * 0.50)).abs() < 1e-9,
            "{e:?}"
        );
        // Legacy and unknown names.
        assert_eq!(p.class("regional"), p.class("STANDARD"));
        assert_eq!(p.class("SOMETHING_NEW"), p.class("ARCHIVE"));
        // A config file sets what it names and keeps the rest.
        let o: PriceOverrides =
            toml::from_str("egress_per_gib = 0.0\n[classes.archive]\nretrieval_per_gib = 0.06\n")
                .unwrap();
        assert!(
            toml::from_str::<PriceOverrides>("[classes.ARCHIVE]\nretreival_per_gib = 1.0\n")
                .is_err(),
            "a misspelt key is an error, not a silent default"
        );
        let q = p.clone().with(&o);
        assert_eq!(q.egress_per_gib, 0.0);
        assert_eq!(q.class("ARCHIVE").retrieval_per_gib, 0.06);
        assert_eq!(q.class("ARCHIVE").class_b_per_10k, 0.50);
        let mut r = Usage::default();
        r.read(Some("ARCHIVE"), 1 << 30);
        assert!((q.estimate(&r).estimated_usd - (0.06 + 0.00005)).abs() < 1e-9);
    }
}
