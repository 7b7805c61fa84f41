//! Kafka's standard authorizer (`StandardAuthorizer`) over the ACLs in the metadata image:
//! is `principal`, connecting from `host`, allowed `operation` on a resource? Enabled by
//! `authorizer.class.name`; without it everything is allowed, as in Kafka.
//!
//! - `super.users` are allowed everything.
//! - A DENY that matches wins over any ALLOW.
//! - An ALLOW for the operation itself, for ALL, or for an operation that implies it
//!   (READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS).
//! - A resource no ACL names at all is allowed only with `allow.everyone.if.no.acl.found`.
//! - An ACL matches by resource (LITERAL name or `*`, or PREFIXED), principal (or
//!   `User:*`) and host (or `*`).

use std::collections::BTreeSet;
use std::net::IpAddr;

use sluice_controller::acl::{pattern_type, WILDCARD};
use sluice_controller::{AclBinding, MetadataImage};

use super::Principal;
use crate::config::BrokerConfig;

/// The `authorizer.class.name` of Kafka's KRaft authorizer, the one Sluice implements.
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// Resource types requests are checked on (Kafka's codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// TOPIC
    Topic = 2,
    /// GROUP
    Group = 3,
    /// CLUSTER (its one resource is named `kafka-cluster`)
    Cluster = 4,
    /// TRANSACTIONAL_ID
    TransactionalId = 5,
}

impl Resource {
    /// The name Kafka's metrics and logs use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Topic => "TOPIC",
            Self::Group => "GROUP",
            Self::Cluster => "CLUSTER",
            Self::TransactionalId => "TRANSACTIONAL_ID",
        }
    }
}

/// The name of the cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// Operations (Kafka's `AclOperation` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// ALL
    All = 2,
    /// READ
    Read = 3,
    /// WRITE
    Write = 4,
    /// CREATE
    Create = 5,
    /// DELETE
    Delete = 6,
    /// ALTER
    Alter = 7,
    /// DESCRIBE
    Describe = 8,
    /// CLUSTER_ACTION
    ClusterAction = 9,
    /// DESCRIBE_CONFIGS
    DescribeConfigs = 10,
    /// ALTER_CONFIGS
    AlterConfigs = 11,
    /// IDEMPOTENT_WRITE
    IdempotentWrite = 12,
}

impl Operation {
    /// The name Kafka's tools print.
    pub fn name(self) -> &'static str {
        match self {
            Self::All => "ALL",
            Self::Read => "READ",
            Self::Write => "WRITE",
            Self::Create => "CREATE",
            Self::Delete => "DELETE",
            Self::Alter => "ALTER",
            Self::Describe => "DESCRIBE",
            Self::ClusterAction => "CLUSTER_ACTION",
            Self::DescribeConfigs => "DESCRIBE_CONFIGS",
            Self::AlterConfigs => "ALTER_CONFIGS",
            Self::IdempotentWrite => "IDEMPOTENT_WRITE",
        }
    }

    /// Operations an ALLOW of which also allows this one.
    fn allowed_by(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            Describe => &[Describe, Read, Write, Delete, Alter],
            DescribeConfigs => &[DescribeConfigs, AlterConfigs],
            _ => &[],
        }
    }

    /// Every operation a resource type has, for the authorized-operations fields.
    pub fn of(resource: Resource) -> &'static [Operation] {
        use Operation::*;
        match resource {
            Resource::Topic => &[
                Read,
                Write,
                Create,
                Delete,
                Alter,
                Describe,
                DescribeConfigs,
                AlterConfigs,
            ],
            Resource::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            Resource::Cluster => &[
                Create,
                Alter,
                Describe,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
            ],
            Resource::TransactionalId => &[Describe, Write],
        }
    }
}

const DENY: i8 = 2;
const ALLOW: i8 = 3;

/// Who asks: a request's principal and the address it came from.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    /// The authenticated principal.
    pub principal: &'a Principal,
    /// The client's address, if known.
    pub host: Option<IpAddr>,
}

/// The authorizer a broker was configured with.
#[derive(Debug, Clone)]
pub struct Authorizer {
    enabled: bool,
    super_users: BTreeSet<String>,
    allow_if_no_acl: bool,
}

impl Authorizer {
    /// From `authorizer.class.name`, `super.users` and `allow.everyone.if.no.acl.found`.
    pub fn from_config(config: &BrokerConfig) -> anyhow::Result<Self> {
        let class = config.get("authorizer.class.name").unwrap_or_default();
        let enabled = match class.trim() {
            "" => false,
            STANDARD_AUTHORIZER => true,
            // Kafka's ZooKeeper-era name for the same semantics.
            "kafka.security.authorizer.AclAuthorizer" => true,
            other => anyhow::bail!(
                "authorizer.class.name={other}: the authorizer Sluice has is {STANDARD_AUTHORIZER}"
            ),
        };
        let super_users = config
            .get("super.users")
            .unwrap_or_default()
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        Ok(Self {
            enabled,
            super_users,
            allow_if_no_acl: config
                .get("allow.everyone.if.no.acl.found")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        })
    }

    /// Whether requests are checked at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether `who` may do `operation` on the resource `resource`/`name`.
    pub fn allows(
        &self,
        image: &MetadataImage,
        who: Requester<'_>,
        operation: Operation,
        resource: Resource,
        name: &str,
    ) -> bool {
        if !self.enabled {
            return true;
        }
        // Compared in place: this runs for every topic of a produce or fetch.
        if self.super_users.iter().any(|s| who.principal.is(s)) {
            return true;
        }
        let mut named = false;
        let mut allowed = false;
        for acl in image
            .acls
            .iter()
            .filter(|a| a.resource_type == resource as i8 && names(a, name))
        {
            named = true;
            let applies = (acl.principal == "User:*" || who.principal.is(&acl.principal))
                && (acl.host == WILDCARD || acl.host.parse::<IpAddr>().ok() == who.host);
            if !applies {
                continue;
            }
            if acl.permission_type == DENY
                && (acl.operation == operation as i8 || acl.operation == Operation::All as i8)
            {
                return false;
            }
            if acl.permission_type == ALLOW
                && (acl.operation == Operation::All as i8
                    || acl.operation == operation as i8
                    || operation
                        .allowed_by()
                        .iter()
                        .any(|o| *o as i8 == acl.operation))
            {
                allowed = true;
            }
        }
        allowed || (!named && self.allow_if_no_acl)
    }

    /// Kafka's authorized-operations bit field of a resource for `who`.
    pub fn authorized_operations(
        &self,
        image: &MetadataImage,
        who: Requester<'_>,
        resource: Resource,
        name: &str,
    ) -> i32 {
        Operation::of(resource)
            .iter()
            .filter(|op| self.allows(image, who, **op, resource, name))
            .fold(0, |bits, op| bits | (1 << (*op as i32)))
    }
}

/// Whether `acl`'s pattern names the resource `name`.
fn names(acl: &AclBinding, name: &str) -> bool {
    match acl.pattern_type {
        pattern_type::LITERAL => acl.resource_name == name || acl.resource_name == WILDCARD,
        pattern_type::PREFIXED => name.starts_with(&acl.resource_name),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(name: &str, pattern: i8, principal: &str, op: Operation, permission: i8) -> AclBinding {
        AclBinding {
            resource_type: Resource::Topic as i8,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: "*".into(),
            operation: op as i8,
            permission_type: permission,
        }
    }

    fn authorizer(extra: &[&str]) -> Authorizer {
        let mut pairs = vec![format!("authorizer.class.name={STANDARD_AUTHORIZER}")];
        pairs.extend(extra.iter().map(|s| s.to_string()));
        Authorizer::from_config(&BrokerConfig::parse(&pairs).unwrap()).unwrap()
    }

    #[test]
    fn deny_wins_prefixes_match_and_read_implies_describe() {
        let image = MetadataImage {
            acls: vec![
                acl(
                    "alice-",
                    pattern_type::PREFIXED,
                    "User:alice",
                    Operation::Read,
                    ALLOW,
                ),
                acl(
                    "alice-secret",
                    pattern_type::LITERAL,
                    "User:alice",
                    Operation::All,
                    DENY,
                ),
            ],
            ..MetadataImage::default()
        };
        let alice = Principal::user("alice");
        let who = Requester {
            principal: &alice,
            host: None,
        };
        let a = authorizer(&[]);
        let allows = |op, name| a.allows(&image, who, op, Resource::Topic, name);
        assert!(allows(Operation::Read, "alice-orders"));
        assert!(allows(Operation::Describe, "alice-orders"));
        assert!(!allows(Operation::Write, "alice-orders"));
        assert!(!allows(Operation::Read, "alice-secret"));
        assert!(!allows(Operation::Read, "bob-orders"));
    }

    #[test]
    fn super_users_and_no_acl_found() {
        let image = MetadataImage::default();
        let admin = Principal::user("admin");
        let bob = Principal::user("bob");
        let a = authorizer(&["super.users=User:admin;User:ops"]);
        let who = |p| Requester {
            principal: p,
            host: None,
        };
        assert!(a.allows(
            &image,
            who(&admin),
            Operation::Alter,
            Resource::Cluster,
            CLUSTER_NAME
        ));
        assert!(!a.allows(&image, who(&bob), Operation::Read, Resource::Topic, "t"));
        let open = authorizer(&["allow.everyone.if.no.acl.found=true"]);
        assert!(open.allows(&image, who(&bob), Operation::Read, Resource::Topic, "t"));
        let named = MetadataImage {
            acls: vec![acl(
                "t",
                pattern_type::LITERAL,
                "User:alice",
                Operation::Read,
                ALLOW,
            )],
            ..MetadataImage::default()
        };
        assert!(!open.allows(&named, who(&bob), Operation::Read, Resource::Topic, "t"));
    }
}
