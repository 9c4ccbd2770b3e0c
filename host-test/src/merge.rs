//! Replays a chain of wasm-shield filters as one `shield` module: the chain's filters become the
//! stages of one `shield` filter, each with its own configuration, in the same order. `shield`
//! promises the behaviour of the chain, so every expectation of the case must still hold
//! (`host-test replay --as-shield`).

use crate::fixture::{FilterEntry, LoadedCase};

/// The filters `shield` can run as stages.
pub const SHIELD_STAGES: [&str; 5] = ["header-strip", "request-id", "jwt-auth", "rate-limit", "waf"];

/// The case with its chain replaced by one `module` filter (`shield`, or `shield-crs`), or why it
/// cannot be (not a chain of two or more shield filters, or a chain whose filters run with
/// different VM settings).
pub fn into_shield(mut loaded: LoadedCase, module: &str) -> Result<LoadedCase, String> {
    let case = &mut loaded.case;
    if case.filters.len() < 2 {
        return Err("not a chain".into());
    }
    if case.expect_start.is_some() {
        // The refusal is the same, but shield names the field under `stages[i].config`.
        return Err("expects a refused configuration".into());
    }
    let first = case.filters.first().ok_or("not a chain")?;
    for (position, filter) in case.filters.iter().enumerate() {
        if !SHIELD_STAGES.contains(&filter.name.as_str()) {
            return Err(format!("filters[{position}]: {} is not a shield stage", filter.name));
        }
        if case.filters.iter().take(position).any(|earlier| earlier.name == filter.name) {
            return Err(format!("filters[{position}]: {} appears twice", filter.name));
        }
        if filter.wasm.is_some()
            || filter.config_raw.is_some()
            || filter.vm_config.is_some()
            || filter.root_id.is_some()
        {
            return Err(format!("filters[{position}]: wasm, config_raw, vm_config or root_id set"));
        }
        if filter.failure_policy != first.failure_policy
            || filter.log_level != first.log_level
            || filter.vm_id != first.vm_id
            || filter.env != first.env
        {
            return Err(format!("filters[{position}]: runs with other VM settings than filters[0]"));
        }
    }
    let stages: Vec<serde_json::Value> = case
        .filters
        .iter()
        .map(|filter| {
            serde_json::json!({"filter": filter.name, "config": filter.config.clone().unwrap_or(serde_json::Value::Null)})
        })
        .collect();
    let merged = FilterEntry {
        name: module.to_owned(),
        wasm: None,
        config: Some(serde_json::json!({ "stages": stages })),
        config_raw: None,
        vm_config: None,
        plugin_name: first.plugin_name.clone(),
        root_id: None,
        vm_id: first.vm_id.clone(),
        env: first.env.clone(),
        failure_policy: first.failure_policy,
        log_level: first.log_level,
    };
    case.filters = vec![merged];
    case.name = format!("{} [as {module}]", case.name);
    Ok(loaded)
}
