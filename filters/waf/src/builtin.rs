//! The built-in rule set: a compact core of our own (not CRS), in the native format, grouped so
//! a configuration can pick groups. `builtin.json` holds the rules; the crate README lists them.
//!
//! Every rule adds its severity's points to the anomaly score (critical = 5, the default
//! threshold), is tagged `builtin-<group>` and runs from its paranoia level up.

use crate::native::{self, NativeRule};
use crate::rule::RuleItem;
use shield_kit::config::ConfigError;
use std::collections::{BTreeMap, HashMap};

/// The rules, by group.
const BUILTIN_JSON: &str = include_str!("builtin.json");

/// The group names, in evaluation order.
pub const GROUPS: [&str; 9] = ["protocol", "scanner", "lfi", "rfi", "rce", "php", "java", "sqli", "xss"];

/// The rule items of `groups` (`None`: every group), each rule tagged `builtin-<group>`.
pub fn items(groups: Option<&[String]>) -> Result<Vec<RuleItem>, ConfigError> {
    if let Some(groups) = groups {
        for (index, group) in groups.iter().enumerate() {
            if !GROUPS.contains(&group.as_str()) {
                return Err(ConfigError::new(
                    format!("builtin_groups[{index}]"),
                    format!("unknown group \"{}\": one of {}", group.escape_default(), GROUPS.join(", ")),
                ));
            }
        }
    }
    let all: BTreeMap<String, Vec<NativeRule>> = serde_json::from_str(BUILTIN_JSON)
        .map_err(|error| ConfigError::new("builtin_groups", format!("built-in rules are broken: {error}")))?;
    let mut items = Vec::new();
    for group in GROUPS {
        if groups.is_some_and(|wanted| !wanted.iter().any(|name| name == group)) {
            continue;
        }
        let mut rules = all.get(group).cloned().unwrap_or_default();
        for rule in &mut rules {
            rule.tags.push(format!("builtin-{group}"));
        }
        items.extend(native::to_items(&rules, &format!("builtin.{group}"), &HashMap::new())?);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Ruleset;

    #[test]
    fn every_group_exists_and_compiles() {
        let all: BTreeMap<String, Vec<NativeRule>> = serde_json::from_str(BUILTIN_JSON).unwrap();
        assert_eq!(all.len(), GROUPS.len());
        for group in GROUPS {
            assert!(!all[group].is_empty(), "{group}");
        }
        let ruleset = Ruleset::compile(items(None).unwrap()).unwrap();
        assert_eq!(ruleset.rule_count(), all.values().map(Vec::len).sum::<usize>());
    }

    #[test]
    fn groups_can_be_selected() {
        let only_sqli = items(Some(&["sqli".to_string()])).unwrap();
        assert!(!only_sqli.is_empty());
        assert!(
            only_sqli
                .iter()
                .all(|item| matches!(item, RuleItem::Rule(rule) if rule.tags.contains(&"builtin-sqli".to_string())))
        );
        assert!(items(Some(&[])).unwrap().is_empty());
    }
}
