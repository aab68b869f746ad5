//! The `/` filter's little language, turned into the query a deliveries
//! list loads.

use super::screens::DeliveryQuery;
use crate::model::{DeliveryState, UnknownVariant};

/// Parses the `/` filter: `state:dead tenant:acme endpoint:prod topic:x`
/// and `payload:text` (or bare words) for a payload search. States take
/// the old words `scheduled` and `succeeded` as aliases; the label shows
/// the filter with today's words, so the screen speaks one vocabulary.
pub fn parse_filter(text: &str) -> Result<DeliveryQuery, String> {
    let mut query = DeliveryQuery::default();
    let mut label = Vec::new();
    let mut words = Vec::new();
    for token in text.split_whitespace() {
        match token.split_once(':') {
            Some(("state", value)) => {
                let mut said = Vec::new();
                for state in value.split(',') {
                    let state: DeliveryState =
                        state.parse().map_err(|e: UnknownVariant| e.to_string())?;
                    query.filter.states.push(state);
                    said.push(state.as_str());
                }
                label.push(format!("state:{}", said.join(",")));
                continue;
            }
            Some(("tenant", value)) => query.tenant_name = Some(value.to_string()),
            Some(("endpoint", value)) | Some(("ep", value)) => {
                query.endpoint_name = Some(value.to_string())
            }
            Some(("topic", value)) => query.filter.topic = Some(value.to_string()),
            Some(("event", value)) => query.filter.event_id = Some(value.to_string()),
            Some(("payload", value)) => words.push(value.to_string()),
            _ => words.push(token.to_string()),
        }
        label.push(token.to_string());
    }
    query.label = label.join(" ");
    query.text = (!words.is_empty()).then(|| words.join(" "));
    Ok(query)
}
