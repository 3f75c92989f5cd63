//! The authorization rules, one case per rule.

use super::*;

const TOPIC: &str = "persistent://acme/ns/orders";

fn policies() -> AuthPolicies {
    let mut p = AuthPolicies::default();
    p.namespace_auth
        .insert("writer".into(), [AuthAction::Produce].into());
    p.namespace_auth
        .insert("reader".into(), [AuthAction::Consume].into());
    p.destination_auth.insert(
        TOPIC.into(),
        [("topic-reader".to_string(), [AuthAction::Consume].into())].into(),
    );
    p.subscription_auth_roles
        .insert("locked".into(), ["reader".to_string()].into());
    p
}

fn ctx<'a>(topic: &'a str, admins: &'a [String], p: &'a AuthPolicies) -> TopicAuthContext<'a> {
    TopicAuthContext {
        topic,
        tenant: "acme",
        tenant_admin_roles: admins,
        auth_policies: p,
        subscription_auth_mode: SubscriptionAuthMode::None,
    }
}

fn authz() -> Authorizer {
    Authorizer::new(true, ["root".to_string()])
}

#[test]
fn disabled_allows_everything_even_without_role() {
    let a = Authorizer::disabled();
    let p = AuthPolicies::default();
    assert!(a.check_superuser(None).is_ok());
    assert!(a.check_tenant_admin(None, "acme", &[]).is_ok());
    assert!(
        a.check_topic(None, TopicOperation::Produce, &ctx(TOPIC, &[], &p))
            .is_ok()
    );
}

#[test]
fn no_role_is_unauthenticated() {
    assert_eq!(
        authz().check_superuser(None),
        Err(AuthorizationError::Unauthenticated)
    );
}

#[test]
fn superuser_and_tenant_admin() {
    let a = authz();
    let admins = vec!["boss".to_string()];
    assert!(a.check_superuser(Some("root")).is_ok());
    assert!(matches!(
        a.check_superuser(Some("boss")),
        Err(AuthorizationError::NotSuperuser { .. })
    ));
    assert!(a.check_tenant_admin(Some("root"), "acme", &admins).is_ok());
    assert!(a.check_tenant_admin(Some("boss"), "acme", &admins).is_ok());
    assert!(matches!(
        a.check_tenant_admin(Some("writer"), "acme", &admins),
        Err(AuthorizationError::NotTenantAdmin { .. })
    ));
    // Tenant admins may produce and consume anywhere in their tenant without grants.
    let p = AuthPolicies::default();
    let c = ctx(TOPIC, &admins, &p);
    assert!(
        a.check_topic(Some("boss"), TopicOperation::Produce, &c)
            .is_ok()
    );
    assert!(
        a.check_topic(
            Some("boss"),
            TopicOperation::Consume { subscription: "s" },
            &c
        )
        .is_ok()
    );
}

#[test]
fn namespace_and_topic_grants() {
    let a = authz();
    let p = policies();
    let c = ctx(TOPIC, &[], &p);
    assert!(
        a.check_topic(Some("writer"), TopicOperation::Produce, &c)
            .is_ok()
    );
    assert!(
        a.check_topic(Some("writer"), TopicOperation::Lookup, &c)
            .is_ok()
    );
    assert!(matches!(
        a.check_topic(
            Some("writer"),
            TopicOperation::Consume { subscription: "s" },
            &c
        ),
        Err(AuthorizationError::TopicDenied {
            action: "consume",
            ..
        })
    ));
    assert!(
        a.check_topic(
            Some("reader"),
            TopicOperation::Consume { subscription: "s" },
            &c
        )
        .is_ok()
    );
    assert!(
        a.check_topic(Some("reader"), TopicOperation::Produce, &c)
            .is_err()
    );
    assert!(
        a.check_topic(
            Some("topic-reader"),
            TopicOperation::Consume { subscription: "s" },
            &c
        )
        .is_ok()
    );
    assert!(
        a.check_topic(Some("topic-reader"), TopicOperation::Lookup, &c)
            .is_ok()
    );
    let other = ctx("persistent://acme/ns/other", &[], &p);
    assert!(
        a.check_topic(Some("topic-reader"), TopicOperation::Lookup, &other)
            .is_err()
    );
    assert!(
        a.check_topic(Some("stranger"), TopicOperation::Lookup, &c)
            .is_err()
    );
}

#[test]
fn partitions_inherit_topic_grants() {
    let a = authz();
    let p = policies();
    let partition = format!("{TOPIC}-partition-2");
    let c = ctx(&partition, &[], &p);
    assert!(
        a.check_topic(
            Some("topic-reader"),
            TopicOperation::Consume { subscription: "s" },
            &c
        )
        .is_ok()
    );
    let odd = format!("{TOPIC}-partition-x");
    assert!(
        a.check_topic(
            Some("topic-reader"),
            TopicOperation::Lookup,
            &ctx(&odd, &[], &p)
        )
        .is_err()
    );
}

#[test]
fn subscription_roles_and_prefix_mode() {
    let a = authz();
    let mut p = policies();
    p.namespace_auth
        .insert("other".into(), [AuthAction::Consume].into());
    let c = ctx(TOPIC, &[], &p);
    assert!(
        a.check_topic(
            Some("reader"),
            TopicOperation::Consume {
                subscription: "locked"
            },
            &c
        )
        .is_ok()
    );
    assert!(matches!(
        a.check_topic(
            Some("other"),
            TopicOperation::Consume {
                subscription: "locked"
            },
            &c
        ),
        Err(AuthorizationError::SubscriptionDenied { .. })
    ));
    let mut prefixed = c;
    prefixed.subscription_auth_mode = SubscriptionAuthMode::Prefix;
    assert!(
        a.check_topic(
            Some("other"),
            TopicOperation::Consume {
                subscription: "other-s"
            },
            &prefixed
        )
        .is_ok()
    );
    assert!(
        a.check_topic(
            Some("other"),
            TopicOperation::Consume { subscription: "s" },
            &prefixed
        )
        .is_err()
    );
}

#[test]
fn actions_parse_and_serialize_lowercase() {
    assert_eq!("Produce".parse::<AuthAction>(), Ok(AuthAction::Produce));
    assert!("fly".parse::<AuthAction>().is_err());
    let json = serde_json::to_string(&policies()).expect("serializable");
    assert!(
        json.contains(r#""namespace_auth":{"reader":["consume"],"writer":["produce"]}"#),
        "{json}"
    );
}
