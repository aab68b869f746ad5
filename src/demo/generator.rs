//! The demo's producer: a steady stream of realistic events for the demo
//! tenants, published through `ops` like any producer's would be.

use std::time::Duration;

use tokio::sync::watch;

use super::cast::TENANTS;
use crate::ops::{EventInput, Ops};

const BRANDS: &[&str] = &["Bosch", "Miele", "Siemens", "AEG", "Liebherr", "Smeg"];
const KINDS: &[&str] = &["washer", "dryer", "dishwasher", "fridge", "oven", "hob"];
const STATUSES: &[&str] = &["in_stock", "back_order", "discontinued", "pre_order"];
const PLANS: &[&str] = &["starter", "team", "business", "enterprise"];
const REASONS: &[&str] = &["too_expensive", "missing_feature", "switched", "unused"];
const NAMES: &[&str] = &[
    "Ada Ng",
    "Björn Ek",
    "Chloé Martin",
    "Dara O'Neil",
    "Emeka Obi",
];

/// Publishes `rate` events a second until `stop` turns true, counting what
/// it published (failures are logged and not counted).
pub async fn run(ops: Ops, rate: f64, mut stop: watch::Receiver<bool>) -> u64 {
    let mut published = 0u64;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rng = fastrand::Rng::new();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let (tenant, topics) = TENANTS[rng.usize(..TENANTS.len())];
        let topic = topics[rng.usize(..topics.len())];
        let input = EventInput {
            tenant: Some(tenant.to_string()),
            topic: topic.to_string(),
            payload: payload(topic, published, &mut rng).into(),
            ..EventInput::default()
        };
        match ops.publish(input).await {
            Ok(_) => published += 1,
            Err(err) => tracing::warn!(%err, topic, "demo generator could not publish"),
        }
    }
    published
}

/// A payload such as the producers in each field send.
fn payload(topic: &str, n: u64, rng: &mut fastrand::Rng) -> String {
    let now = crate::model::format_rfc3339(crate::model::now_millis());
    let pick = |rng: &mut fastrand::Rng, list: &[&'static str]| list[rng.usize(..list.len())];
    let value = match topic {
        "product.price_changed" => {
            let old = rng.u32(199..1999);
            let new = old.saturating_sub(rng.u32(0..200)) + rng.u32(0..50);
            serde_json::json!({
                "sku": format!("{}-{:05}", pick(rng, KINDS).to_uppercase(), rng.u32(..100_000)),
                "brand": pick(rng, BRANDS),
                "category": pick(rng, KINDS),
                "price": {"old": f64::from(old) + 0.99, "new": f64::from(new) + 0.99, "currency": "EUR"},
                "changed_at": now,
            })
        }
        "product.status_changed" => serde_json::json!({
            "sku": format!("{}-{:05}", pick(rng, KINDS).to_uppercase(), rng.u32(..100_000)),
            "brand": pick(rng, BRANDS),
            "status": pick(rng, STATUSES),
            "changed_at": now,
        }),
        "subscription.cancelled" => serde_json::json!({
            "subscription_id": format!("sub_{:08}", n),
            "customer": {"id": format!("cus_{:06}", rng.u32(..1_000_000)), "name": pick(rng, NAMES)},
            "plan": pick(rng, PLANS),
            "reason": pick(rng, REASONS),
            "cancelled_at": now,
        }),
        "resident.update" => serde_json::json!({
            "resident_id": format!("res_{:06}", rng.u32(..1_000_000)),
            "unit": format!("{}{:02}", rng.u32(1..12), rng.u32(1..40)),
            "name": pick(rng, NAMES),
            "changes": {"phone": format!("+44 7700 9{:05}", rng.u32(..100_000))},
            "updated_at": now,
        }),
        "resident.delete" => serde_json::json!({
            "resident_id": format!("res_{:06}", rng.u32(..1_000_000)),
            "unit": format!("{}{:02}", rng.u32(1..12), rng.u32(1..40)),
            "moved_out_at": now,
        }),
        _ => serde_json::json!({ "n": n }),
    };
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_topic_has_a_json_object_payload() {
        let mut rng = fastrand::Rng::with_seed(7);
        for (_, topics) in TENANTS {
            for topic in *topics {
                let text = payload(topic, 1, &mut rng);
                let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert!(value.is_object(), "{topic}: {text}");
                assert!(
                    value.get("n").is_none(),
                    "{topic} fell through to the generic payload"
                );
            }
        }
    }
}
