//! Authorization as a pure function of (role, operation, policies), Pulsar's
//! `PulsarAuthorizationProvider` rules:
//! - a superuser may do everything;
//! - a tenant's admin roles may administer the tenant and do every topic operation in it
//!   (produce and consume included);
//! - any other role needs `produce` or `consume` granted on the namespace
//!   (`auth_policies.namespace_auth[role]`) or on the topic (`destination_auth[topic][role]`;
//!   a partition inherits its partitioned topic's grants);
//! - lookup (and partitioned metadata) needs produce or consume;
//! - consume also honours `subscription_auth_roles[sub]` (a non-empty set restricts who may
//!   use that subscription) and `subscription_auth_mode = Prefix` (the subscription name must
//!   start with the role).
//!
//! The evaluator does no I/O: the caller reads the tenant and namespace policies (through the
//! admin-api resources layer) and passes them in.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A permission that can be granted to a role (Pulsar's `AuthAction`, lowercase on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AuthAction {
    Produce,
    Consume,
    Functions,
    Sources,
    Sinks,
    Packages,
}

impl std::str::FromStr for AuthAction {
    type Err = String;
    fn from_str(s: &str) -> Result<AuthAction, String> {
        serde_json::from_value(serde_json::Value::String(s.trim().to_ascii_lowercase())).map_err(
            |_| {
                format!(
                    "unknown action {s:?} (produce, consume, functions, sources, sinks, packages)"
                )
            },
        )
    }
}

/// Grants stored in a namespace's policies (Pulsar's `AuthPolicies`, snake_case JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct AuthPolicies {
    /// role → actions on every topic of the namespace.
    pub namespace_auth: BTreeMap<String, BTreeSet<AuthAction>>,
    /// full topic name → role → actions on that topic.
    pub destination_auth: BTreeMap<String, BTreeMap<String, BTreeSet<AuthAction>>>,
    /// subscription → roles allowed to use it (empty: anyone who may consume).
    pub subscription_auth_roles: BTreeMap<String, BTreeSet<String>>,
}

/// How subscription names relate to roles (Pulsar's `SubscriptionAuthMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SubscriptionAuthMode {
    #[default]
    None,
    /// A non-admin role may only use subscriptions whose names start with the role.
    Prefix,
}

/// What a client wants to do on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicOperation<'a> {
    Produce,
    Consume {
        subscription: &'a str,
    },
    /// Lookup and partitioned metadata: allowed to whoever may produce or consume.
    Lookup,
}

/// The policies that decide a topic operation, read by the caller.
#[derive(Debug, Clone, Copy)]
pub struct TopicAuthContext<'a> {
    /// Full topic name, `persistent://tenant/ns/topic` (a partition ends in `-partition-N`).
    pub topic: &'a str,
    pub tenant: &'a str,
    /// The tenant's `adminRoles`.
    pub tenant_admin_roles: &'a [String],
    pub auth_policies: &'a AuthPolicies,
    pub subscription_auth_mode: SubscriptionAuthMode,
}

/// Why an operation was refused: 401 for `Unauthenticated`, 403 for the rest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("role {role:?} is not a superuser")]
    NotSuperuser { role: String },
    #[error("role {role:?} is not an admin of tenant {tenant:?}")]
    NotTenantAdmin { role: String, tenant: String },
    #[error("role {role:?} is not allowed to {action} on topic {topic}")]
    TopicDenied {
        role: String,
        action: &'static str,
        topic: String,
    },
    #[error("role {role:?} is not allowed to use subscription {subscription:?}")]
    SubscriptionDenied { role: String, subscription: String },
    #[error("role {role:?} is not allowed to list the topics of namespace {namespace}")]
    NamespaceDenied { role: String, namespace: String },
}

/// The policy evaluator; immutable, cheap to share.
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    enabled: bool,
    superusers: BTreeSet<String>,
}

impl Authorizer {
    pub fn new(enabled: bool, superusers: impl IntoIterator<Item = String>) -> Authorizer {
        Authorizer {
            enabled,
            superusers: superusers.into_iter().collect(),
        }
    }

    /// Everything allowed.
    pub fn disabled() -> Authorizer {
        Authorizer::default()
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub fn is_superuser(&self, role: &str) -> bool {
        self.superusers.contains(role)
    }

    fn role<'r>(&self, role: Option<&'r str>) -> Result<&'r str, AuthorizationError> {
        role.ok_or(AuthorizationError::Unauthenticated)
    }

    /// Cluster management, tenant creation and other system-wide operations.
    pub fn check_superuser(&self, role: Option<&str>) -> Result<(), AuthorizationError> {
        if !self.enabled {
            return Ok(());
        }
        let role = self.role(role)?;
        if self.is_superuser(role) {
            return Ok(());
        }
        Err(AuthorizationError::NotSuperuser { role: role.into() })
    }

    /// Administration of one tenant and everything in it: superuser or tenant admin.
    pub fn check_tenant_admin(
        &self,
        role: Option<&str>,
        tenant: &str,
        admin_roles: &[String],
    ) -> Result<(), AuthorizationError> {
        if !self.enabled {
            return Ok(());
        }
        let role = self.role(role)?;
        if self.is_superuser(role) || admin_roles.iter().any(|r| r == role) {
            return Ok(());
        }
        Err(AuthorizationError::NotTenantAdmin {
            role: role.into(),
            tenant: tenant.into(),
        })
    }

    /// Produce, consume or lookup on a topic.
    pub fn check_topic(
        &self,
        role: Option<&str>,
        operation: TopicOperation<'_>,
        ctx: &TopicAuthContext<'_>,
    ) -> Result<(), AuthorizationError> {
        if !self.enabled {
            return Ok(());
        }
        let role = self.role(role)?;
        if self.is_superuser(role) || ctx.tenant_admin_roles.iter().any(|r| r == role) {
            return Ok(());
        }
        let denied = |action| AuthorizationError::TopicDenied {
            role: role.into(),
            action,
            topic: ctx.topic.into(),
        };
        match operation {
            TopicOperation::Produce => granted(role, AuthAction::Produce, ctx)
                .then_some(())
                .ok_or_else(|| denied("produce")),
            TopicOperation::Lookup => (granted(role, AuthAction::Produce, ctx)
                || granted(role, AuthAction::Consume, ctx))
            .then_some(())
            .ok_or_else(|| denied("lookup")),
            TopicOperation::Consume { subscription } => {
                let sub_denied = || AuthorizationError::SubscriptionDenied {
                    role: role.into(),
                    subscription: subscription.into(),
                };
                if let Some(roles) = ctx.auth_policies.subscription_auth_roles.get(subscription)
                    && !roles.is_empty()
                    && !roles.contains(role)
                {
                    return Err(sub_denied());
                }
                if ctx.subscription_auth_mode == SubscriptionAuthMode::Prefix
                    && !subscription.starts_with(role)
                {
                    return Err(sub_denied());
                }
                granted(role, AuthAction::Consume, ctx)
                    .then_some(())
                    .ok_or_else(|| denied("consume"))
            }
        }
    }
}

impl Authorizer {
    /// Listing a namespace's topics (`GET_TOPICS_OF_NAMESPACE`): superusers, the tenant's
    /// admins and roles granted produce or consume on the whole namespace (a grant on one topic
    /// does not reveal its neighbours).
    pub fn check_namespace_topics(
        &self,
        role: Option<&str>,
        namespace: &str,
        tenant_admin_roles: &[String],
        auth_policies: &AuthPolicies,
    ) -> Result<(), AuthorizationError> {
        if !self.enabled {
            return Ok(());
        }
        let role = self.role(role)?;
        if self.is_superuser(role) || tenant_admin_roles.iter().any(|r| r == role) {
            return Ok(());
        }
        let granted = auth_policies
            .namespace_auth
            .get(role)
            .is_some_and(|actions| {
                actions.contains(&AuthAction::Produce) || actions.contains(&AuthAction::Consume)
            });
        granted
            .then_some(())
            .ok_or_else(|| AuthorizationError::NamespaceDenied {
                role: role.into(),
                namespace: namespace.into(),
            })
    }
}

/// Whether `role` holds `action` on the namespace, the topic, or the topic's partitioned parent.
fn granted(role: &str, action: AuthAction, ctx: &TopicAuthContext<'_>) -> bool {
    let policies = ctx.auth_policies;
    let has = |grants: Option<&BTreeMap<String, BTreeSet<AuthAction>>>| {
        grants
            .and_then(|g| g.get(role))
            .is_some_and(|actions| actions.contains(&action))
    };
    if policies
        .namespace_auth
        .get(role)
        .is_some_and(|a| a.contains(&action))
    {
        return true;
    }
    if has(policies.destination_auth.get(ctx.topic)) {
        return true;
    }
    partitioned_parent(ctx.topic).is_some_and(|parent| has(policies.destination_auth.get(parent)))
}

/// `t-partition-3` → `t`.
fn partitioned_parent(topic: &str) -> Option<&str> {
    let (parent, index) = topic.rsplit_once("-partition-")?;
    (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit())).then_some(parent)
}

#[cfg(test)]
#[path = "authz_test.rs"]
mod tests;
