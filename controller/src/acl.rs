//! Access-control lists as Kafka stores them (`AclBinding`: a resource pattern and an
//! access-control entry, with Kafka's wire codes) and the filters that DescribeAcls and
//! DeleteAcls match them with. Deciding whether a request is allowed is the broker's
//! authorizer; this module only keeps and matches the entries.

use serde::{Deserialize, Serialize};

/// Kafka's `ResourceType` codes.
pub mod resource_type {
    /// ANY (filters only)
    pub const ANY: i8 = 1;
    /// TOPIC
    pub const TOPIC: i8 = 2;
    /// GROUP
    pub const GROUP: i8 = 3;
    /// CLUSTER
    pub const CLUSTER: i8 = 4;
    /// TRANSACTIONAL_ID
    pub const TRANSACTIONAL_ID: i8 = 5;
    /// DELEGATION_TOKEN
    pub const DELEGATION_TOKEN: i8 = 6;
    /// USER
    pub const USER: i8 = 7;
}

/// Kafka's `PatternType` codes.
pub mod pattern_type {
    /// ANY (filters only): any pattern type.
    pub const ANY: i8 = 1;
    /// MATCH (filters only): every binding that applies to the named resource.
    pub const MATCH: i8 = 2;
    /// LITERAL: the name itself, or `*` for every resource of the type.
    pub const LITERAL: i8 = 3;
    /// PREFIXED: every resource whose name starts with it.
    pub const PREFIXED: i8 = 4;
}

/// Kafka's ANY code of operations and permission types (filters only).
pub const ANY: i8 = 1;

/// The name of a LITERAL pattern that matches every resource of its type.
pub const WILDCARD: &str = "*";

/// One ACL: who (`principal` from `host`) may or may not (`permission_type`) do
/// `operation` on the resources `resource_type`/`resource_name`/`pattern_type` names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    /// Resource type code.
    pub resource_type: i8,
    /// Resource name (or prefix, or `*`).
    pub resource_name: String,
    /// LITERAL or PREFIXED.
    pub pattern_type: i8,
    /// `User:alice`, or `User:*` for everyone.
    pub principal: String,
    /// A client address, or `*`.
    pub host: String,
    /// Operation code (Kafka's `AclOperation`).
    pub operation: i8,
    /// 2 DENY, 3 ALLOW.
    pub permission_type: i8,
}

/// A filter over bindings (DescribeAcls, DeleteAcls): ANY codes and absent strings match
/// everything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    /// Resource type code, or ANY.
    pub resource_type: i8,
    /// Resource name, or None for any.
    pub resource_name: Option<String>,
    /// Pattern type code, ANY or MATCH.
    pub pattern_type: i8,
    /// Principal, or None for any.
    pub principal: Option<String>,
    /// Host, or None for any.
    pub host: Option<String>,
    /// Operation code, or ANY.
    pub operation: i8,
    /// Permission type code, or ANY.
    pub permission_type: i8,
}

impl AclFilter {
    /// Whether `binding` passes the filter, as Kafka's `AclBindingFilter.matches`.
    pub fn matches(&self, binding: &AclBinding) -> bool {
        let code = |want: i8, have: i8| want == ANY || want == have;
        let text = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        code(self.resource_type, binding.resource_type)
            && self.matches_pattern(binding)
            && text(&self.principal, &binding.principal)
            && text(&self.host, &binding.host)
            && code(self.operation, binding.operation)
            && code(self.permission_type, binding.permission_type)
    }

    fn matches_pattern(&self, binding: &AclBinding) -> bool {
        let name = self.resource_name.as_deref();
        match self.pattern_type {
            pattern_type::ANY => name.is_none_or(|n| n == binding.resource_name),
            pattern_type::MATCH => name.is_none_or(|n| match binding.pattern_type {
                pattern_type::LITERAL => {
                    binding.resource_name == n || binding.resource_name == WILDCARD
                }
                pattern_type::PREFIXED => n.starts_with(&binding.resource_name),
                _ => false,
            }),
            exact => {
                exact == binding.pattern_type && name.is_none_or(|n| n == binding.resource_name)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(name: &str, pattern: i8) -> AclBinding {
        AclBinding {
            resource_type: resource_type::TOPIC,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: 3,
            permission_type: 3,
        }
    }

    fn filter(name: Option<&str>, pattern: i8) -> AclFilter {
        AclFilter {
            resource_type: ANY,
            resource_name: name.map(String::from),
            pattern_type: pattern,
            principal: None,
            host: None,
            operation: ANY,
            permission_type: ANY,
        }
    }

    #[test]
    fn match_filters_find_every_binding_that_applies_to_a_name() {
        let literal = binding("orders", pattern_type::LITERAL);
        let wildcard = binding("*", pattern_type::LITERAL);
        let prefixed = binding("ord", pattern_type::PREFIXED);
        let other = binding("payments", pattern_type::LITERAL);
        let f = filter(Some("orders"), pattern_type::MATCH);
        assert!(f.matches(&literal) && f.matches(&wildcard) && f.matches(&prefixed));
        assert!(!f.matches(&other));
    }

    #[test]
    fn literal_and_prefixed_filters_match_exactly() {
        let prefixed = binding("ord", pattern_type::PREFIXED);
        assert!(filter(Some("ord"), pattern_type::PREFIXED).matches(&prefixed));
        assert!(!filter(Some("ord"), pattern_type::LITERAL).matches(&prefixed));
        assert!(!filter(Some("orders"), pattern_type::PREFIXED).matches(&prefixed));
        assert!(filter(Some("ord"), pattern_type::ANY).matches(&prefixed));
        assert!(filter(None, pattern_type::ANY).matches(&prefixed));
    }
}
